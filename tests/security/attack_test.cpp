// Attacks on the update chain, each played through ota-sim (real broker, client and agents) or
// straight at the broker and an agent.
#include <catch2/catch.hpp>

#include <google/protobuf/util/json_util.h>

#include "images.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/platform/campaign_signing.hpp"
#include "ota/sim/netns.hpp"
#include "ota/test/broker_fixture.hpp"
#include "ota/test/netns.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;

namespace {

ota::sim::TempDir temp() { return ota::test::temp_dir("ota-sec-"); }

// Runs the attack and checks what every refused update must show: a non-zero exit, a report that
// records the rejection with `reason` in it, every ECU on its old image in its old bank, and (for
// attacks on metadata) not one byte sent to any ECU.
void expect_refused(const std::string& attack, const std::string& reason, bool metadata_attack = true) {
  auto dir = temp();
  auto run = ota::test::run_sim(dir, {"--agents", "2", "--image-size", "256KiB", "--attack", attack});
  INFO(attack << "\n" << run.output << "\n" << run.client_log());
  CHECK(run.exit_code != 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() != v1::CAMPAIGN_SUCCESS);
  CHECK(run.report.reason().find(reason) != std::string::npos);
  REQUIRE(run.report.ecus_size() == 2);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.version_after() == "1.0.0");
    CHECK(ota::test::boot_bank(run, e.ecu_id()) == "A");
    if (metadata_attack) {
      CHECK(e.result() == v1::REJECTED);
      CHECK(e.bytes_transferred() == 0);
      CHECK(e.error().message().find(reason) != std::string::npos);
    } else {
      CHECK((e.result() == v1::FAILED || e.result() == v1::ROLLED_BACK));
    }
  }
}

}  // namespace

TEST_CASE("Arbitrary software: a bad director signature is refused", "[integration][security]") {
  expect_refused("bad-signature", "signature threshold not met");
}

TEST_CASE("Arbitrary software: metadata signed by a key the root does not name is refused",
          "[integration][security]") {
  expect_refused("untrusted-key", "is not a director key");
}

TEST_CASE("A signature threshold not met is refused", "[integration][security]") {
  expect_refused("threshold", "signature threshold not met (1 of 2 valid)");
}

TEST_CASE("A key revoked by a root rotation no longer counts", "[integration][security]") {
  expect_refused("revoked-key", "is not a director key");
}

TEST_CASE("Freeze: expired metadata is refused", "[integration][security]") {
  expect_refused("expired", "expired at");
}

TEST_CASE("A campaign for another VIN is refused", "[integration][security]") {
  expect_refused("wrong-vin", "campaign is for VIN OTHERVIN000000000");
}

TEST_CASE("A target for another hardware id is refused", "[integration][security]") {
  expect_refused("wrong-hardware", "hardware id");
}

TEST_CASE("Mix-and-match of director and image metadata is refused", "[integration][security]") {
  expect_refused("mix-and-match", "differs");
}

TEST_CASE("Rollback to an older version is refused", "[integration][security]") {
  expect_refused("rollback", "downgrade from 1.0.0 to 0.9.0 refused");
}

TEST_CASE("Endless data: oversized metadata is refused before parsing", "[integration][security]") {
  expect_refused("oversized", "above the cap");
}

TEST_CASE("A corrupted payload is refused before a byte reaches the ECU", "[integration][security]") {
  expect_refused("corrupt-payload", "is not the signed", false);
}

TEST_CASE("A truncated payload is refused before a byte reaches the ECU", "[integration][security]") {
  expect_refused("truncated-payload", "the signed size is", false);
}

TEST_CASE("A consent flag cleared in transit is refused", "[integration][security]") {
  expect_refused("consent-cleared",
                 "require_consent on the wire (false) differs from the signed require_consent (true)");
}

