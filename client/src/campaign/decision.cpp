#include "campaign/decision.hpp"

#include <algorithm>

namespace ota::client {

GroupDecision decide(const GroupOutcome& outcome) {
  const bool failed = std::any_of(outcome.members.begin(), outcome.members.end(), [](MemberOutcome m) {
    return m == MemberOutcome::kFailed || m == MemberOutcome::kCancelled;
  });
  if (outcome.point == DecisionPoint::kBarrier) {
    if (outcome.cancel_requested) return v1::GROUP_DECISION_CANCEL;
    if (failed && outcome.atomic) return v1::GROUP_DECISION_ROLLBACK;
    return v1::GROUP_DECISION_UNDECIDED;
  }
  return failed && outcome.atomic ? v1::GROUP_DECISION_ROLLBACK : v1::GROUP_DECISION_COMMIT;
}

const char* decision_name(GroupDecision decision) {
  switch (decision) {
    case v1::GROUP_DECISION_COMMIT:
      return "commit";
    case v1::GROUP_DECISION_ROLLBACK:
      return "rollback";
    case v1::GROUP_DECISION_CANCEL:
      return "cancel";
    default:
      return "undecided";
  }
}

}  // namespace ota::client
