// Watches the client's status topic to show progress and to tell the triggers how far the campaign
// is; also watches the agents' results, to tell where transfers resumed after a broker restart.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "ota/core/transport.hpp"
#include "ota/sim/broker.hpp"

namespace ota::sim {

// Connects as "ota-observer". Its methods are thread-safe (messages arrive on the transport's thread).
class Observer {
 public:
  // `show`: print a progress line on stderr (a terminal).
  Observer(const Broker& broker, bool show);
  Status start();
  // Acknowledged bytes over payload bytes, all ECUs together.
  int percent() const { return percent_.load(); }
  // The same for the ECU that is furthest behind (0 until the client reports every ECU).
  int min_percent() const { return min_percent_.load(); }
  // Acknowledged payload bytes per ECU, as of the client's last status.
  std::map<std::string, uint64_t> acked() const;
  // From now on, record per ECU the resume offset of the first StartTransfer answered.
  void watch_resumes();
  std::map<std::string, uint64_t> resumes() const;
  // Every (ECU, phase) an agent's state has reported since start (phases as v1::Phase_Name without
  // the PHASE_ prefix, lower case: "transfer", "trial", ...). Kept, not replaced, so that a phase
  // passed through between two polls is still seen.
  bool seen_phase(const std::string& ecu, const std::string& phase) const;
  void stop() { t_->disconnect(std::chrono::seconds(1)); }
  // Ends the progress line, if one was printed.
  void finish_line();

 private:
  void on_status(const TransportMessage& m);
  void on_result(const TransportMessage& m);
  void on_state(const std::string& ecu, const TransportMessage& m);

  bool show_;
  bool printed_ = false;
  mutable std::mutex mu_;
  std::atomic<int> percent_{0};
  std::atomic<int> min_percent_{0};
  std::map<std::string, uint64_t> acked_;
  bool watch_resumes_ = false;
  std::map<std::string, uint64_t> resumes_;
  std::set<std::pair<std::string, std::string>> phases_;
  std::unique_ptr<Transport> t_;
};

}  // namespace ota::sim
