// Whole campaigns in one process: the runner over the loopback broker with scripted agents.
#include <catch2/catch.hpp>

#include <algorithm>

#include "campaign/status.hpp"
#include "vehicle.hpp"

using ota::client::ConsentAnswer;
using ota::test::ecu_report;
using ota::test::EcuSpec;
using ota::test::FakeAgentScript;
using ota::test::TestVehicle;
namespace v1 = ota::v1;

namespace {

// The campaign states published, consecutive repeats folded.
std::vector<std::string> state_sequence(const TestVehicle& vehicle) {
  std::vector<std::string> out;
  for (const auto& s : vehicle.statuses()) {
    if (out.empty() || out.back() != s.state()) out.push_back(s.state());
  }
  return out;
}

bool received(TestVehicle& vehicle, const std::string& ecu, const std::string& command) {
  const auto cmds = vehicle.agent(ecu).snapshot().commands;
  return std::find(cmds.begin(), cmds.end(), command) != cmds.end();
}

#define CHECK_HEALTHY(vehicle)                  \
  do {                                          \
    CHECK((vehicle).violations().empty());      \
    CHECK((vehicle).inconsistencies().empty()); \
  } while (0)

}  // namespace

TEST_CASE("runner: an atomic group commits when every member is healthy", "[unit][campaign]") {
  TestVehicle vehicle({{"bcm", 1}, {"tcu", 1}, {"gw", 2, true}}, {1});
  auto client = vehicle.client();
  auto report = client->run(vehicle.campaign());
  REQUIRE(report.is_ok());
  CHECK(report->result() == v1::CAMPAIGN_SUCCESS);
  CHECK(report->reason().empty());
  for (const char* id : {"bcm", "tcu"}) {
    const auto& r = ecu_report(*report, id);
    CHECK(r.result() == v1::SUCCESS);
    CHECK(r.version_before() == "1.0");
    CHECK(r.version_after() == "2.0");
    CHECK(r.bytes_transferred() == r.image_size());
    CHECK(vehicle.agent(id).snapshot().active_version == "2.0");
    CHECK(received(vehicle, id, "clear_dtcs"));
  }
  CHECK(ecu_report(*report, "gw").result() == v1::SKIPPED);
  CHECK(vehicle.agent("gw").snapshot().commands.empty());
  const auto j = vehicle.journal();
  CHECK(j.finished());
  CHECK(j.groups(0).group_decision() == v1::GROUP_DECISION_COMMIT);
  CHECK(j.groups(0).decision() == "commit");
  CHECK(state_sequence(vehicle) == std::vector<std::string>{"transferring", "activating", "committing",
                                                            "transferring", "activating", "committing",
                                                            "succeeded"});
  for (const auto& s : vehicle.statuses())
    CHECK(s.state() == ota::client::campaign_state_text(s.campaign_state()));
  CHECK_HEALTHY(vehicle);
}

TEST_CASE("runner: a failed health check rolls the atomic group back", "[unit][campaign]") {
  FakeAgentScript unhealthy;
  unhealthy.health_fails = true;
  TestVehicle vehicle({{"bcm", 1}, {"tcu", 1, false, unhealthy}}, {1});
  auto report = vehicle.client()->run(vehicle.campaign());
  REQUIRE(report.is_ok());
  CHECK(report->result() == v1::CAMPAIGN_FAILED);
  CHECK(report->reason() == "tcu failed in health: health check failed");
  CHECK(ecu_report(*report, "tcu").result() == v1::FAILED);
  CHECK(ecu_report(*report, "tcu").error().phase() == v1::PHASE_HEALTH);
  CHECK(ecu_report(*report, "bcm").result() == v1::ROLLED_BACK);
  CHECK(ecu_report(*report, "bcm").version_after() == "1.0");
  CHECK(vehicle.journal().groups(0).group_decision() == v1::GROUP_DECISION_ROLLBACK);
  CHECK(received(vehicle, "tcu", "rollback"));  // failed members are told too
  CHECK_FALSE(received(vehicle, "bcm", "commit"));
  CHECK_HEALTHY(vehicle);
}

TEST_CASE("runner: in a non-atomic group the healthy members commit", "[unit][campaign]") {
  FakeAgentScript unhealthy;
  unhealthy.health_fails = true;
  TestVehicle vehicle({{"bcm", 1}, {"tcu", 1, false, unhealthy}}, {});
  auto report = vehicle.client()->run(vehicle.campaign());
  REQUIRE(report.is_ok());
  CHECK(report->result() == v1::CAMPAIGN_FAILED);
  CHECK(ecu_report(*report, "bcm").result() == v1::SUCCESS);
  CHECK(ecu_report(*report, "tcu").result() == v1::FAILED);
  CHECK(vehicle.agent("tcu").snapshot().active_version == "1.0");
  CHECK(vehicle.journal().groups(0).group_decision() == v1::GROUP_DECISION_COMMIT);
  CHECK_HEALTHY(vehicle);
}

TEST_CASE("runner: a cancel during the transfers cancels the group at its barrier", "[unit][campaign]") {
  TestVehicle vehicle({{"bcm", 1}, {"tcu", 1}, {"abs", 2}}, {});
  auto client = vehicle.client();
  vehicle.agent("bcm").on_first_chunk([&] { client->runner().cancel(); });
  auto report = client->run(vehicle.campaign());
  REQUIRE(report.is_ok());
  CHECK(report->result() == v1::CAMPAIGN_CANCELLED);
  for (const char* id : {"bcm", "tcu", "abs"}) {
    CHECK(ecu_report(*report, id).result() == v1::CANCELLED);
    CHECK(vehicle.agent(id).snapshot().active_version == "1.0");
  }
  CHECK_FALSE(received(vehicle, "bcm", "activate"));
  CHECK(vehicle.journal().groups(0).group_decision() == v1::GROUP_DECISION_CANCEL);
  CHECK(vehicle.journal().groups(1).group_decision() == v1::GROUP_DECISION_CANCEL);
  CHECK_HEALTHY(vehicle);
}