TEST_CASE("A replayed campaign is refused once the first run finished", "[integration][security]") {
  auto dir = temp();
  auto first = ota::test::run_sim(dir, {"--agents", "1", "--image-size", "256KiB", "--no-cloud"});
  INFO(first.output << first.client_log());
  REQUIRE(first.exit_code == 0);
  // Run the client again on the same signed campaign with its persisted counters.
  auto replay = ota::test::rerun_vehicle(first, dir, first.work + "/signed-campaign.json", "replay");
  INFO(replay.client_log);
  CHECK(replay.client_exit != 0);
  v1::VehicleReport report;
  INFO(replay.report_json);
  REQUIRE(google::protobuf::util::JsonStringToMessage(replay.report_json, &report).ok());
  CHECK(report.result() == v1::CAMPAIGN_REJECTED);
  CHECK(report.reason().find("was already finished (replay)") != std::string::npos);
}

TEST_CASE("A campaign resumed after a crash is refused as a replay once it finished",
          "[integration][security][fault]") {
  auto dir = temp();
  // The client is killed mid-transfer and started again: it resumes the campaign from its journal
  // without verifying it again, and must still record its end in the trust store.
  auto first = ota::test::run_sim(dir, {"--agents", "1", "--image-size", "512KiB", "--chunk-size", "32768",
                                        "--write-speed", "1", "--no-cloud", "--kill", "client@bcm:transfer"});
  const std::string log = first.client_log();
  INFO(first.output << log);
  REQUIRE(first.exit_code == 0);
  REQUIRE(log.find("the journal holds campaign sim-campaign-1 unfinished: resuming it") != std::string::npos);
  REQUIRE(ota::test::boot_bank(first, "bcm") == "B");
  auto replay = ota::test::rerun_vehicle(first, dir, first.work + "/signed-campaign.json", "replay");
  INFO(replay.client_log);
  CHECK(replay.client_exit != 0);
  v1::VehicleReport report;
  INFO(replay.report_json);
  REQUIRE(google::protobuf::util::JsonStringToMessage(replay.report_json, &report).ok());
  CHECK(report.result() == v1::CAMPAIGN_REJECTED);
  CHECK(report.reason().find("was already finished (replay)") != std::string::npos);
  CHECK(ota::test::boot_bank(first, "bcm") == "B");  // not flashed again into bank A
}

TEST_CASE_METHOD(ota::test::BrokerFixture, "A process posing as another agent cannot speak on its topics",
                 "[integration][security]") {
  // ecu-b tries to publish a hello as ecu-a and to command ecu-a; neither reaches anyone.
  auto client = connect("ota-client");
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/#").is_ok());
  auto impostor = connect("ecu-b");
  v1::Hello fake;
  ota::codec::set_protocol(fake.mutable_protocol());
  fake.set_online(true);
  fake.mutable_inventory()->set_ecu_id("ecu-a");
  (void)impostor->publish("ota/v1/ecu/ecu-a/up/hello", fake.SerializeAsString());
  (void)impostor->publish("ota/v1/ecu/ecu-a/down/cmd", "forged command");
  (void)impostor->publish("ota/v1/ecu/ecu-b/down/cmd", "forged command to itself");
  // A sentinel from the impostor's own allowed topic: once it arrived, the forbidden ones would have.
  REQUIRE(impostor->publish("ota/v1/ecu/ecu-b/up/state", "sentinel").is_ok());
  REQUIRE(observer->wait_for_payload("ota/v1/ecu/ecu-b/up/state", "sentinel", 5s).has_value());
  CHECK(observer->count_with_prefix("ota/v1/ecu/ecu-a/") == 0);
  CHECK(observer->count_with_prefix("ota/v1/ecu/ecu-b/down/") == 0);
}

