// Carrying out a group's recorded decision: Commit to the members on trial (then clearing the DTCs
// the update resolves), or Rollback / Cancel to every member but the skipped ones. Each ECU's result
// is journaled as soon as it is known; a resumed runner sends the same command again (idempotent on
// the agent) to the members whose result was not.
#include "campaign/runner.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/log.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "campaign";
constexpr int kCommitAttempts = 5;
constexpr std::chrono::milliseconds kCommitBackoff{200};  // times the attempt number

// The first error of several threads.
class FirstError {
 public:
  void add(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_.is_ok()) first_ = st;
  }
  Status get() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }

 private:
  std::mutex mu_;
  Status first_;
};

}  // namespace

Status CampaignRunner::Impl::commit_group(const Members& members) {
  std::vector<std::string> trial;
  for (auto* e : members) {
    if (!e->finished()) trial.push_back(e->ecu_id());
  }
  publish_status(v1::CampaignStatus::CAMPAIGN_STATE_COMMITTING);
  FirstError journal_error;
  parallel(trial, [&](const std::string& id) { journal_error.add(commit(journal_.ecu(id))); });
  return journal_error.get();
}

// Commits one ECU. The group decided to commit: a failing commit is retried, never turned into a
// rollback of this ECU alone (the others may have committed already), and an ECU found back on its
// previous image is rolled forward first. Returns the journal write's status; the ECU's own outcome
// goes into its report.
Status CampaignRunner::Impl::commit(v1::EcuJournal* e) {
  v1::Command cmd;
  cmd.set_campaign_id(journal_.campaign().campaign_id());
  cmd.mutable_commit()->set_transfer_id(e->transfer_id());
  Result<v1::Result> r = Status(Code::kInternal, "commit not sent");
  Status st;
  for (int attempt = 1; attempt <= kCommitAttempts; ++attempt) {
    const auto t0 = clock_.now();
    r = call_with_retry(e->ecu_id(), cmd, options_.agent_timeout);
    add_time(e, v1::PHASE_COMMIT, t0);
    if (r && r->outcome() == v1::OUTCOME_OK) break;
    st = r ? codec::from_wire(r->error()) : r.status();
    if (st.is_ok()) st = Status(Code::kRejected, std::string("answered ") + v1::Outcome_Name(r->outcome()));
    OTA_LOGW(kLog, "%s: commit attempt %d failed: %s", e->ecu_id().c_str(), attempt, st.to_string().c_str());
    if (r && r->outcome() == v1::OUTCOME_REFUSED) {
      // Not on trial: back on its previous image (its bootloader fell back, or it failed its health
      // check after a restart) while the others commit. The group's decision holds for it too.
      if (Status rf = roll_forward(e); !rf.is_ok()) {
        st = rf.with_context("roll forward");
        OTA_LOGW(kLog, "%s: %s", e->ecu_id().c_str(), st.to_string().c_str());
      }
      continue;
    }
    clock_.sleep_for(kCommitBackoff * attempt);
  }
  if (!r || r->outcome() != v1::OUTCOME_OK) {
    mark_failed(e, st.with_context("commit failed after retries; the ECU stays on trial"), v1::PHASE_COMMIT);
    return save();
  }
  // The ECU's own word that it committed, when it has a key: kept in the report as received.
  const std::string signed_result = r->SerializeAsString();
  auto key = options_.ecu_keys.find(e->ecu_id());
  if (key != options_.ecu_keys.end()) {
    Status sig = trust::verify_result_signature(signed_result, key->second);
    if (!sig.is_ok()) {
      mark_failed(e, sig, v1::PHASE_COMMIT);
      return save();
    }
  }
  if (!r->ecu_signature().empty()) {
    std::lock_guard<std::mutex> lock(journal_mu_);
    e->mutable_report()->set_ecu_signed_result(signed_result);
  }
  clear_resolved_dtcs(e);
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    set_completed_step(e, EcuStep::kDone);
    e->mutable_report()->set_result(v1::SUCCESS);
    e->mutable_report()->set_version_after(journal_.target(e->ecu_id())->version());
    e->set_finished(true);
  }
  return save();
}

