// AgentDirectory: the client's live view of this vehicle's ECU agents and its request/response
// plumbing over the transport: inventory from retained hellos, results routed to whoever waits on a
// correlation id, chunk acknowledgements routed to the transfer of that ECU.
//
// Threads: every method is thread-safe. on_message() runs on the transport's callback thread; call()
// and wait_online() block the caller (never call them from that thread). Ack listeners and the change
// callback run on the transport's callback thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

struct AgentView {
  v1::Hello hello;       // last hello (online flag, inventory)
  v1::AgentState state;  // last state
  v1::DtcList dtcs;      // last DTC list
  uint64_t last_seen_ms = 0;
  std::string refusal;  // set when the agent speaks another protocol major version
  // Counts the agent's returns: an online hello with a new boot_id (a restart), after an offline one
  // (its Will: a reconnect), or newer than the one held when the client's own connection was lost.
  // A command sent before a return may have been lost with the agent's session: call() wakes on it.
  uint64_t returns = 0;
  bool stale = false;  // the client's connection was lost since this agent's last hello
};

// The agent's active bank as its hello reports it; an empty BankInfo if none is listed.
v1::BankInfo active_bank(const AgentView& view);

class AgentDirectory {
 public:
  // `transport` must outlive the directory; its message callback must call on_message().
  explicit AgentDirectory(Transport& transport);

  // Call from the transport's message callback.
  void on_message(const TransportMessage& m);

  // Snapshot of one agent; nullopt if never seen.
  std::optional<AgentView> agent(const std::string& ecu_id) const;
  std::map<std::string, AgentView> agents() const;

  // Waits until every listed ECU has an online hello, or the deadline passes. Returns the
  // missing ones in the error message.
  Status wait_online(const std::vector<std::string>& ecus, std::chrono::milliseconds timeout);

  // The client's own connection to the broker was lost: an agent's next hello newer than the one
  // held counts as a return (AgentView::returns), even if it arrives before the client knows it is
  // connected again. Call from the transport's connection callback.
  void on_connection_lost();

  // Sends a command and waits for its Result. Errors: kTimeout if none in time; kUnavailable, as
  // soon as the agent returns (AgentView::returns) before answering: the command may have been lost
  // with its session, and the caller may send it again at once (commands after StartTransfer are
  // idempotent on the agent); kInvalidArgument,
  // at once and without sending, for a command above codec::kMaxControlMessage (every agent would
  // drop it); the Result itself may carry a failure (outcome/error), which the caller inspects.
  Result<v1::Result> call(const std::string& ecu_id, v1::Command cmd, std::chrono::milliseconds timeout);
  Status send(const std::string& ecu_id, v1::Command& cmd);

  // Chunk acknowledgements: one listener per ECU (the running transfer).
  using AckListener = std::function<void(const v1::ChunkAck&)>;
  void set_ack_listener(const std::string& ecu_id, AckListener listener);
  void clear_ack_listener(const std::string& ecu_id);

  // Called on every change of an agent's hello/state (for status displays).
  void on_change(std::function<void(const std::string& ecu_id)> cb);

  std::string next_correlation_id(const std::string& ecu_id);

 private:
  // One uplink leaf each; the take_* run under mu_ and return whether on_change listeners are told.
  void on_ack(const std::string& ecu, const std::string& payload);
  bool take_hello(AgentView& view, const std::string& ecu, const std::string& payload);
  bool take_state(AgentView& view, const std::string& ecu, const std::string& payload);
  void take_dtcs(AgentView& view, const std::string& ecu, const std::string& payload);
  void take_result(const std::string& ecu, const std::string& payload);

  Transport& transport_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, AgentView> agents_;
  std::map<std::string, std::optional<v1::Result>> pending_;  // correlation id -> result
  std::mutex ack_mu_;  // guards ack_listeners_ and is held while one runs
  std::map<std::string, AckListener> ack_listeners_;
  std::function<void(const std::string&)> change_cb_;
  uint64_t seq_ = 0;
};

}  // namespace ota::client