TEST_CASE("runner: a failing commit is retried, never turned into a rollback", "[unit][campaign]") {
  FakeAgentScript flaky;
  flaky.commit_failures = 3;
  TestVehicle vehicle({{"bcm", 1, false, flaky}, {"tcu", 1}}, {1});
  auto report = vehicle.client()->run(vehicle.campaign());
  REQUIRE(report.is_ok());
  CHECK(report->result() == v1::CAMPAIGN_SUCCESS);
  const auto cmds = vehicle.agent("bcm").snapshot().commands;
  CHECK(std::count(cmds.begin(), cmds.end(), "commit") == 4);
  CHECK(std::count(cmds.begin(), cmds.end(), "rollback") == 0);

  SECTION("until the attempts run out: the ECU stays on trial, the others keep their commit") {
    FakeAgentScript broken;
    broken.commit_failures = 100;
    TestVehicle stuck({{"bcm", 1, false, broken}, {"tcu", 1}}, {1});
    auto r = stuck.client()->run(stuck.campaign());
    REQUIRE(r.is_ok());
    CHECK(r->result() == v1::CAMPAIGN_FAILED);
    CHECK(ecu_report(*r, "bcm").result() == v1::FAILED);
    CHECK(ecu_report(*r, "bcm").error().message().find("the ECU stays on trial") != std::string::npos);
    CHECK(ecu_report(*r, "tcu").result() == v1::SUCCESS);
    CHECK(stuck.agent("bcm").snapshot().trial);
    CHECK(stuck.violations().empty());
  }
}

TEST_CASE("runner: a refused chunk is sent again and an incomplete payload is resumed", "[unit][campaign]") {
  FakeAgentScript lossy;
  lossy.corrupt_acks = 2;
  lossy.incomplete_installs = 1;
  TestVehicle vehicle({{"bcm", 1, false, lossy}}, {});
  auto report = vehicle.client()->run(vehicle.campaign());
  REQUIRE(report.is_ok());
  CHECK(report->result() == v1::CAMPAIGN_SUCCESS);
  const auto& r = ecu_report(*report, "bcm");
  CHECK(r.bytes_transferred() > r.image_size());  // what was refused and lost went twice
  const auto cmds = vehicle.agent("bcm").snapshot().commands;
  CHECK(std::count(cmds.begin(), cmds.end(), "install") == 2);
  CHECK(std::count(cmds.begin(), cmds.end(), "start_transfer") == 2);
  CHECK_HEALTHY(vehicle);
}

TEST_CASE("runner: pre-conditions and consent end a campaign before it starts", "[unit][campaign]") {
  TestVehicle vehicle({{"bcm", 1}}, {});
  SECTION("not parked") {
    vehicle.campaign().mutable_preconditions()->set_require_parked(true);
    vehicle.conditions.set_parked(false);
    auto report = vehicle.client()->run(vehicle.campaign());
    REQUIRE(report.is_ok());
    CHECK(report->result() == v1::CAMPAIGN_REJECTED);
    CHECK(report->reason() == "pre-condition not met: vehicle is not parked");
    CHECK(ecu_report(*report, "bcm").result() == v1::REJECTED);
  }
  SECTION("declined") {
    vehicle.campaign().set_require_consent(true);
    vehicle.consent_answers = {ConsentAnswer{ConsentAnswer::kDecline, {}, "not now"}};
    auto report = vehicle.client()->run(vehicle.campaign());
    REQUIRE(report.is_ok());
    CHECK(report->result() == v1::CAMPAIGN_REJECTED);
    CHECK(report->reason() == "owner declined: not now");
  }
  SECTION("postponed, then accepted") {
    vehicle.campaign().set_require_consent(true);
    vehicle.consent_answers = {ConsentAnswer{ConsentAnswer::kPostpone, std::chrono::hours(1), ""},
                               ConsentAnswer{ConsentAnswer::kAccept, {}, ""}};
    auto report = vehicle.client()->run(vehicle.campaign());
    REQUIRE(report.is_ok());
    CHECK(report->result() == v1::CAMPAIGN_SUCCESS);
    const auto states = state_sequence(vehicle);
    REQUIRE(states.size() >= 2);
    CHECK(states[0] == "awaiting consent");
    CHECK(states[1] == "postponed");
  }
  SECTION("postponed too often") {
    vehicle.campaign().set_require_consent(true);
    vehicle.consent_answers = {ConsentAnswer{ConsentAnswer::kPostpone, std::chrono::minutes(1), ""}};
    auto options = vehicle.options();
    options.max_postpones = 2;
    auto report = vehicle.client(options)->run(vehicle.campaign());
    REQUIRE(report.is_ok());
    CHECK(report->result() == v1::CAMPAIGN_POSTPONED);
  }
}

TEST_CASE("runner: a journal that cannot be written stops the runner with that error", "[unit][campaign]") {
  TestVehicle vehicle({{"bcm", 1}}, {});
  auto client = vehicle.client();
  client->cut_at_write(2, false);  // the write after the pre-conditions and consent
  auto report = client->run(vehicle.campaign());
  REQUIRE_FALSE(report.is_ok());
  CHECK(report.status().message() == "the client process died before this write");
  CHECK(vehicle.agent("bcm").snapshot().commands.empty());
  CHECK_FALSE(vehicle.journal().started());
}