// Brings a member of a group decided "commit" back onto its trial: Activate the verified image it
// still holds in its other bank, or, when it holds it no more, send and install it again first.
Status CampaignRunner::Impl::roll_forward(v1::EcuJournal* e) {
  OTA_LOGW(kLog, "%s: not on trial although its group decided to commit; rolling it forward",
           e->ecu_id().c_str());
  v1::Phase phase = v1::PHASE_ACTIVATE;
  Status st = activate(e, &phase);
  if (st.code() != Code::kRejected) return st;  // OK, or a failure a new image would not cure
  OTA_LOGW(kLog, "%s: %s; sending the image again", e->ecu_id().c_str(), st.message().c_str());
  auto plan = prepare(e);
  if (!plan) return plan.status();
  OTA_RETURN_IF_ERROR(stage(e, *plan, &phase));
  return activate(e, &phase);
}

void CampaignRunner::Impl::clear_resolved_dtcs(v1::EcuJournal* e) {
  const auto* t = journal_.target(e->ecu_id());
  if (t->resolves_dtcs().empty()) return;
  v1::Command cmd;
  for (uint32_t code : t->resolves_dtcs()) cmd.mutable_clear_dtcs()->add_codes(code);
  auto r = call_timed(e, cmd, v1::PHASE_DONE);
  if (!r)
    OTA_LOGW(kLog, "%s: clearing resolved DTCs: %s", e->ecu_id().c_str(), r.status().to_string().c_str());
}

// Rolls back (or cancels) every member but the skipped ones. Failed members are told too
// (idempotent): one whose activation timed out may still be on trial.
Status CampaignRunner::Impl::roll_back_group(const v1::GroupJournal& group, const Members& members) {
  const bool cancel = recorded_decision(group) == v1::GROUP_DECISION_CANCEL;
  std::vector<std::string> back;
  for (auto* e : members) {
    if (e->report().result() != v1::SKIPPED) back.push_back(e->ecu_id());
  }
  publish_status(cancel ? v1::CampaignStatus::CAMPAIGN_STATE_CANCELLING
                        : v1::CampaignStatus::CAMPAIGN_STATE_ROLLING_BACK);
  FirstError journal_error;
  parallel(back, [&](const std::string& id) {
    v1::EcuJournal* e = journal_.ecu(id);
    v1::Command cmd;
    if (cancel) {
      cmd.mutable_cancel()->set_transfer_id(e->transfer_id());
    } else {
      cmd.mutable_rollback()->set_transfer_id(e->transfer_id());
      cmd.mutable_rollback()->set_reason("atomic group " + std::to_string(group.group()) + " failed");
    }
    auto r = roll_back(e, cmd);
    {
      std::lock_guard<std::mutex> lock(journal_mu_);
      if (e->report().result() == v1::FAILED) return;  // keeps its own failure in the report
      e->mutable_report()->set_result(cancel ? v1::CANCELLED : v1::ROLLED_BACK);
      if (!r) codec::to_wire(r.status(), v1::PHASE_ROLLBACK, e->mutable_report()->mutable_error());
      e->set_finished(true);
    }
    journal_error.add(save());
  });
  return journal_error.get();
}

// One member of a group decided "rollback" or "cancel", told until it answers ROLLED_BACK: whatever
// it did meanwhile (restarted on trial, came back late), it ends on its previous image. A member
// that refuses Cancel because it is on trial is rolled back instead. A member that never staged its
// image was never sent Activate, so its boot bank never changed: it is told once, and a silent one
// (the usual reason it never staged) does not hold the campaign for every attempt's timeouts.
Result<v1::Result> CampaignRunner::Impl::roll_back(v1::EcuJournal* e, const v1::Command& first) {
  v1::Command cmd = first;
  Result<v1::Result> r = Status(Code::kInternal, "rollback not sent");
  const int attempts = e->phase() >= v1::PHASE_STAGED ? kCommitAttempts : 1;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    r = call_timed(e, cmd, v1::PHASE_ROLLBACK);
    if (r) return r;
    OTA_LOGW(kLog, "%s: %s attempt %d failed: %s", e->ecu_id().c_str(),
             cmd.has_cancel() ? "cancel" : "rollback", attempt, r.status().to_string().c_str());
    if (cmd.has_cancel() && r.status().code() == Code::kRejected) {
      cmd.mutable_rollback()->set_transfer_id(first.cancel().transfer_id());
      cmd.mutable_rollback()->set_reason("cancelled");
      continue;
    }
    clock_.sleep_for(kCommitBackoff * attempt);
  }
  return r;
}

}  // namespace ota::client
