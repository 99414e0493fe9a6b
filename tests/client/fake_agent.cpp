#include "fake_agent.hpp"

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"

namespace ota::test {
namespace {

std::string bytes_of(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

const char* body_name(const v1::Command& cmd) {
  switch (cmd.body_case()) {
    case v1::Command::kStartTransfer:
      return "start_transfer";
    case v1::Command::kInstall:
      return "install";
    case v1::Command::kActivate:
      return "activate";
    case v1::Command::kCommit:
      return "commit";
    case v1::Command::kRollback:
      return "rollback";
    case v1::Command::kCancel:
      return "cancel";
    case v1::Command::kClearDtcs:
      return "clear_dtcs";
    default:
      return "other";
  }
}

}  // namespace

FakeAgent::FakeAgent(std::unique_ptr<Transport> transport, std::string ecu_id, std::string version,
                     std::string image, FakeAgentScript script)
    : transport_(std::move(transport)), ecu_id_(std::move(ecu_id)), script_(script) {
  banks_[0] = Bank{std::move(version), bytes_of(Sha256::of(image))};
}

FakeAgent::~FakeAgent() { transport_->disconnect(std::chrono::seconds(1)); }

Status FakeAgent::start() {
  transport_->on_message([this](TransportMessage&& m) { on_message(m); });
  OTA_RETURN_IF_ERROR(transport_->connect(std::chrono::seconds(5)));
  OTA_RETURN_IF_ERROR(transport_->subscribe(topics::ecu_down_filter(ecu_id_), 1));
  std::lock_guard<std::mutex> lock(mu_);
  publish_hello();
  return Status::ok();
}

void FakeAgent::observe_commands(CommandObserver observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observer_ = std::move(observer);
}

void FakeAgent::on_first_chunk(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  first_chunk_ = std::move(fn);
}

FakeAgent::Snapshot FakeAgent::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot s;
  s.active_version = banks_[active_].version;
  s.active_sha256 = banks_[active_].sha256;
  s.trial = trial_;
  s.phase = phase_;
  s.commands = commands_;
  return s;
}

void FakeAgent::on_message(const TransportMessage& m) {
  std::string ecu;
  topics::Leaf leaf = topics::Leaf::kUnknown;
  if (!topics::parse_ecu_topic(m.topic, &ecu, &leaf) || ecu != ecu_id_) return;
  if (leaf == topics::Leaf::kData) return on_chunk(m.payload);
  if (leaf != topics::Leaf::kCmd) return;
  v1::Command cmd;
  if (!cmd.ParseFromString(m.payload)) return;
  CommandObserver observer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    observer = observer_;
  }
  if (observer) observer(ecu_id_, cmd);
  v1::Result r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    commands_.push_back(body_name(cmd));
    if (cmd.has_install() && script_.lost_installs > 0) {
      --script_.lost_installs;
      ++boot_id_;  // restarted: the command died with the process
      publish_hello();
      return;
    }
    r = handle(cmd);
  }
  r.set_correlation_id(cmd.correlation_id());
  (void)transport_->publish(topics::ecu(ecu_id_, topics::Leaf::kResult), r.SerializeAsString(), 1, false);
}

void FakeAgent::on_chunk(const std::string& payload) {
  codec::ChunkView c;
  if (!codec::decode_chunk(payload, &c).is_ok()) return;
  std::function<void()> first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::swap(first, first_chunk_);
  }
  if (first) first();  // before the chunk is acknowledged: the sender sees it at its next wake-up
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ != v1::PHASE_TRANSFER || c.transfer_id != transfer_id_) return;
    if (script_.corrupt_acks > 0) {
      --script_.corrupt_acks;
      ack(received_.size(), v1::ERROR_CODE_CORRUPT);
    } else if (c.offset > received_.size() || crc32c(c.data.data(), c.data.size()) != c.crc32c) {
      ack(received_.size(), v1::ERROR_CODE_CORRUPT);
    } else {
      if (c.offset == received_.size()) received_.append(c.data.data(), c.data.size());
      ack(received_.size(), v1::ERROR_CODE_OK);  // a chunk held already is acknowledged again
    }
  }
}

