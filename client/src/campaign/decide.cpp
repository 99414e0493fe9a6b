// Deciding a staged group: the barrier, the activation of its staged members when the barrier did
// not decide, and the decision made durable before any ECU acts on it.
#include "campaign/runner.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/log.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "campaign";

MemberOutcome member_outcome(const v1::EcuJournal& e) {
  if (e.finished()) {
    switch (e.report().result()) {
      case v1::SKIPPED:
        return MemberOutcome::kSkipped;
      case v1::CANCELLED:
        return MemberOutcome::kCancelled;
      default:
        return MemberOutcome::kFailed;
    }
  }
  switch (completed_step(e)) {
    case EcuStep::kStaged:
      return MemberOutcome::kStaged;
    case EcuStep::kTrial:
    case EcuStep::kDone:
      return MemberOutcome::kTrial;
    case EcuStep::kNone:
      break;
  }
  return MemberOutcome::kFailed;  // never staged: staging marks such a member finished
}

}  // namespace

Status CampaignRunner::Impl::decide_group(v1::GroupJournal* group, const Members& members) {
  GroupDecision decision = decide(outcome_of(DecisionPoint::kBarrier, group->group(), members));
  if (decision == v1::GROUP_DECISION_UNDECIDED) {
    activate_group(members);
    decision = decide(outcome_of(DecisionPoint::kActivated, group->group(), members));
  }
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    record_decision(group, decision);
  }
  // The decision is durable before any ECU acts on it.
  OTA_RETURN_IF_ERROR(save());
  OTA_LOGI(kLog, "group %u: decision %s", group->group(), decision_name(decision));
  return Status::ok();
}

GroupOutcome CampaignRunner::Impl::outcome_of(DecisionPoint point, uint32_t group, const Members& members) {
  GroupOutcome outcome;
  outcome.point = point;
  outcome.atomic = journal_.atomic(group);
  outcome.cancel_requested = cancel_;
  std::lock_guard<std::mutex> lock(journal_mu_);
  for (const auto* e : members) outcome.members.push_back(member_outcome(*e));
  return outcome;
}

void CampaignRunner::Impl::activate_group(const Members& members) {
  std::vector<std::string> staged;
  for (auto* e : members) {
    if (member_outcome(*e) == MemberOutcome::kStaged || member_outcome(*e) == MemberOutcome::kTrial)
      staged.push_back(e->ecu_id());
  }
  publish_status(v1::CampaignStatus::CAMPAIGN_STATE_ACTIVATING);
  parallel(staged, [&](const std::string& id) {
    v1::EcuJournal* e = journal_.ecu(id);
    v1::Phase phase = v1::PHASE_ACTIVATE;
    Status st = activate(e, &phase);
    if (!st.is_ok()) mark_failed(e, st, phase);
  });
}

// Activation and health check; on failure *phase says which of the two failed.
Status CampaignRunner::Impl::activate(v1::EcuJournal* e, v1::Phase* phase) {
  const auto t0 = clock_.now();
  v1::Command cmd;
  cmd.set_campaign_id(journal_.campaign().campaign_id());
  cmd.mutable_activate()->set_transfer_id(e->transfer_id());
  const uint32_t health =
      journal_.campaign().health_timeout_ms() ? journal_.campaign().health_timeout_ms() : 10000;
  cmd.mutable_activate()->set_health_timeout_ms(health);
  auto r = call_with_retry(e->ecu_id(), cmd, options_.agent_timeout + std::chrono::milliseconds(health));
  add_time(e, v1::PHASE_ACTIVATE, t0);
  *phase = v1::PHASE_ACTIVATE;
  if (!r) return r.status();
  if (r->outcome() != v1::OUTCOME_OK) {
    if (r->error().phase() != v1::PHASE_UNSPECIFIED) *phase = r->error().phase();
    return codec::from_wire(r->error());
  }
  std::lock_guard<std::mutex> lock(journal_mu_);
  set_completed_step(e, EcuStep::kTrial);
  return Status::ok();
}

}  // namespace ota::client
