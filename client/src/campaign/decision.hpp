// The decision a group of ECUs takes, as a pure function of where its members stand: no I/O, no
// clock, no journal. docs/PROTOCOL.md section 8 gives the same table.
//
//   point      cancel requested  a member failed  atomic  ->  decision
//   barrier    yes               any              any         CANCEL
//   barrier    no                yes              yes         ROLLBACK
//   barrier    no                otherwise                    UNDECIDED: activate the staged members
//   activated  any               yes              yes         ROLLBACK
//   activated  any               otherwise                    COMMIT
//
// "Failed" counts members that failed by themselves or whose transfer the cancel stopped; skipped
// members (already on the target) take no part. A cancel requested once activation has begun is too
// late: the group finishes with COMMIT or ROLLBACK.
#pragma once

#include <vector>

#include "ota/v1/state.pb.h"

namespace ota::client {

using GroupDecision = v1::GroupDecision;

// Where one member stands when its group's decision is considered.
enum class MemberOutcome {
  kSkipped,    // already runs the target: takes no part
  kStaged,     // holds the target, not activated
  kTrial,      // activated and healthy, not committed
  kFailed,     // failed by itself (transfer, install, activation, health check, or never staged)
  kCancelled,  // its transfer was stopped by the cancel request
};

// When the decision is considered: at the barrier (every member staged or finished), then, when the
// barrier did not decide, after the staged members were activated.
enum class DecisionPoint { kBarrier, kActivated };

struct GroupOutcome {
  DecisionPoint point = DecisionPoint::kBarrier;
  bool atomic = false;            // GroupPolicy.atomic
  bool cancel_requested = false;  // the runner's cancel flag, read once at this point
  std::vector<MemberOutcome> members;
};

// GROUP_DECISION_UNDECIDED is returned at the barrier only, never after activation.
GroupDecision decide(const GroupOutcome& outcome);

// "undecided", "commit", "rollback", "cancel": for logs.
const char* decision_name(GroupDecision decision);

}  // namespace ota::client