TEST_CASE("An agent on another SoC updates over TLS with its certificate and cannot reach the plain listener",
          "[integration][security][tls]") {
  ota::test::require_network_namespaces();
  auto ns = ota::sim::NetNamespace::create();
  INFO(ns.status().to_string());
  REQUIRE(ns.is_ok());
  ota::sim::BrokerOptions o;
  o.agents = {"bcm"};
  o.tls = true;
  o.tls_bind = ns->host_ip();
  o.tls_extra_ips = {ns->host_ip()};
  auto broker = ota::sim::Broker::start(o);
  INFO(broker.status().to_string());
  REQUIRE(broker.is_ok());
  auto& b = **broker;
  auto dir = temp();
  const std::string ecu_dir = dir.file("bcm");
  REQUIRE(ota::make_dirs(ecu_dir).is_ok());
  auto base = ota::sim::write_base_image(ecu_dir + "/bank_a.img", 512 * 1024, 11);
  REQUIRE(base.is_ok());
  auto next = ota::sim::write_next_image(*base, dir.file("image-2.bin"), 11);
  REQUIRE(next.is_ok());
  const std::string pki = b.pki_dir();
  const std::string tls_uri = "ssl://" + ns->host_ip() + ":" + std::to_string(b.tls_port());

  // From inside the namespace the plain listener (loopback of the host) is out of reach.
  auto probe = ota::sim::run_command(
      ns->wrap({"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(b.port())}), 5s);
  CHECK_FALSE((probe.is_ok() && probe->exit.success()));

  // Signed campaign material for this single ECU.
  v1::Campaign c;
  c.set_campaign_id("soc-1");
  c.set_vin("SIMVIN0000000001");
  auto* g = c.add_groups();
  g->set_group(1);
  g->set_atomic(true);
  auto* t = c.add_targets();
  t->set_ecu_id("bcm");
  t->set_hardware_id("bcm-hw1");
  t->set_version("1.1.0");
  t->set_size(next->size);
  t->set_sha256(std::string(reinterpret_cast<const char*>(next->sha256.data()), 32));
  t->set_group(1);
  t->mutable_full()->set_encoding(v1::PAYLOAD_ENCODING_RAW);
  t->mutable_full()->set_uri(next->path);
  t->mutable_full()->set_size(next->size);
  t->mutable_full()->set_sha256(t->sha256());
  auto material = ota::sim::sign_campaign(c, dir.file("keys"), 1, ota::sim::Attack::kNone);
  REQUIRE(material.is_ok());
  REQUIRE(ota::atomic_write_file(dir.file("signed.json"), material->signed_campaign_json).is_ok());

  auto agent = ota::sim::ChildProcess::spawn(
      ns->wrap({ota::test::bin("ota-agent-sim"), "--ecu", "bcm", "--hardware-id", "bcm-hw1", "--broker",
                tls_uri, "--tls-ca", pki + "/ca.crt", "--tls-cert", pki + "/clients/bcm.crt", "--tls-key",
                pki + "/clients/bcm.key", "--dir", ecu_dir, "--factory-version", "1.0.0", "--trust-root",
                material->root_path}),
      ota::sim::SpawnOptions{ecu_dir + "/agent.log", {}, "agent", ""});
  REQUIRE(agent.is_ok());
  const std::string cfg = "[vehicle]\nvin = \"SIMVIN0000000001\"\necus = [\"bcm\"]\n[broker]\nuri = \"" +
                          b.uri() + "\"\nusername = \"ota-client\"\npassword_file = \"" +
                          b.credentials_file("ota-client") + "\"\n[state]\ndir = \"" +
                          dir.file("client-state") + "\"\n[trust]\nroot = \"" + material->root_path + "\"\n";
  REQUIRE(ota::atomic_write_file(dir.file("client.toml"), cfg).is_ok());
  auto client =
      ota::sim::ChildProcess::spawn({ota::test::bin("ota-client"), "--config", dir.file("client.toml"),
                                     "--campaign", dir.file("signed.json"), "--report", dir.file("r.json")},
                                    ota::sim::SpawnOptions{dir.file("client.log"), {}, "client", ""});
  REQUIRE(client.is_ok());
  auto exit = client->wait_for(120s);
  REQUIRE(exit.has_value());
  INFO(ota::sim::tail_file(dir.file("client.log"), 20) << "\n"
                                                       << ota::sim::tail_file(ecu_dir + "/agent.log", 20));
  CHECK(exit->exit_code == 0);
  auto bank = ota::sha256_file(ecu_dir + "/bank_b.img");
  REQUIRE(bank.is_ok());
  CHECK(*bank == next->sha256);
}
