// Root rotation over the air: the platform ships root v2 in SignedCampaign.root_updates, through the
// cloud link, to a vehicle and ECUs provisioned with v1 (ota-sim --rotate-root), and the attacks on it.
#include <google/protobuf/util/json_util.h>
#include <catch2/catch.hpp>

#include "ota/core/file.hpp"
#include "ota/core/trust.hpp"
#include "ota/sim/broker.hpp"
#include "ota/v1/trust.pb.h"
#include "support.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;

namespace {

const std::vector<std::string> kEcus = {"bcm", "tcu"};

ota::sim::TempDir temp() { return ota::test::temp_dir("ota-rot-"); }

// The version of a persisted root; 0 when the file does not exist.
uint64_t root_version(const std::string& path) {
  auto bytes = ota::read_small_file(path, 256 * 1024);
  if (!bytes && bytes.status().code() == ota::Code::kNotFound) return 0;
  REQUIRE(bytes.is_ok());
  auto v = ota::trust::claimed_root_version(*bytes);
  REQUIRE(v.is_ok());
  return *v;
}

std::string client_root(const ota::test::SimRun& run) { return run.work + "/client-state/trust/root.signed"; }
std::string agent_root(const ota::test::SimRun& run, const std::string& ecu) {
  return run.work + "/ecu/" + ecu + "/state/trust-root.signed";
}

// A refused rotation campaign: non-zero exit, CAMPAIGN_REJECTED with `reason`, every ECU REJECTED with
// nothing sent, on 1.0.0 in bank A, and no root newer than the provisioned one persisted anywhere.
void expect_refused(const std::string& attack, const std::string& reason) {
  auto dir = temp();
  auto run = ota::test::run_sim(dir, {"--agents", "2", "--image-size", "256KiB", "--attack", attack});
  INFO(attack << "\n" << run.output << "\n" << run.client_log());
  CHECK(run.exit_code != 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == v1::CAMPAIGN_REJECTED);
  CHECK(run.report.reason().find(reason) != std::string::npos);
  REQUIRE(run.report.ecus_size() == 2);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == v1::REJECTED);
    CHECK(e.bytes_transferred() == 0);
    CHECK(e.error().message().find(reason) != std::string::npos);
    CHECK(e.version_after() == "1.0.0");
    CHECK(ota::test::boot_bank(run, e.ecu_id()) == "A");
    CHECK(root_version(agent_root(run, e.ecu_id())) == 0);
  }
  CHECK(root_version(client_root(run)) == 0);
}

}  // namespace

TEST_CASE("A root rotation delivered with the campaign reaches the client and the agents",
          "[integration][security][rotation]") {
  auto dir = temp();
  auto run = ota::test::run_sim(dir, {"--agents", "2", "--image-size", "256KiB", "--rotate-root"});
  INFO(run.output << "\n" << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == v1::CAMPAIGN_SUCCESS);
  REQUIRE(run.report.ecus_size() == 2);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == v1::SUCCESS);
    CHECK(e.version_after() == "1.1.0");
    CHECK(ota::test::boot_bank(run, e.ecu_id()) == "B");
  }
  // Provisioned with v1; the platform's offer carried v2 over the cloud link.
  CHECK(root_version(run.work + "/keys/root.signed") == 1);
  auto cloud_log = ota::read_small_file(run.work + "/cloud-sim.log", 16 << 20);
  REQUIRE(cloud_log.is_ok());
  CHECK(cloud_log->find("1 root updates") != std::string::npos);
  CHECK(root_version(client_root(run)) == 2);
  for (const auto& ecu : kEcus) CHECK(root_version(agent_root(run, ecu)) == 2);
}

TEST_CASE("A campaign signed by rotated keys without the rotation is refused",
          "[integration][security][rotation]") {
  // The director key of root v2 is unknown to root v1.
  expect_refused("rotation-withheld", "is not a director key");
}

TEST_CASE("A root rotation not signed by the old root keys is refused", "[integration][security][rotation]") {
  expect_refused("rotation-unsigned-by-old",
                 "root update: root metadata v2 (previous root keys): signature threshold not met");
}

TEST_CASE("After a rotation a campaign signed with the dropped director key is refused",
          "[integration][security][rotation]") {
  auto dir = temp();
  auto first =
      ota::test::run_sim(dir, {"--agents", "1", "--image-size", "256KiB", "--rotate-root", "--no-cloud"});
  INFO(first.output << first.client_log());
  REQUIRE(first.exit_code == 0);
  REQUIRE(root_version(client_root(first)) == 2);
  REQUIRE(root_version(agent_root(first, "bcm")) == 2);

  // The next campaign (director version 2), signed with the director key of root v1, which v2 dropped.
  auto json = ota::read_small_file(first.work + "/signed-campaign.json", 16 << 20);
  REQUIRE(json.is_ok());
  v1::SignedCampaign sc;
  REQUIRE(google::protobuf::util::JsonStringToMessage(*json, &sc).ok());
  REQUIRE(sc.root_updates_size() == 1);
  v1::SignedMetadata env;
  REQUIRE(env.ParseFromString(sc.signed_director()));
  v1::DirectorMetadata director;
  REQUIRE(director.ParseFromString(env.body()));
  director.set_version(2);
  director.set_campaign_id(director.campaign_id() + "-next");
  auto old_key = ota::trust::PrivateKey::load(first.work + "/keys/director.key");
  REQUIRE(old_key.is_ok());
  auto resigned = ota::trust::sign(director.SerializeAsString(), {*old_key});
  REQUIRE(resigned.is_ok());
  sc.set_signed_director(*resigned);
  std::string next_json;
  REQUIRE(google::protobuf::util::MessageToJsonString(sc, &next_json).ok());
  REQUIRE(ota::atomic_write_file(dir.file("next-campaign.json"), next_json).is_ok());

  // The same vehicle again (its persisted client and agent state), on a fresh broker.
  auto next = ota::test::rerun_vehicle(first, dir, dir.file("next-campaign.json"), "next");
  INFO(next.client_log);
  CHECK(next.client_exit != 0);
  v1::VehicleReport report;
  REQUIRE(google::protobuf::util::JsonStringToMessage(next.report_json, &report).ok());
  CHECK(report.result() == v1::CAMPAIGN_REJECTED);
  // The client recorded the dropped key as revoked when it took the rotation.
  CHECK(report.reason().find("is revoked") != std::string::npos);
  REQUIRE(report.ecus_size() == 1);
  CHECK(report.ecus(0).result() == v1::REJECTED);
  CHECK(report.ecus(0).version_after() == "1.1.0");
  CHECK(root_version(client_root(first)) == 2);
  // The agent, provisioned with v1, started from the root it accepted over the air.
  CHECK(next.agent_log.find("bcm: trust root version 2") != std::string::npos);
}
