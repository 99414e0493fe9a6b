// The actions of StartTransfer and Install (rows of state_machine.cpp; docs/PROTOCOL.md 6.1, 7).
#include <unistd.h>

#include "agent_impl.hpp"
#include "ota/core/log.hpp"

namespace ota::agent_impl {

namespace {
constexpr const char* kLog = "agent";
}

// Runs the checks of docs/PROTOCOL.md 6.1; a refusal is answered here (last_error saved).
bool AgentCore::accept_target(const v1::Command& cmd) {
  uint64_t director_version = 0;
  Status st = checks_.check(cmd.start_transfer(), disk_.view(), &director_version);
  // Recorded even when a later check refuses the transfer: no replay of older director metadata.
  const std::string accepted = st.is_ok() ? cmd.start_transfer().transfer_id() : std::string();
  disk_.change([&](v1::AgentDiskState& s) { TargetChecks::record(director_version, accepted, &s); });
  if (st.is_ok()) return true;
  fail(cmd, st, v1::PHASE_TRANSFER, v1::OUTCOME_REFUSED);
  return false;
}

void AgentCore::refuse_during_trial(const v1::Command& cmd) {
  fail(cmd, Status(Code::kRejected, "an activated update awaits commit or rollback"), v1::PHASE_TRANSFER,
       v1::OUTCOME_REFUSED);
}

// The client restarted or re-synchronised: make what we hold durable and continue from there.
void AgentCore::settle_open_transfer(const v1::Command& cmd) {
  if (!accept_target(cmd)) return;
  Status st = receiver_.make_received_durable();
  if (!st.is_ok()) return fail(cmd, st, v1::PHASE_TRANSFER);
  answer_ready(cmd, receiver_.next_offset());
  publish_state(true);
  out_.publish_hello(true);
}

// A new transfer (from byte 0), or the one held resumed from its durable offset.
void AgentCore::open_transfer(const v1::Command& cmd, bool resume) {
  if (!accept_target(cmd)) return;
  const v1::StartTransfer& req = cmd.start_transfer();
  receiver_.close();
  uint64_t offset = resume ? disk_.view().durable_offset() : 0;
  Status st = disk_.change_and_save([&](v1::AgentDiskState& s) {
    s.set_transfer_id(req.transfer_id());
    *s.mutable_target() = req.target();
    s.set_chunk_size(req.chunk_size());
    s.set_campaign_id(cmd.campaign_id());
    s.set_durable_offset(offset);
    s.set_phase(v1::PHASE_TRANSFER);
    s.clear_last_error();
    // The inactive bank is about to be overwritten: it no longer holds a valid image.
    mutable_bank_record(s, agent::other(active_bank_of(s)))->set_valid(false);
  });
  offset = reopen_receiver(offset, &st);
  if (!st.is_ok()) return fail(cmd, st, v1::PHASE_TRANSFER);
  if (offset > 0) {
    OTA_LOGI(kLog, "%s: resuming %s at byte %llu", cfg_.ecu_id.c_str(), req.transfer_id().c_str(),
             static_cast<unsigned long long>(offset));
  } else {
    OTA_LOGI(kLog, "%s: transfer %s: version %s into bank %s", cfg_.ecu_id.c_str(), req.transfer_id().c_str(),
             req.target().version().c_str(), agent::bank_name(agent::other(active_bank())));
  }
  OTA_LOGD(kLog, "%s: transfer %s: %s payload of %llu bytes for an image of %llu, chunks of %u",
           cfg_.ecu_id.c_str(), req.transfer_id().c_str(),
           req.target().encoding() == v1::PAYLOAD_ENCODING_DELTA ? "delta" : "raw",
           static_cast<unsigned long long>(req.target().payload_size()),
           static_cast<unsigned long long>(req.target().size()), req.chunk_size());
  answer_ready(cmd, receiver_.next_offset());
  publish_state(true);
  out_.publish_hello(true);  // the inactive bank no longer holds an image
}

// Re-hashes the durable prefix and opens the destination after it; a prefix that cannot be read
// back cannot be trusted, so the transfer then starts over. *st carries in the result of recording
// the transfer, and out the result of opening it. Returns the offset opened at.
uint64_t AgentCore::reopen_receiver(uint64_t offset, Status* st) {
  if (st->is_ok() && offset > 0) *st = receiver_.rehash_prefix(offset);
  if (!st->is_ok()) {
    OTA_LOGW(kLog, "%s: cannot resume (%s); restarting transfer", cfg_.ecu_id.c_str(),
             st->to_string().c_str());
    receiver_.reset_hash();
    offset = 0;
    *st = disk_.change_and_save([](v1::AgentDiskState& s) { s.set_durable_offset(0); });
  }
  if (st->is_ok()) *st = receiver_.open_at(offset);
  return offset;
}

void AgentCore::install(const v1::Command& cmd) {
  OTA_LOGI(kLog, "%s: installing %s (version %s) into bank %s", cfg_.ecu_id.c_str(),
           disk_.view().transfer_id().c_str(), disk_.view().target().version().c_str(),
           agent::bank_name(agent::other(active_bank())));
  Status st = receiver_.settle_checkpoints();  // the transfer's last checkpoint
  set_phase(v1::PHASE_INSTALL);
  (void)disk_.save();
  if (st.is_ok()) st = installer_.install();
  if (!st.is_ok()) {
    disk_.change([&](v1::AgentDiskState& s) {
      s.set_phase(v1::PHASE_TRANSFER);
      if (st.code() == Code::kHashMismatch) s.set_durable_offset(0);
    });
    receiver_.forget_payload();
    return fail(cmd, st, v1::PHASE_INSTALL);
  }
  st = disk_.change_and_save([&](v1::AgentDiskState& s) {
    auto* rec = mutable_bank_record(s, agent::other(active_bank_of(s)));
    rec->set_version(s.target().version());
    rec->set_sha256(s.target().sha256());
    rec->set_size(s.target().size());
    rec->set_valid(true);
    s.set_phase(v1::PHASE_STAGED);
  });
  if (!st.is_ok()) return fail(cmd, st, v1::PHASE_INSTALL);
  if (disk_.view().target().encoding() == v1::PAYLOAD_ENCODING_DELTA) {
    (void)::unlink(receiver_.staging_path().c_str());
  }
  OTA_LOGI(kLog, "%s: installed version %s in bank %s", cfg_.ecu_id.c_str(),
           disk_.view().target().version().c_str(), agent::bank_name(agent::other(active_bank())));
  OTA_LOGD(kLog, "%s: image of %llu bytes verified against its SHA-256", cfg_.ecu_id.c_str(),
           static_cast<unsigned long long>(disk_.view().target().size()));
  publish_state(true);
  out_.publish_hello(true);
  answer(cmd, v1::OUTCOME_OK);
}

}  // namespace ota::agent_impl
