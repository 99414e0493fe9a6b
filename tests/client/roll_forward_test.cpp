// The runner against members that restart under it: a member found back on its previous image when
// its group decided to commit is rolled forward, and a command lost with a restart is sent again as
// soon as the agent's new hello arrives, not after a command timeout.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>

#include "vehicle.hpp"

using ota::test::ecu_report;
using ota::test::FakeAgentScript;
using ota::test::TestVehicle;
namespace v1 = ota::v1;

namespace {

long count(TestVehicle& vehicle, const std::string& ecu, const std::string& command) {
  const auto cmds = vehicle.agent(ecu).snapshot().commands;
  return std::count(cmds.begin(), cmds.end(), command);
}

}  // namespace

TEST_CASE("runner: a member back on its previous image after the commit decision is rolled forward",
          "[unit][campaign]") {
  for (const bool image_lost : {false, true}) {
    DYNAMIC_SECTION((image_lost ? "the image is gone: sent again" : "the image is still staged")) {
      FakeAgentScript fell_back;
      fell_back.fall_backs = 1;
      fell_back.fall_back_loses_image = image_lost;
      TestVehicle vehicle({{"bcm", 1, false, fell_back}, {"tcu", 1}}, {1});
      auto report = vehicle.client()->run(vehicle.campaign());
      REQUIRE(report.is_ok());
      INFO(report->reason());
      CHECK(report->result() == v1::CAMPAIGN_SUCCESS);
      CHECK(vehicle.journal().groups(0).group_decision() == v1::GROUP_DECISION_COMMIT);
      for (const char* id : {"bcm", "tcu"}) {
        CHECK(ecu_report(*report, id).result() == v1::SUCCESS);
        CHECK(vehicle.agent(id).snapshot().active_version == "2.0");
        CHECK_FALSE(vehicle.agent(id).snapshot().trial);
        CHECK(count(vehicle, id, "rollback") == 0);
      }
      CHECK(count(vehicle, "bcm", "activate") == (image_lost ? 3 : 2));  // the refused one too
      CHECK(count(vehicle, "bcm", "commit") >= 2);
      CHECK(count(vehicle, "bcm", "install") == (image_lost ? 2 : 1));
      CHECK(vehicle.violations().empty());
      CHECK(vehicle.inconsistencies().empty());
    }
  }
}

TEST_CASE("runner: a command lost with an agent's restart is sent again when its new hello arrives",
          "[unit][campaign]") {
  FakeAgentScript restarts;
  restarts.lost_installs = 1;
  TestVehicle vehicle({{"bcm", 1, false, restarts}, {"tcu", 1}}, {1});
  auto options = vehicle.options();
  options.agent_timeout = std::chrono::seconds(60);  // a wait for the timeout would show
  const auto t0 = std::chrono::steady_clock::now();
  auto report = vehicle.client(options)->run(vehicle.campaign());
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(report.is_ok());
  CHECK(report->result() == v1::CAMPAIGN_SUCCESS);
  CHECK(count(vehicle, "bcm", "install") == 2);
  CHECK(took < std::chrono::seconds(20));
  CHECK(vehicle.violations().empty());
  CHECK(vehicle.inconsistencies().empty());
}
