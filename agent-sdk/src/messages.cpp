#include "messages.hpp"

#include <random>

#include "device_calls.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/log.hpp"

namespace ota::agent_impl {

namespace {

constexpr const char* kLog = "agent";

uint64_t random_boot_id() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

v1::DtcStatus wire_status(const agent::Dtc& d) {
  return d.active ? v1::DTC_STATUS_ACTIVE : d.confirmed ? v1::DTC_STATUS_CONFIRMED : v1::DTC_STATUS_PENDING;
}

}  // namespace

Outbox::Outbox(const AgentConfig& cfg, Device& dev, const DiskState& disk, const AgentClock& clock)
    : cfg_(cfg), dev_(dev), disk_(disk), clock_(clock), boot_id_(random_boot_id()) {}

v1::Hello Outbox::hello(bool online) const {
  v1::Hello h;
  codec::set_protocol(h.mutable_protocol());
  h.set_online(online);
  h.set_boot_id(boot_id_);
  h.set_timestamp_ms(clock_.unix_ms());
  auto* inv = h.mutable_inventory();
  inv->set_ecu_id(cfg_.ecu_id);
  inv->set_hardware_id(cfg_.hardware_id);
  inv->set_serial(cfg_.serial);
  inv->set_agent_software(std::string("ota-agent-sdk ") + agent::sdk_version());
  disk_.read([&](const v1::AgentDiskState& s) {
    inv->set_active_bank(s.active_bank());
    for (const auto& rec : s.banks()) {
      auto* b = inv->add_banks();
      b->set_bank(rec.bank());
      if (rec.valid()) {
        b->set_version(rec.version());
        b->set_sha256(rec.sha256());
        b->set_size(rec.size());
      }
      b->set_bootable(rec.valid());
    }
  });
  auto* caps = inv->mutable_capabilities();
  caps->set_delta(cfg_.delta_capable);
  caps->set_max_chunk_size(cfg_.max_chunk_size);
  caps->set_max_window(cfg_.max_window);
  caps->add_payload_kinds(v1::PAYLOAD_KIND_FIRMWARE_IMAGE);
  caps->set_signed_reports(ecu_key_ != nullptr);
  if (cfg_.delta_capable) caps->add_delta_methods("ota-delta-1");
  inv->set_bank_size(dev_.bank_size());
  inv->set_free_space(dev_.free_space());
  return h;
}

v1::Result Outbox::result(const v1::Command& cmd, v1::Outcome outcome, const Status& st) const {
  v1::Result r;
  codec::set_protocol(r.mutable_protocol());
  r.set_correlation_id(cmd.correlation_id());
  r.set_ecu_id(cfg_.ecu_id);
  r.set_outcome(outcome);
  disk_.read([&](const v1::AgentDiskState& s) {
    r.set_phase(s.phase());
    if (!st.is_ok()) codec::to_wire(st, s.phase(), r.mutable_error());
    r.set_active_bank(s.active_bank());
    r.set_active_version(active_record(s).version());
  });
  return r;
}

void Outbox::publish(Leaf leaf, const google::protobuf::MessageLite& msg, bool retain, int qos) {
  std::string bytes = msg.SerializeAsString();
  if (leaf == Leaf::kResult && ecu_key_) {
    auto signed_bytes = trust::sign_result(bytes, *ecu_key_);
    if (signed_bytes) {
      bytes = std::move(*signed_bytes);
    } else {
      OTA_LOGE(kLog, "%s: cannot sign a result: %s", cfg_.ecu_id.c_str(),
               signed_bytes.status().to_string().c_str());
    }
  }
  Status st = transport_->publish(topics::ecu(cfg_.ecu_id, leaf), bytes, qos, retain);
  if (!st.is_ok()) OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
}

void Outbox::publish_state(bool force, uint64_t bytes_done) {
  auto now = clock_.steady_now();
  if (!force && now - last_progress_ < cfg_.progress_interval) return;
  last_progress_ = now;
  v1::AgentState s;
  codec::set_protocol(s.mutable_protocol());
  s.set_ecu_id(cfg_.ecu_id);
  uint64_t total = 0;
  disk_.read([&](const v1::AgentDiskState& d) {
    s.set_phase(d.phase() == v1::PHASE_UNSPECIFIED ? v1::PHASE_IDLE : d.phase());
    s.set_campaign_id(d.campaign_id());
    *s.mutable_last_error() = d.last_error();
    total = d.target().payload_size();
  });
  s.set_correlation_id(correlation_);
  s.set_bytes_done(bytes_done);
  s.set_bytes_total(total);
  if (total > 0) s.set_percent(static_cast<uint32_t>(bytes_done * 100 / total));
  s.set_timestamp_ms(clock_.unix_ms());
  publish(Leaf::kState, s, true);
}

void Outbox::publish_dtcs(v1::DtcList* out) {
  std::vector<agent::Dtc> dtcs;
  Status st = guarded("read_dtcs", [&] {
    dtcs = dev_.read_dtcs();
    return Status::ok();
  });
  if (!st.is_ok()) OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
  v1::DtcList list;
  codec::set_protocol(list.mutable_protocol());
  list.set_ecu_id(cfg_.ecu_id);
  list.set_timestamp_ms(clock_.unix_ms());
  for (const auto& d : dtcs) {
    auto* w = list.add_dtcs();
    w->set_code(d.code);
    w->set_status_mask(d.status_mask);
    w->set_status(wire_status(d));
    w->set_first_seen_ms(d.first_seen_ms);
    w->set_last_seen_ms(d.last_seen_ms);
    w->set_occurrences(d.occurrences);
    w->set_description(d.description);
  }
  publish(Leaf::kDtc, list, true);
  if (out) *out = list;
}

void Outbox::reply(const v1::Command& cmd, v1::Outcome outcome, const Status& st, v1::Phase failed_in) {
  v1::Result r = result(cmd, outcome, st);
  if (!st.is_ok() && failed_in != v1::PHASE_UNSPECIFIED) r.mutable_error()->set_phase(failed_in);
  if (!st.is_ok()) {
    OTA_LOGW(kLog, "%s: %s failed in %s: %s", cfg_.ecu_id.c_str(), cmd.correlation_id().c_str(),
             codec::phase_name(r.error().phase()), st.to_string().c_str());
  }
  publish(Leaf::kResult, r, false);
}

void Outbox::send_ack(const std::string& transfer_id, uint64_t next_offset, uint64_t durable_offset,
                      const Status& err) {
  v1::ChunkAck ack;
  ack.set_transfer_id(transfer_id);
  ack.set_next_offset(next_offset);
  ack.set_durable_offset(durable_offset);
  if (!err.is_ok()) codec::to_wire(err, v1::PHASE_TRANSFER, ack.mutable_error());
  // QoS 0: acks are cumulative, so a lost one is covered by the next, and a lost last one by the
  // client's resync; QoS 1 would double the packets on the busiest path.
  publish(Leaf::kAck, ack, false, 0);
}

}  // namespace ota::agent_impl
