// The actions that move between banks (rows of state_machine.cpp; docs/PROTOCOL.md 7): recovery at
// start, Activate with its health check, Commit, Rollback and Cancel.
#include <thread>

#include "agent_impl.hpp"
#include "device_calls.hpp"
#include "digests.hpp"
#include "ota/core/log.hpp"

namespace ota::agent_impl {

namespace {

constexpr const char* kLog = "agent";

const std::string& rollback_reason(const v1::Command& cmd) {
  static const std::string kCancelled = "cancelled";
  return cmd.has_rollback() ? cmd.rollback().reason() : kCancelled;
}

}  // namespace

// First start: the factory image is in bank A.
Status AgentCore::create_state() {
  v1::BankRecord factory;
  factory.set_version(cfg_.factory_version);
  std::unique_ptr<RandomReader> reader;
  Status st = open_bank_reader(dev_, Bank::kA, &reader);
  if (st.is_ok()) {
    uint64_t n = cfg_.factory_image_size ? cfg_.factory_image_size : reader->size();
    auto digest = sha256_reader(*reader, n);
    if (!digest) return digest.status().with_context("hashing the factory image");
    factory.set_sha256(digest_bytes(*digest));
    factory.set_size(n);
  } else {
    OTA_LOGW(kLog, "%s: factory image unreadable (%s): deltas will be refused until a full update",
             cfg_.ecu_id.c_str(), st.to_string().c_str());
  }
  return disk_.create(factory);
}

// A start on a trial the agent had answered (saved TRIAL): the client counted this ECU healthy and may
// have decided, durably, to commit the whole group, so the agent does not abort on its own. It keeps
// the trial when the device booted the trial bank and is still healthy, and waits for Commit or
// Rollback; only a device that booted the previous bank (its bootloader gave up) or fails its check
// again is rolled back, keeping the verified image staged so that the client can activate it again.
Status AgentCore::resume_trial() {
  const Bank trial = active_bank();
  const Bank prev = from_wire(disk_.view().previous_bank());
  Bank booted = trial;
  Status asked = guarded("booted_bank", [&] {
    booted = dev_.booted_bank(trial);
    return Status::ok();
  });
  if (!asked.is_ok()) {
    OTA_LOGW(kLog, "%s: %s; taking bank %s as booted", cfg_.ecu_id.c_str(), asked.to_string().c_str(),
             agent::bank_name(trial));
    booted = trial;
  }
  if (booted != trial) {
    return fall_back_from_trial(
        prev, Status(Code::kAborted, std::string("the device booted bank ") + agent::bank_name(booted) +
                                         " instead of trial bank " + agent::bank_name(trial)));
  }
  Status health = run_health_check(trial, cfg_.health_timeout);
  if (!health.is_ok()) return fall_back_from_trial(prev, health.with_context("health check after restart"));
  OTA_LOGI(kLog, "%s: restarted on trial bank %s, healthy: waiting for the client's commit or rollback",
           cfg_.ecu_id.c_str(), agent::bank_name(trial));
  return Status::ok();
}

// The trial is over without a commit: back on `previous`, the trial image still verified in the other
// bank and its transfer held (STAGED), `why` as the last error.
Status AgentCore::fall_back_from_trial(Bank previous, const Status& why) {
  OTA_LOGW(kLog, "%s: trial of bank %s ended on restart: %s; back on bank %s", cfg_.ecu_id.c_str(),
           agent::bank_name(active_bank()), why.message().c_str(), agent::bank_name(previous));
  Status st = guarded("rollback", [&] { return dev_.rollback(previous); });
  if (!st.is_ok()) return st.with_context("rollback after restart");
  return disk_.change_and_save([&](v1::AgentDiskState& s) {
    s.set_active_bank(to_wire(previous));
    s.set_trial(false);
    s.set_phase(v1::PHASE_STAGED);
    codec::to_wire(why, v1::PHASE_HEALTH, s.mutable_last_error());
  });
}

// A start in the middle of an activation the agent had not answered (saved ACTIVATE): the client has
// not counted this ECU, so the agent goes back to the previous bank, as a bootloader does when the
// trial boot is not confirmed, and a later Activate is refused with this cause.
Status AgentCore::roll_back_unconfirmed_trial() {
  const Bank prev = from_wire(disk_.view().previous_bank());
  OTA_LOGW(kLog, "%s: restarted during the trial of bank %s; rolling back to %s", cfg_.ecu_id.c_str(),
           agent::bank_name(active_bank()), agent::bank_name(prev));
  Status st = guarded("rollback", [&] { return dev_.rollback(prev); });
  if (!st.is_ok()) return st.with_context("rollback after restart");
  return disk_.change_and_save([&](v1::AgentDiskState& s) {
    mutable_bank_record(s, active_bank_of(s))->set_valid(false);
    s.set_active_bank(to_wire(prev));
    s.set_trial(false);
    s.set_phase(v1::PHASE_IDLE);
    codec::to_wire(Status(Code::kAborted, "agent restarted before commit; rolled back to bank " +
                                              std::string(agent::bank_name(prev))),
                   v1::PHASE_HEALTH, s.mutable_last_error());
  });
}

// Killed while installing: the inactive bank is incomplete; the transfer itself is intact.
Status AgentCore::return_to_transfer() {
  return disk_.change_and_save([](v1::AgentDiskState& s) { s.set_phase(v1::PHASE_TRANSFER); });
}

void AgentCore::activate(const v1::Command& cmd) {
  const Bank prev = active_bank();
  const Bank next = agent::other(prev);
  OTA_LOGI(kLog, "%s: activating bank %s (version %s)", cfg_.ecu_id.c_str(), agent::bank_name(next),
           disk_.view().target().version().c_str());
  Status st = record_trial_intent(prev, next);
  if (!st.is_ok()) return fail(cmd, st, v1::PHASE_ACTIVATE);
  publish_state(true);
  const agent::ImageInfo info = image_info(disk_.view().target());
  st = guarded("activate", [&] { return dev_.activate(next, info); });
  v1::Phase failed_phase = v1::PHASE_ACTIVATE;
  if (st.is_ok()) {
    set_phase(v1::PHASE_HEALTH);
    auto timeout = cmd.activate().health_timeout_ms() > 0
                       ? std::chrono::milliseconds(cmd.activate().health_timeout_ms())
                       : cfg_.health_timeout;
    OTA_LOGD(kLog, "%s: bank %s activated; health check (%lld ms)", cfg_.ecu_id.c_str(),
             agent::bank_name(next), static_cast<long long>(timeout.count()));
    st = run_health_check(next, timeout);
    failed_phase = v1::PHASE_HEALTH;
  }
  if (!st.is_ok()) {
    Status rb = roll_back_to(prev);
    Status reported = rb.is_ok()
                          ? st.with_context(std::string("rolled back to bank ") + agent::bank_name(prev))
                          : st.with_context("rollback failed too (" + rb.to_string() + ")");
    out_.publish_hello(true);
    return fail(cmd, reported, failed_phase, v1::OUTCOME_ROLLED_BACK);
  }
  // The answer is this ECU's vote: it is durable (TRIAL: kept across a restart) before it is given,
  // and before the state says so. A vote that cannot be saved is not given.
  st = disk_.change_and_save([](v1::AgentDiskState& s) { s.set_phase(v1::PHASE_TRIAL); });
  if (!st.is_ok()) {
    Status rb = roll_back_to(prev);
    out_.publish_hello(true);
    return fail(cmd, rb.is_ok() ? st.with_context("saving the trial; rolled back") : st, v1::PHASE_HEALTH,
                v1::OUTCOME_ROLLED_BACK);
  }
  OTA_LOGI(kLog, "%s: bank %s healthy, on trial: waiting for the client's commit or rollback",
           cfg_.ecu_id.c_str(), agent::bank_name(next));
  publish_state(true);
  out_.publish_hello(true);
  answer(cmd, v1::OUTCOME_OK);
}

// The intent goes to disk before the bank switch: a kill from then on restarts into a rollback to
// `prev`. When it cannot be saved nothing has changed.
Status AgentCore::record_trial_intent(Bank prev, Bank next) {
  Status st = disk_.change_and_save([&](v1::AgentDiskState& s) {
    s.set_trial(true);
    s.set_previous_bank(to_wire(prev));
    s.set_active_bank(to_wire(next));
    s.set_phase(v1::PHASE_ACTIVATE);
  });
  if (!st.is_ok()) {
    disk_.change([&](v1::AgentDiskState& s) {
      s.set_trial(false);
      s.set_active_bank(to_wire(prev));
      s.set_phase(v1::PHASE_STAGED);
    });
  }
  return st;
}

// The check runs on its own thread so that a hung check cannot hang the agent; when it does not
// answer in time (on the agent's clock) it is left to finish on its own.
Status AgentCore::run_health_check(Bank bank, std::chrono::milliseconds timeout) {
  auto pending = std::make_shared<PendingStatus>();
  agent::Device* dev = &dev_;
  std::thread([pending, dev, bank, timeout] {
    pending->set(guarded("health_check", [&] { return dev->health_check(bank, timeout); }));
  }).detach();
  if (!clock_->wait(*pending, timeout)) {
    return Status(Code::kTimeout,
                  "health check did not answer within " + std::to_string(timeout.count()) + " ms");
  }
  return pending->value();
}

// Returns to `previous` after a failed activation or health check, or on command.
Status AgentCore::roll_back_to(Bank previous) {
  OTA_LOGI(kLog, "%s: rolling back to bank %s", cfg_.ecu_id.c_str(), agent::bank_name(previous));
  set_phase(v1::PHASE_ROLLBACK);
  Status st = guarded("rollback", [&] { return dev_.rollback(previous); });
  Status saved = disk_.change_and_save([&](v1::AgentDiskState& s) {
    auto* current = mutable_bank_record(s, active_bank_of(s));
    if (active_bank_of(s) != previous) current->set_valid(false);
    s.set_active_bank(to_wire(previous));
    s.set_trial(false);
    s.set_phase(v1::PHASE_IDLE);
    s.clear_transfer_id();
  });
  return st.is_ok() ? saved : st;
}

void AgentCore::commit(const v1::Command& cmd) {
  set_phase(v1::PHASE_COMMIT);
  Status st = guarded("commit", [&] { return dev_.commit(active_bank()); });
  if (!st.is_ok()) {
    // Stay on trial: the client decided to commit the whole group and retries. The ECU still runs
    // the healthy new image, and a restart keeps the trial (resume_trial).
    set_phase(v1::PHASE_TRIAL);
    return fail(cmd, st, v1::PHASE_COMMIT);
  }
  st = disk_.change_and_save([](v1::AgentDiskState& s) {
    s.set_trial(false);
    s.set_phase(v1::PHASE_DONE);
  });
  if (st.is_ok()) {
    OTA_LOGI(kLog, "%s: committed bank %s (version %s)", cfg_.ecu_id.c_str(), agent::bank_name(active_bank()),
             active_version().c_str());
  }
  publish_state(true);
  out_.publish_hello(true);
  answer(cmd, st.is_ok() ? v1::OUTCOME_OK : v1::OUTCOME_FAILED, st);
}

void AgentCore::roll_back_trial(const v1::Command& cmd) {
  OTA_LOGI(kLog, "%s: rollback requested%s%s", cfg_.ecu_id.c_str(), rollback_reason(cmd).empty() ? "" : ": ",
           rollback_reason(cmd).c_str());
  receiver_.close();
  receiver_.forget_payload();
  Status st = roll_back_to(from_wire(disk_.view().previous_bank()));
  publish_state(true);
  out_.publish_hello(true);
  answer(cmd, st.is_ok() ? v1::OUTCOME_ROLLED_BACK : v1::OUTCOME_FAILED, st);
}

// Rollback or Cancel before activation: the transfer is forgotten, a staged bank becomes invalid.
void AgentCore::abandon_transfer(const v1::Command& cmd) {
  if (cmd.has_cancel()) {
    OTA_LOGI(kLog, "%s: transfer %s cancelled", cfg_.ecu_id.c_str(), disk_.view().transfer_id().c_str());
  } else {
    OTA_LOGI(kLog, "%s: rollback requested%s%s", cfg_.ecu_id.c_str(),
             rollback_reason(cmd).empty() ? "" : ": ", rollback_reason(cmd).c_str());
  }
  receiver_.close();
  receiver_.forget_payload();
  Status st = disk_.change_and_save([](v1::AgentDiskState& s) {
    if (s.phase() == v1::PHASE_STAGED)
      mutable_bank_record(s, agent::other(active_bank_of(s)))->set_valid(false);
    s.set_phase(v1::PHASE_IDLE);
    s.clear_transfer_id();
  });
  publish_state(true);
  out_.publish_hello(true);
  answer(cmd, st.is_ok() ? v1::OUTCOME_ROLLED_BACK : v1::OUTCOME_FAILED, st);
}

// Rollback or Cancel after the commit: nothing changes, and the answer says it is rolled back as
// far as it ever will be.
void AgentCore::keep_done(const v1::Command& cmd) {
  OTA_LOGI(kLog, "%s: rollback requested%s%s after the commit: nothing to do", cfg_.ecu_id.c_str(),
           rollback_reason(cmd).empty() ? "" : ": ", rollback_reason(cmd).c_str());
  receiver_.close();
  receiver_.forget_payload();
  publish_state(true);
  out_.publish_hello(true);
  answer(cmd, v1::OUTCOME_ROLLED_BACK);
}

}  // namespace ota::agent_impl