v1::Result FakeAgent::handle(const v1::Command& cmd) {
  switch (cmd.body_case()) {
    case v1::Command::kStartTransfer:
      return start_transfer(cmd.start_transfer());
    case v1::Command::kInstall:
      return install(cmd.install());
    case v1::Command::kActivate:
      return activate(cmd.activate());
    case v1::Command::kCommit:
      return commit(cmd.commit());
    case v1::Command::kRollback:
      return roll_back(false);
    case v1::Command::kCancel:
      return roll_back(true);
    case v1::Command::kClearDtcs:
      return answer(v1::OUTCOME_OK);
    default:
      return answer(v1::OUTCOME_REFUSED, v1::ERROR_CODE_UNSUPPORTED, "not scripted");
  }
}

v1::Result FakeAgent::start_transfer(const v1::StartTransfer& st) {
  if (trial_) return answer(v1::OUTCOME_REFUSED, v1::ERROR_CODE_REJECTED, "on trial");
  v1::Result r;
  const bool same = st.transfer_id() == transfer_id_;
  if (same && (phase_ == v1::PHASE_STAGED || (phase_ == v1::PHASE_DONE && done_transfer_ == transfer_id_))) {
    r = answer(v1::OUTCOME_OK);
    r.mutable_transfer_ready()->set_resume_offset(target_.payload_size());
    return r;
  }
  if (!same || phase_ != v1::PHASE_TRANSFER) {
    transfer_id_ = st.transfer_id();
    target_ = st.target();
    received_.clear();
    banks_[1 - active_] = Bank{};
  }
  chunk_size_ = st.chunk_size();
  phase_ = v1::PHASE_TRANSFER;
  r = answer(v1::OUTCOME_OK);
  r.mutable_transfer_ready()->set_resume_offset(received_.size());
  return r;
}

v1::Result FakeAgent::install(const v1::Install& in) {
  if (in.transfer_id() != transfer_id_)
    return answer(v1::OUTCOME_REFUSED, v1::ERROR_CODE_REJECTED, "no such transfer");
  if (phase_ == v1::PHASE_STAGED) return answer(v1::OUTCOME_OK);
  if (phase_ != v1::PHASE_TRANSFER)
    return answer(v1::OUTCOME_REFUSED, v1::ERROR_CODE_REJECTED, "not transferring");
  if (script_.incomplete_installs > 0 && !received_.empty()) {
    --script_.incomplete_installs;
    received_.resize((received_.size() - 1) / chunk_size_ * chunk_size_);
  }
  if (received_.size() < target_.payload_size())
    return answer(v1::OUTCOME_FAILED, v1::ERROR_CODE_NOT_FOUND, "not every byte is durable",
                  v1::PHASE_INSTALL);
  if (bytes_of(Sha256::of(received_)) != target_.payload_sha256()) {
    received_.clear();
    return answer(v1::OUTCOME_FAILED, v1::ERROR_CODE_HASH_MISMATCH, "payload digest", v1::PHASE_INSTALL);
  }
  banks_[1 - active_] = Bank{target_.version(), target_.sha256()};
  phase_ = v1::PHASE_STAGED;
  return answer(v1::OUTCOME_OK);
}

v1::Result FakeAgent::activate(const v1::Activate& act) {
  if (act.transfer_id() == transfer_id_ && phase_ == v1::PHASE_TRIAL) return answer(v1::OUTCOME_OK);
  if (act.transfer_id() != transfer_id_ || phase_ != v1::PHASE_STAGED)
    return answer(v1::OUTCOME_REFUSED, v1::ERROR_CODE_REJECTED, "nothing staged");
  if (script_.health_fails) {
    forget_transfer();
    publish_hello();
    return answer(v1::OUTCOME_ROLLED_BACK, v1::ERROR_CODE_ABORTED, "health check failed", v1::PHASE_HEALTH);
  }
  previous_ = active_;
  active_ = 1 - active_;
  trial_ = true;
  phase_ = v1::PHASE_TRIAL;
  publish_hello();
  return answer(v1::OUTCOME_OK);
}

