// What the agent publishes (docs/PROTOCOL.md sections 4 to 6): the retained hello (inventory),
// state and DTC list, command results, and chunk acks. Results are signed with the ECU key when one
// is configured, so that the client cannot claim an ECU's success for it.
//
// Threading: called by the protocol thread, and by start() and stop() while no protocol thread
// runs. The disk state is read under its lock.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "clock.hpp"
#include "disk_state.hpp"
#include "ota/agent.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::agent_impl {

using agent::AgentConfig;
using agent::Device;
using topics::Leaf;

class Outbox {
 public:
  // All must outlive the Outbox.
  Outbox(const AgentConfig& cfg, Device& dev, const DiskState& disk, const AgentClock& clock);

  // Where messages go; set before the first publish. Not owned.
  void set_transport(Transport* transport) { transport_ = transport; }
  // Signs every Result from now on.
  void set_ecu_key(std::unique_ptr<trust::PrivateKey> key) { ecu_key_ = std::move(key); }
  // The command being handled, reported in AgentState.correlation_id.
  void set_correlation(std::string id) { correlation_ = std::move(id); }

  v1::Hello hello(bool online) const;
  v1::Result result(const v1::Command& cmd, v1::Outcome outcome, const Status& st) const;

  // Publishes on the ECU's topic for `leaf`. A failure is logged: the client's timeouts and retries
  // cover a message that did not go out.
  void publish(Leaf leaf, const google::protobuf::MessageLite& msg, bool retain, int qos = 1);
  void publish_hello(bool online) { publish(Leaf::kHello, hello(online), true); }
  // The retained AgentState, with the transfer's progress; unless forced at most one per
  // AgentConfig::progress_interval.
  void publish_state(bool force, uint64_t bytes_done);
  // Reads the DTCs from the device and publishes the list; copies it to *out when given.
  void publish_dtcs(v1::DtcList* out);
  // Answers a command; a failure is logged, and `failed_in` (when set) becomes error.phase.
  void reply(const v1::Command& cmd, v1::Outcome outcome, const Status& st,
             v1::Phase failed_in = v1::PHASE_UNSPECIFIED);
  // A cumulative ChunkAck (QoS 0).
  void send_ack(const std::string& transfer_id, uint64_t next_offset, uint64_t durable_offset,
                const Status& err);

 private:
  const AgentConfig& cfg_;
  Device& dev_;
  const DiskState& disk_;
  const AgentClock& clock_;
  Transport* transport_ = nullptr;
  std::unique_ptr<trust::PrivateKey> ecu_key_;
  const uint64_t boot_id_;
  std::string correlation_;
  std::chrono::steady_clock::time_point last_progress_{};
};

}  // namespace ota::agent_impl
