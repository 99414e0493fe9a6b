// The group decision, row by row, over every combination of up to three members.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "campaign/decision.hpp"

using ota::client::decide;
using ota::client::DecisionPoint;
using ota::client::GroupOutcome;
using ota::client::MemberOutcome;
namespace v1 = ota::v1;

namespace {

enum class Cond { kAny, kYes, kNo };

bool holds(Cond c, bool value) { return c == Cond::kAny || (c == Cond::kYes) == value; }

// The table of docs/PROTOCOL.md section 8, first matching row wins.
struct Row {
  DecisionPoint point;
  Cond cancel;
  Cond failed;  // a member failed by itself or was cancelled
  Cond atomic;
  v1::GroupDecision decision;
};
const Row kRows[] = {
    {DecisionPoint::kBarrier, Cond::kYes, Cond::kAny, Cond::kAny, v1::GROUP_DECISION_CANCEL},
    {DecisionPoint::kBarrier, Cond::kNo, Cond::kYes, Cond::kYes, v1::GROUP_DECISION_ROLLBACK},
    {DecisionPoint::kBarrier, Cond::kNo, Cond::kAny, Cond::kAny, v1::GROUP_DECISION_UNDECIDED},
    {DecisionPoint::kActivated, Cond::kAny, Cond::kYes, Cond::kYes, v1::GROUP_DECISION_ROLLBACK},
    {DecisionPoint::kActivated, Cond::kAny, Cond::kAny, Cond::kAny, v1::GROUP_DECISION_COMMIT},
};

const MemberOutcome kOutcomes[] = {MemberOutcome::kSkipped, MemberOutcome::kStaged, MemberOutcome::kTrial,
                                   MemberOutcome::kFailed, MemberOutcome::kCancelled};

const char* name(MemberOutcome m) {
  switch (m) {
    case MemberOutcome::kSkipped:
      return "skipped";
    case MemberOutcome::kStaged:
      return "staged";
    case MemberOutcome::kTrial:
      return "trial";
    case MemberOutcome::kFailed:
      return "failed";
    case MemberOutcome::kCancelled:
      return "cancelled";
  }
  return "?";
}

std::string describe(const GroupOutcome& o) {
  std::string s = o.point == DecisionPoint::kBarrier ? "barrier" : "activated";
  s += o.atomic ? ", atomic" : ", not atomic";
  s += o.cancel_requested ? ", cancel requested:" : ":";
  for (auto m : o.members) s += std::string(" ") + name(m);
  return s;
}

// Every sequence of 0 to 3 members.
std::vector<std::vector<MemberOutcome>> member_sets() {
  std::vector<std::vector<MemberOutcome>> out{{}};
  for (size_t begin = 0, size = 1; size <= 3; ++size) {
    const size_t end = out.size();
    for (size_t i = begin; i < end; ++i) {
      for (auto m : kOutcomes) {
        auto next = out[i];
        next.push_back(m);
        out.push_back(next);
      }
    }
    begin = end;
  }
  return out;
}

}  // namespace

TEST_CASE("decide: every combination of up to three members follows the decision table", "[unit][campaign]") {
  const auto sets = member_sets();
  REQUIRE(sets.size() == 1 + 5 + 25 + 125);
  std::map<int, int> rows_hit;
  int cases = 0;
  for (auto point : {DecisionPoint::kBarrier, DecisionPoint::kActivated}) {
    for (bool atomic : {false, true}) {
      for (bool cancel : {false, true}) {
        for (const auto& members : sets) {
          GroupOutcome o{point, atomic, cancel, members};
          bool failed = false;
          for (auto m : members) failed |= m == MemberOutcome::kFailed || m == MemberOutcome::kCancelled;
          int row = 0;
          while (row < 5 && !(kRows[row].point == point && holds(kRows[row].cancel, cancel) &&
                              holds(kRows[row].failed, failed) && holds(kRows[row].atomic, atomic))) {
            ++row;
          }
          INFO(describe(o));
          REQUIRE(row < 5);
          CHECK(decide(o) == kRows[row].decision);
          ++rows_hit[row];
          ++cases;
        }
      }
    }
  }
  CHECK(cases == 2 * 2 * 2 * 156);
  CHECK(rows_hit.size() == 5);  // no row of the table is dead
}

TEST_CASE("decide: the rows one by one", "[unit][campaign]") {
  using M = MemberOutcome;
  SECTION("a cancel at the barrier cancels, even a healthy non-atomic group") {
    CHECK(decide({DecisionPoint::kBarrier, false, true, {M::kStaged, M::kStaged}}) ==
          v1::GROUP_DECISION_CANCEL);
    CHECK(decide({DecisionPoint::kBarrier, true, true, {M::kFailed, M::kStaged}}) ==
          v1::GROUP_DECISION_CANCEL);
  }
  SECTION("a member that failed to stage rolls an atomic group back before anything is activated") {
    CHECK(decide({DecisionPoint::kBarrier, true, false, {M::kStaged, M::kFailed}}) ==
          v1::GROUP_DECISION_ROLLBACK);
    CHECK(decide({DecisionPoint::kBarrier, true, false, {M::kCancelled, M::kSkipped}}) ==
          v1::GROUP_DECISION_ROLLBACK);
  }
  SECTION("otherwise the barrier leaves the decision to after activation") {
    CHECK(decide({DecisionPoint::kBarrier, false, false, {M::kStaged, M::kFailed}}) ==
          v1::GROUP_DECISION_UNDECIDED);
    CHECK(decide({DecisionPoint::kBarrier, true, false, {M::kStaged, M::kTrial, M::kSkipped}}) ==
          v1::GROUP_DECISION_UNDECIDED);
    CHECK(decide({DecisionPoint::kBarrier, true, false, {}}) == v1::GROUP_DECISION_UNDECIDED);
  }
  SECTION("after activation a failure rolls an atomic group back, and a cancel is too late") {
    CHECK(decide({DecisionPoint::kActivated, true, false, {M::kTrial, M::kFailed}}) ==
          v1::GROUP_DECISION_ROLLBACK);
    CHECK(decide({DecisionPoint::kActivated, true, true, {M::kTrial, M::kFailed}}) ==
          v1::GROUP_DECISION_ROLLBACK);
  }
  SECTION("after activation everything else commits") {
    CHECK(decide({DecisionPoint::kActivated, false, false, {M::kTrial, M::kFailed}}) ==
          v1::GROUP_DECISION_COMMIT);
    CHECK(decide({DecisionPoint::kActivated, true, true, {M::kTrial, M::kSkipped}}) ==
          v1::GROUP_DECISION_COMMIT);
    CHECK(decide({DecisionPoint::kActivated, true, false, {M::kSkipped}}) == v1::GROUP_DECISION_COMMIT);
  }
}

TEST_CASE("decision names are the journal's earlier strings", "[unit][campaign]") {
  CHECK(std::string(ota::client::decision_name(v1::GROUP_DECISION_COMMIT)) == "commit");
  CHECK(std::string(ota::client::decision_name(v1::GROUP_DECISION_ROLLBACK)) == "rollback");
  CHECK(std::string(ota::client::decision_name(v1::GROUP_DECISION_CANCEL)) == "cancel");
  CHECK(std::string(ota::client::decision_name(v1::GROUP_DECISION_UNDECIDED)) == "undecided");
}
