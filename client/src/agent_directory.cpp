#include "agent_directory.hpp"

#include <random>

#include "agent_field_limits.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/log.hpp"
#include "ota/core/topics.hpp"

namespace ota::client {

using topics::Leaf;
namespace {
constexpr const char* kLog = "client";

void log_cut(const std::string& ecu, const char* what, const std::string& cut) {
  if (!cut.empty()) OTA_LOGE(kLog, "%s: %s cut to the client's limits: %s", ecu.c_str(), what, cut.c_str());
}

// Whether `next` shows the agent back after a restart or a reconnect (AgentView::returns). A hello
// replayed as retained after the client's own reconnect carries the timestamp already held.
bool returned(const AgentView& view, const v1::Hello& next) {
  if (!next.online()) return false;
  if (next.boot_id() != view.hello.boot_id() || !view.hello.online()) return true;
  return view.stale && next.timestamp_ms() > view.hello.timestamp_ms();
}
}  // namespace

v1::BankInfo active_bank(const AgentView& view) {
  const auto& inv = view.hello.inventory();
  for (const auto& b : inv.banks()) {
    if (b.bank() == inv.active_bank()) return b;
  }
  return v1::BankInfo();
}

AgentDirectory::AgentDirectory(Transport& transport) : transport_(transport) {
  std::random_device rd;
  seq_ = (uint64_t{rd()} << 20);
}

void AgentDirectory::on_message(const TransportMessage& m) {
  std::string ecu;
  Leaf leaf = Leaf::kUnknown;
  if (!topics::parse_ecu_topic(m.topic, &ecu, &leaf)) return;
  if (leaf == Leaf::kAck) return on_ack(ecu, m.payload);
  bool changed = false;
  std::function<void(const std::string&)> change;
  {
    std::lock_guard<std::mutex> lock(mu_);
    AgentView& view = agents_[ecu];
    view.last_seen_ms = codec::now_ms();
    switch (leaf) {
      case Leaf::kHello:
        changed = take_hello(view, ecu, m.payload);
        break;
      case Leaf::kState:
        changed = take_state(view, ecu, m.payload);
        break;
      case Leaf::kDtc:
        take_dtcs(view, ecu, m.payload);
        break;
      case Leaf::kResult:
        take_result(ecu, m.payload);
        break;
      default:
        break;
    }
    if (changed) change = change_cb_;
  }
  cv_.notify_all();
  if (change) change(ecu);
}

void AgentDirectory::on_ack(const std::string& ecu, const std::string& payload) {
  v1::ChunkAck ack;
  if (Status st = codec::decode(payload, &ack, codec::kMaxControlMessage, "ack from " + ecu); !st.is_ok()) {
    OTA_LOGW(kLog, "%s", st.to_string().c_str());
    return;
  }
  // Held across the call: clear_ack_listener() waits for a running listener, so a transfer
  // can end (and free what its listener uses) safely.
  std::lock_guard<std::mutex> lock(ack_mu_);
  auto it = ack_listeners_.find(ecu);
  if (it != ack_listeners_.end()) it->second(ack);
}

bool AgentDirectory::take_hello(AgentView& view, const std::string& ecu, const std::string& payload) {
  v1::Hello hello;
  Status st = codec::decode(payload, &hello, codec::kMaxControlMessage, "hello from " + ecu);
  if (st.is_ok()) st = codec::check_protocol(hello.protocol(), "agent " + ecu);
  if (st.is_ok() && hello.inventory().ecu_id() != ecu) {
    st = Status(Code::kRejected,
                "hello on " + ecu + "'s topic names ECU '" + hello.inventory().ecu_id() + "'");
  }
  if (!st.is_ok()) {
    view.refusal = st.message();
    OTA_LOGW(kLog, "%s", st.to_string().c_str());
    return true;  // a refused hello changes what the directory says of the ECU too
  }
  log_cut(ecu, "hello", cap_inventory(hello.mutable_inventory()));
  if (returned(view, hello)) {
    ++view.returns;
    view.stale = false;
  }
  view.hello = hello;
  view.refusal.clear();
  return true;
}

bool AgentDirectory::take_state(AgentView& view, const std::string& ecu, const std::string& payload) {
  v1::AgentState state;
  Status st = codec::decode(payload, &state, codec::kMaxControlMessage, "state from " + ecu);
  if (!st.is_ok()) {
    OTA_LOGW(kLog, "%s", st.to_string().c_str());
    return false;
  }
  log_cut(ecu, "state", cap_state(&state));
  view.state = state;
  return true;
}

void AgentDirectory::take_dtcs(AgentView& view, const std::string& ecu, const std::string& payload) {
  v1::DtcList dtcs;
  Status st = codec::decode(payload, &dtcs, codec::kMaxControlMessage, "DTCs from " + ecu);
  if (!st.is_ok()) {
    OTA_LOGW(kLog, "%s", st.to_string().c_str());
    return;
  }
  log_cut(ecu, "DTC list", cap_dtcs(dtcs.mutable_dtcs()));
  view.dtcs = dtcs;
}

void AgentDirectory::take_result(const std::string& ecu, const std::string& payload) {
  v1::Result r;
  Status st = codec::decode(payload, &r, codec::kMaxControlMessage, "result from " + ecu);
  if (!st.is_ok()) {
    OTA_LOGW(kLog, "%s", st.to_string().c_str());
    return;
  }
  auto it = pending_.find(r.correlation_id());
  // A result is taken only from the ECU the command went to (the correlation id names it).
  if (it != pending_.end() && r.ecu_id() == ecu &&
      r.correlation_id().compare(0, ecu.size() + 1, ecu + "/") == 0) {
    it->second = r;
  }
}

std::optional<AgentView> AgentDirectory::agent(const std::string& ecu_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = agents_.find(ecu_id);
  if (it == agents_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, AgentView> AgentDirectory::agents() const {
  std::lock_guard<std::mutex> lock(mu_);
  return agents_;
}

Status AgentDirectory::wait_online(const std::vector<std::string>& ecus, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  std::string missing;
  auto all_online = [&] {
    missing.clear();
    for (const auto& e : ecus) {
      auto it = agents_.find(e);
      if (it == agents_.end() || !it->second.hello.online() || !it->second.refusal.empty()) {
        missing += (missing.empty() ? "" : ", ") + e;
        if (it != agents_.end() && !it->second.refusal.empty()) missing += " (" + it->second.refusal + ")";
      }
    }
    return missing.empty();
  };
  if (cv_.wait_for(lock, timeout, all_online)) return Status::ok();
  return Status(Code::kUnavailable, "agents not online: " + missing);
}

std::string AgentDirectory::next_correlation_id(const std::string& ecu_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return ecu_id + "/" + std::to_string(++seq_);
}

Status AgentDirectory::send(const std::string& ecu_id, v1::Command& cmd) {
  codec::set_protocol(cmd.mutable_protocol());
  cmd.set_timestamp_ms(codec::now_ms());
  if (cmd.correlation_id().empty()) cmd.set_correlation_id(next_correlation_id(ecu_id));
  // Every agent drops a command above kMaxControlMessage unread; sending one would only end in a
  // timeout (and retries), so it is refused here, at once, with the size named.
  if (const size_t size = cmd.ByteSizeLong(); size > codec::kMaxControlMessage) {
    return Status(Code::kInvalidArgument, "command to " + ecu_id + " is " + std::to_string(size) +
                                              " bytes, above the agents' limit of " +
                                              std::to_string(codec::kMaxControlMessage) +
                                              " bytes (kMaxControlMessage); it was not sent");
  }
  return transport_.publish(topics::ecu(ecu_id, Leaf::kCmd), cmd.SerializeAsString(), 1, false);
}

void AgentDirectory::on_connection_lost() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [ecu, view] : agents_) view.stale = true;
}

Result<v1::Result> AgentDirectory::call(const std::string& ecu_id, v1::Command cmd,
                                        std::chrono::milliseconds timeout) {
  cmd.set_correlation_id(next_correlation_id(ecu_id));
  const std::string id = cmd.correlation_id();
  auto returns = [&] {  // with mu_ held
    auto it = agents_.find(ecu_id);
    return it == agents_.end() ? uint64_t{0} : it->second.returns;
  };
  uint64_t returns_at_send = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[id] = std::nullopt;
    returns_at_send = returns();
  }
  Status st = send(ecu_id, cmd);
  std::unique_lock<std::mutex> lock(mu_);
  if (st.is_ok() && !cv_.wait_for(lock, timeout,
                                  [&] { return pending_[id].has_value() || returns() != returns_at_send; })) {
    st = Status(Code::kTimeout,
                ecu_id + " did not answer " + id + " within " + std::to_string(timeout.count()) + " ms");
  }
  if (st.is_ok() && !pending_[id].has_value()) {
    st = Status(Code::kUnavailable, ecu_id + " came back (restart or reconnect) before answering " + id);
  }
  std::optional<v1::Result> r = std::move(pending_[id]);
  pending_.erase(id);
  if (!st.is_ok()) return st;
  return std::move(*r);
}

void AgentDirectory::set_ack_listener(const std::string& ecu_id, AckListener listener) {
  std::lock_guard<std::mutex> lock(ack_mu_);
  ack_listeners_[ecu_id] = std::move(listener);
}

void AgentDirectory::clear_ack_listener(const std::string& ecu_id) {
  std::lock_guard<std::mutex> lock(ack_mu_);
  ack_listeners_.erase(ecu_id);
}

void AgentDirectory::on_change(std::function<void(const std::string&)> cb) {
  std::lock_guard<std::mutex> lock(mu_);
  change_cb_ = std::move(cb);
}

}  // namespace ota::client
