// A client killed at every journal write, just before it and just after it, then started again on
// the same journal: it finishes the decision recorded before the kill and never changes it (between a
// group's decision and its first commit, between two commits, during a rollback or a cancel), agents
// never act on a decision that is not durable, and every ECU ends consistent with its group's
// decision. Where nothing could change the outcome, the outcome is the uninterrupted run's.
#include <catch2/catch.hpp>

#include "campaign/journal.hpp"
#include "vehicle.hpp"

using ota::test::EcuSpec;
using ota::test::FakeAgentScript;
using ota::test::TestVehicle;
namespace v1 = ota::v1;

namespace {

struct Scenario {
  std::vector<EcuSpec> ecus;
  std::vector<uint32_t> atomic_groups;
  bool cancel_on_first_chunk = false;  // the first client is asked to cancel mid-transfer
  bool several_carry_out = true;       // a decision goes to two members or more: kills fall between them
};

// Where a kill left a group: decided and not done; and, of those, carried out for some members only.
struct KillPoints {
  int decided_not_done = 0;
  int partly_carried_out = 0;
};

void count_kill_point(const v1::CampaignJournal& j, KillPoints* points) {
  for (const auto& g : j.groups()) {
    const auto d = ota::client::recorded_decision(g);
    if (d == v1::GROUP_DECISION_UNDECIDED || g.done()) continue;
    ++points->decided_not_done;
    const v1::EcuResult carried = d == v1::GROUP_DECISION_COMMIT     ? v1::SUCCESS
                                  : d == v1::GROUP_DECISION_ROLLBACK ? v1::ROLLED_BACK
                                                                     : v1::CANCELLED;
    bool some = false, not_all = false;
    for (const auto& e : j.ecus()) {
      for (const auto& t : j.campaign().targets()) {
        if (t.ecu_id() != e.ecu_id() || t.group() != g.group()) continue;
        some |= e.finished() && e.report().result() == carried;
        not_all |= !e.finished();
      }
    }
    if (some && not_all) ++points->partly_carried_out;
  }
}

struct Outcome {
  std::map<std::string, v1::EcuResult> results;
  std::map<uint32_t, v1::GroupDecision> decisions;
};

Outcome outcome_of(const v1::CampaignJournal& j) {
  Outcome o;
  for (const auto& e : j.ecus()) o.results[e.ecu_id()] = e.report().result();
  for (const auto& g : j.groups()) o.decisions[g.group()] = ota::client::recorded_decision(g);
  return o;
}

std::string describe(const Outcome& o) {
  std::string s;
  for (const auto& [ecu, result] : o.results) s += ecu + "=" + v1::EcuResult_Name(result) + " ";
  for (const auto& [group, d] : o.decisions)
    s += "group" + std::to_string(group) + "=" + ota::client::decision_name(d) + " ";
  return s;
}

// The uninterrupted run: its outcome and how many journal writes it made.
std::pair<Outcome, int> run_whole(const Scenario& sc) {
  TestVehicle vehicle(sc.ecus, sc.atomic_groups);
  auto client = vehicle.client();
  if (sc.cancel_on_first_chunk)
    vehicle.agent(sc.ecus[0].id).on_first_chunk([&] { client->runner().cancel(); });
  auto report = client->run(vehicle.campaign());
  REQUIRE(report.is_ok());
  CHECK(vehicle.violations().empty());
  CHECK(vehicle.inconsistencies().empty());
  return {outcome_of(vehicle.journal()), client->writes()};
}

void crash_at_every_write(const Scenario& sc) {
  const auto [whole, writes] = run_whole(sc);
  INFO("uninterrupted: " << describe(whole) << "after " << writes << " journal writes");
  REQUIRE(writes > 5);
  KillPoints points;
  for (int n = 1; n <= writes; ++n) {
    for (bool lands : {false, true}) {
      INFO("killed " << (lands ? "just after" : "just before") << " journal write " << n);
      TestVehicle vehicle(sc.ecus, sc.atomic_groups);
      {
        auto first = vehicle.client();
        if (sc.cancel_on_first_chunk)
          vehicle.agent(sc.ecus[0].id).on_first_chunk([&] { first->runner().cancel(); });
        first->cut_at_write(n, lands);
        auto report = first->run(vehicle.campaign());
        REQUIRE(first->cut());
        CHECK(report.is_ok() == (lands && n == writes));  // only a kill after the last write goes unseen
        if (sc.cancel_on_first_chunk)
          vehicle.agent(sc.ecus[0].id).on_first_chunk(nullptr);  // was not reached
      }
      const v1::CampaignJournal at_kill = vehicle.journal();
      count_kill_point(at_kill, &points);
      if (!at_kill.finished()) {
        auto report = vehicle.client()->run(vehicle.campaign());
        REQUIRE(report.is_ok());
      }
      const v1::CampaignJournal end = vehicle.journal();
      CHECK(end.finished());
      const Outcome after = outcome_of(end);
      INFO("journal at the kill: " << describe(outcome_of(at_kill)) << "; at the end: " << describe(after));
      for (const auto& g : at_kill.groups()) {
        const auto d = ota::client::recorded_decision(g);
        if (d != v1::GROUP_DECISION_UNDECIDED) CHECK(after.decisions.at(g.group()) == d);
      }
      CHECK(vehicle.violations().empty());
      for (const auto& what : vehicle.inconsistencies()) FAIL_CHECK(what);
      if (!sc.cancel_on_first_chunk) {
        CHECK(after.results == whole.results);
        CHECK(after.decisions == whole.decisions);
      }
    }
  }
  // The kills did fall between a decision and its carrying out, and in the middle of it.
  CHECK(points.decided_not_done > 0);
  if (sc.several_carry_out) CHECK(points.partly_carried_out > 0);
}

}  // namespace

TEST_CASE("crash replay: two atomic groups that commit", "[unit][campaign]") {
  crash_at_every_write({{{"bcm", 1}, {"tcu", 1}, {"abs", 2}, {"gw", 2, true}}, {1, 2}});
}

TEST_CASE("crash replay: an atomic group rolled back after a failed health check", "[unit][campaign]") {
  FakeAgentScript unhealthy;
  unhealthy.health_fails = true;
  crash_at_every_write({{{"bcm", 1}, {"tcu", 1}, {"abs", 1, false, unhealthy}, {"gw", 2}}, {1}});
}

TEST_CASE("crash replay: a non-atomic group commits around a failed member", "[unit][campaign]") {
  FakeAgentScript unhealthy;
  unhealthy.health_fails = true;
  crash_at_every_write({{{"bcm", 1}, {"tcu", 1, false, unhealthy}}, {}, false, false});
}

TEST_CASE("crash replay: commits that fail before they succeed", "[unit][campaign]") {
  FakeAgentScript flaky;
  flaky.commit_failures = 2;
  crash_at_every_write({{{"bcm", 1, false, flaky}, {"tcu", 1}}, {1}});
}

TEST_CASE("crash replay: a cancelled campaign stays cancelled once the decision is journaled",
          "[unit][campaign]") {
  // Whether tcu is staged or cancelled too when the decision is taken depends on timing.
  crash_at_every_write({{{"bcm", 1}, {"tcu", 1}, {"abs", 2}}, {1}, true, false});
}
