// CloudSim: ota-cloud-sim's connection and loop. Connects as CN ota-cloud (MQTT v5 over TLS),
// subscribes ota/v1/cloud/+/up/#, offers the campaign (OfferKeeper), serves downloads
// (PackageServer), stores reports and acknowledges each on down/report-ack (ReportStore), and logs
// inventories and status changes. The transport's thread only queues (at most 4096 messages);
// everything else runs on the thread of run().
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "offer_keeper.hpp"
#include "ota/core/transport.hpp"
#include "package_server.hpp"
#include "report_store.hpp"
#include "sim_common.hpp"

namespace ota::cloudsim {

class CloudSim {
 public:
  explicit CloudSim(Config cfg) : cfg_(std::move(cfg)), reports_(cfg_.reports_dir) {}
  // Runs until `stop` is set (or, with --exit-after-report, the first report). Returns the exit
  // status: 0, or 1 after an error printed on stderr.
  int run(const std::atomic<bool>& stop);

 private:
  int fail(const std::string& msg);
  Status connect();
  void enqueue(const TransportMessage& m);
  void dispatch(const TransportMessage& m);
  void on_report(const std::string& vehicle, const std::string& payload);
  void on_inventory(const std::string& vehicle, const std::string& payload);
  void on_status(const std::string& vehicle, const std::string& payload);
  Status publish(const std::string& topic, const std::string& payload, bool retain);

  Config cfg_;
  ReportStore reports_;
  std::optional<OfferKeeper> offer_;
  std::optional<PackageServer> packages_;
  std::unique_ptr<Transport> transport_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TransportMessage> queue_;
  size_t dropped_ = 0;
  bool done_ = false;
  std::atomic<bool> subscribed_{false};  // after the first subscribe: later connects are reconnects
  std::map<std::string, std::string> last_state_;
};

}  // namespace ota::cloudsim