v1::Result FakeAgent::commit(const v1::Commit& c) {
  if (c.transfer_id() == done_transfer_ && phase_ == v1::PHASE_DONE) return answer(v1::OUTCOME_OK);
  if (script_.fall_backs > 0 && phase_ == v1::PHASE_TRIAL) {
    --script_.fall_backs;
    active_ = previous_;
    trial_ = false;
    phase_ = v1::PHASE_STAGED;
    if (script_.fall_back_loses_image) forget_transfer();
    ++boot_id_;
    publish_hello();
  }
  if (c.transfer_id() != transfer_id_ || phase_ != v1::PHASE_TRIAL)
    return answer(v1::OUTCOME_REFUSED, v1::ERROR_CODE_REJECTED, "not on trial");
  if (script_.commit_failures > 0) {
    --script_.commit_failures;
    return answer(v1::OUTCOME_FAILED, v1::ERROR_CODE_IO_ERROR, "commit flag not written", v1::PHASE_COMMIT);
  }
  trial_ = false;
  phase_ = v1::PHASE_DONE;
  done_transfer_ = transfer_id_;
  publish_hello();
  return answer(v1::OUTCOME_OK);
}

v1::Result FakeAgent::roll_back(bool is_cancel) {
  if (phase_ == v1::PHASE_DONE) return answer(v1::OUTCOME_ROLLED_BACK);
  if (trial_) {
    if (is_cancel) return answer(v1::OUTCOME_REFUSED, v1::ERROR_CODE_REJECTED, "on trial: roll back instead");
    active_ = previous_;
    trial_ = false;
  }
  forget_transfer();
  publish_hello();
  return answer(v1::OUTCOME_ROLLED_BACK);
}

void FakeAgent::forget_transfer() {
  banks_[1 - active_] = Bank{};
  transfer_id_.clear();
  received_.clear();
  phase_ = v1::PHASE_IDLE;
}

void FakeAgent::ack(uint64_t next, v1::ErrorCode error) {
  v1::ChunkAck a;
  a.set_transfer_id(transfer_id_);
  a.set_next_offset(next);
  a.set_durable_offset(next);
  if (error != v1::ERROR_CODE_OK) {
    a.mutable_error()->set_code(error);
    a.mutable_error()->set_message("chunk refused");
  }
  (void)transport_->publish(topics::ecu(ecu_id_, topics::Leaf::kAck), a.SerializeAsString(), 1, false);
}

void FakeAgent::publish_hello() {
  v1::Hello h;
  codec::set_protocol(h.mutable_protocol());
  h.set_online(true);
  h.set_boot_id(boot_id_);
  auto* inv = h.mutable_inventory();
  inv->set_ecu_id(ecu_id_);
  inv->set_active_bank(active_ == 0 ? v1::BANK_A : v1::BANK_B);
  for (int i = 0; i < 2; ++i) {
    auto* b = inv->add_banks();
    b->set_bank(i == 0 ? v1::BANK_A : v1::BANK_B);
    b->set_version(banks_[i].version);
    b->set_sha256(banks_[i].sha256);
  }
  inv->set_bank_size(1 << 20);
  inv->set_free_space(1 << 20);
  (void)transport_->publish(topics::ecu(ecu_id_, topics::Leaf::kHello), h.SerializeAsString(), 1, true);
}

v1::Result FakeAgent::answer(v1::Outcome outcome, v1::ErrorCode code, const std::string& message,
                             v1::Phase error_phase) {
  v1::Result r;
  codec::set_protocol(r.mutable_protocol());
  r.set_ecu_id(ecu_id_);
  r.set_outcome(outcome);
  r.set_phase(phase_);
  r.set_active_bank(active_ == 0 ? v1::BANK_A : v1::BANK_B);
  r.set_active_version(banks_[active_].version);
  if (code != v1::ERROR_CODE_OK) {
    r.mutable_error()->set_code(code);
    r.mutable_error()->set_message(message);
    r.mutable_error()->set_phase(error_phase);
  }
  return r;
}

}  // namespace ota::test
