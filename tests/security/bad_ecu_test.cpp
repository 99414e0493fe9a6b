// One bad ECU cannot hold the vehicle hostage. For each misbehaviour ota-agent-sim can play
// (--misbehave), a vehicle of real processes: a rendered Mosquitto, three ota-agent-sim and
// ota-client. Group 1 (atomic) holds the misbehaving ECU and an honest one, group 2 another honest
// one. The client runs with a short campaign deadline and a short progress-floor window: the bad ECU
// must fail on its own bound, with a reason naming what it did, well inside the deadline; group 1
// rolls back (its honest ECU stays on its old image); group 2 is updated.
#include <google/protobuf/util/json_util.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "images.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/process.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;

namespace {

constexpr uint64_t kImageSize = 256 * 1024;
constexpr auto kCampaignDeadline = 60s;

struct Outcome {
  int client_exit = -1;
  std::chrono::milliseconds took{};
  v1::VehicleReport report;
  std::string client_log;
  const v1::EcuReport* ecu(const std::string& id) const {
    for (const auto& e : report.ecus())
      if (e.ecu_id() == id) return &e;
    return nullptr;
  }
};

std::string bytes_of(const ota::Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// Banks of `ecu` with version 1.0.0, and its target 1.1.0 in group `group`.
void add_ecu(const ota::sim::TempDir& dir, const std::string& ecu, uint32_t group, uint64_t seed,
             v1::Campaign* campaign) {
  const std::string bank_dir = dir.file("ecu/" + ecu);
  REQUIRE(ota::make_dirs(bank_dir).is_ok());
  auto base = ota::sim::write_base_image(bank_dir + "/bank_a.img", kImageSize, seed);
  REQUIRE(base.is_ok());
  REQUIRE(ota::sim::copy_image(*base, bank_dir + "/bank_b.img").is_ok());
  auto next = ota::sim::write_next_image(*base, dir.file(ecu + "-1.1.0.bin"), seed);
  REQUIRE(next.is_ok());
  auto* t = campaign->add_targets();
  t->set_ecu_id(ecu);
  t->set_hardware_id(ecu + "-hw1");
  t->set_version("1.1.0");
  t->set_size(next->size);
  t->set_sha256(bytes_of(next->sha256));
  t->set_group(group);
  t->mutable_full()->set_encoding(v1::PAYLOAD_ENCODING_RAW);
  t->mutable_full()->set_uri(next->path);
  t->mutable_full()->set_size(next->size);
  t->mutable_full()->set_sha256(bytes_of(next->sha256));
}

std::string client_toml(const ota::sim::Broker& broker, const ota::sim::TempDir& dir,
                        const std::vector<std::string>& ecus) {
  std::string list;
  for (const auto& e : ecus) list += (list.empty() ? "\"" : ", \"") + e + "\"";
  return "[vehicle]\necus = [" + list + "]\n[broker]\nuri = \"" + broker.uri() + "\"\npassword_file = \"" +
         broker.credentials_file("ota-client") + "\"\n[state]\ndir = \"" + dir.file("client-state") +
         "\"\n[report]\nfile = \"" + dir.file("report.json") +
         "\"\n[timeouts]\nagent_ms = 5000\nstall_ms = 1500\ncampaign_ms = " +
         std::to_string(std::chrono::milliseconds(kCampaignDeadline).count()) +
         "\n[transfer]\nmin_rate = 65536\nrate_window_ms = 3000\n[trust]\nallow_unsigned = true\n";
}

// The vehicle with "bad" (ota-agent-sim --misbehave `how`) and "good1" in group 1, "good2" in group 2.
Outcome run_vehicle(const std::string& how) {
  auto dir = ota::test::temp_dir("ota-bad-ecu-");
  const std::vector<std::string> ecus = {"bad", "good1", "good2"};
  ota::sim::BrokerOptions bo;
  bo.dir = dir.file("broker");
  bo.agents = ecus;
  auto broker = ota::sim::Broker::start(bo);
  REQUIRE(broker.is_ok());

  v1::Campaign campaign;
  ota::codec::set_protocol(campaign.mutable_protocol());
  campaign.set_campaign_id("bad-ecu-" + how);
  campaign.set_chunk_size(4096);
  for (uint32_t g : {1u, 2u}) {
    auto* group = campaign.add_groups();
    group->set_group(g);
    group->set_atomic(true);
  }
  add_ecu(dir, "bad", 1, 1, &campaign);
  add_ecu(dir, "good1", 1, 2, &campaign);
  add_ecu(dir, "good2", 2, 3, &campaign);
  std::string json;
  REQUIRE(google::protobuf::util::MessageToJsonString(campaign, &json).ok());
  REQUIRE(ota::atomic_write_file(dir.file("campaign.json"), json).is_ok());
  REQUIRE(ota::atomic_write_file(dir.file("client.toml"), client_toml(**broker, dir, ecus)).is_ok());

  std::vector<ota::sim::ChildProcess> agents;
  for (const auto& e : ecus) {
    std::vector<std::string> argv = {ota::test::bin("ota-agent-sim"),
                                     "--ecu",
                                     e,
                                     "--hardware-id",
                                     e + "-hw1",
                                     "--broker",
                                     (*broker)->uri(),
                                     "--password-file",
                                     (*broker)->credentials_file(e),
                                     "--dir",
                                     dir.file("ecu/" + e),
                                     "--factory-version",
                                     "1.0.0",
                                     "--bank-size",
                                     std::to_string(kImageSize * 2)};
    if (e == "bad") argv.insert(argv.end(), {"--misbehave", how, "--misbehave-delay-ms", "1000"});
    auto agent = ota::sim::ChildProcess::spawn(argv, ota::sim::SpawnOptions{dir.file(e + ".log"), {}, e, ""});
    REQUIRE(agent.is_ok());
    agents.push_back(std::move(*agent));
  }
  Outcome out;
  const auto t0 = std::chrono::steady_clock::now();
  auto client =
      ota::sim::ChildProcess::spawn({ota::test::bin("ota-client"), "--config", dir.file("client.toml"),
                                     "--campaign", dir.file("campaign.json")},
                                    ota::sim::SpawnOptions{dir.file("client.log"), {}, "client", ""});
  REQUIRE(client.is_ok());
  auto exit = client->wait_for(kCampaignDeadline + 60s);
  REQUIRE(exit.has_value());
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  out.client_exit = exit->exit_code;
  auto log = ota::read_small_file(dir.file("client.log"), 16 << 20);
  if (log) out.client_log = *log;
  auto report = ota::read_small_file(dir.file("report.json"), 16 << 20);
  INFO(out.client_log);
  REQUIRE(report.is_ok());
  REQUIRE(google::protobuf::util::JsonStringToMessage(*report, &out.report).ok());
  return out;
}

// What every misbehaviour must come to.
void check_contained(const Outcome& out, const std::string& reason) {
  INFO(out.client_log);
  const auto* bad = out.ecu("bad");
  const auto* good1 = out.ecu("good1");
  const auto* good2 = out.ecu("good2");
  REQUIRE(bad);
  REQUIRE(good1);
  REQUIRE(good2);
  INFO("bad: " << bad->error().message());
  CHECK(bad->result() == v1::FAILED);
  CHECK(bad->error().message().find(reason) != std::string::npos);
  CHECK(bad->error().message().find("deadline") == std::string::npos);  // its own bound, not the backstop
  // Group 1 rolled back: its honest ECU is not updated.
  CHECK(good1->result() != v1::SUCCESS);
  CHECK(good1->version_after() == "1.0.0");
  // Group 2 went on.
  CHECK(good2->result() == v1::SUCCESS);
  CHECK(good2->version_after() == "1.1.0");
  CHECK(out.report.result() != v1::CAMPAIGN_SUCCESS);
  CHECK(out.took < kCampaignDeadline);
}

}  // namespace

TEST_CASE("A slowloris ECU fails below the progress floor; the rest of the vehicle goes on",
          "[integration][security]") {
  check_contained(run_vehicle("slowloris"), "bad: too slow: ");
}

TEST_CASE("An ECU refusing every chunk as CORRUPT fails after the bounded rounds",
          "[integration][security]") {
  check_contained(run_vehicle("corrupt-acks"), "bad: the agent refused chunks ");
}

TEST_CASE("An ECU declaring 1-byte chunks is refused before any byte is sent", "[integration][security]") {
  const Outcome out = run_vehicle("tiny-chunks");
  check_contained(out, "bad: chunk size of 1 bytes is outside 512..524288");
  CHECK(out.ecu("bad")->bytes_transferred() == 0);
}

TEST_CASE("A silent ECU fails at the first floor window", "[integration][security]") {
  check_contained(run_vehicle("silent"), "bad: StartTransfer unanswered: too slow: 0 bytes acknowledged");
}

TEST_CASE("An ECU acknowledging byte 2^64-1 before any chunk fails on a protocol error",
          "[integration][security]") {
  check_contained(run_vehicle("absurd-ack"),
                  "bad: protocol error: ack with next_offset 18446744073709551615 beyond the payload");
}
