// Attacks from one agent on the vehicle bus: flooding its own subtree with retained junk, taking
// over another process's client id, inflating the fields the client copies into its report; and a
// command too large for any agent. Real Mosquitto (rendered with the defaults), the client's own
// connection code (VehicleBus, AgentDirectory) or the real processes through ota-sim.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "agent_field_limits.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/topics.hpp"
#include "ota/test/broker_fixture.hpp"
#include "ota/test/transport_inbox.hpp"
#include "support.hpp"
#include "vehicle_bus.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;
using ota::client::AgentFieldLimits;

namespace {

constexpr auto kDeadline = 10s;

std::string hello_of(const std::string& ecu, bool online) {
  v1::Hello h;
  ota::codec::set_protocol(h.mutable_protocol());
  h.set_online(online);
  h.mutable_inventory()->set_ecu_id(ecu);
  return h.SerializeAsString();
}

// The client's own connection (VehicleBus) to the fixture's broker, as ota-client.
std::unique_ptr<ota::client::VehicleBus> client_bus(ota::test::BrokerFixture& f) {
  ota::TransportOptions o;
  o.uri = f.broker().uri();
  o.client_id = "ota-client";
  o.username = "ota-client";
  o.password = f.broker().password("ota-client");
  auto bus = ota::client::VehicleBus::connect(o);
  INFO(bus.status().to_string());
  REQUIRE(bus.is_ok());
  return std::move(*bus);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE_METHOD(
    ota::test::BrokerFixture,
    "Retained junk under an agent's own subtree is refused by the ACL and cannot hide other ECUs",
    "[integration][security]") {
  // ecu-b retains 80 x 512 KiB under made-up topics of its own up/ (40 MiB, more than the broker
  // queues for one client) before the client or ecu-a connect.
  auto b = connect("ecu-b");
  const std::string junk(512 * 1024, 'J');
  int refused = 0;
  for (int i = 0; i < 80; ++i) {
    if (!b->publish("ota/v1/ecu/ecu-b/up/junk/" + std::to_string(i), junk, 1, true).is_ok()) ++refused;
  }
  CHECK(refused == 80);  // MQTT 5 PUBACK "not authorized" for every one
  // An allowed leaf with a payload above the client's per-message limit: stored by the broker (it
  // is under message_size_limit), dropped and logged by the client.
  REQUIRE(
      b->publish("ota/v1/ecu/ecu-b/up/state", std::string(ota::codec::kMaxControlMessage + 1, 'S'), 1, true)
          .is_ok());
  auto a = connect("ecu-a");
  REQUIRE(a->publish("ota/v1/ecu/ecu-a/up/hello", hello_of("ecu-a", true), 1, true).is_ok());

  for (int round = 0; round < 2; ++round) {
    INFO("round " << round << (round ? " (after a broker restart)" : ""));
    // The client's connection sees ecu-a online.
    auto bus = client_bus(*this);
    CHECK(bus->fleet().wait_online({"ecu-a"}, kDeadline).is_ok());
    // Nothing under a made-up topic was retained: an observer of every up/ subtree gets ecu-a's
    // hello and ecu-b's state, and no junk.
    auto observer = connect("ota-observer");
    REQUIRE(observer->subscribe(ota::topics::kAllAgentsUp).is_ok());
    REQUIRE(observer->wait_for_topic("ota/v1/ecu/ecu-a/up/hello", kDeadline));
    REQUIRE(observer->wait_for_topic("ota/v1/ecu/ecu-b/up/state", kDeadline));
    CHECK(observer->count_with_prefix("ota/v1/ecu/ecu-b/up/junk/") == 0);
    observer.reset();
    bus.reset();
    if (round == 0) {
      a.reset();
      b.reset();
      REQUIRE(broker().stop().has_value());
      REQUIRE(broker().restart().is_ok());
    }
  }
  // Mosquitto with an ACL file grants any subscription filter and applies the ACL to each message it
  // delivers: the client reads the five leaves only, whatever filter it asks for.
}

TEST_CASE_METHOD(ota::test::BrokerFixture,
                 "A command above the agents' size limit is refused at once, unsent",
                 "[integration][security]") {
  auto bus = client_bus(*this);
  auto agent = connect("ecu-a");
  REQUIRE(agent->subscribe("ota/v1/ecu/ecu-a/down/#").is_ok());
  // A StartTransfer whose signed metadata alone is over kMaxControlMessage (a valid image metadata
  // listing hundreds of images is).
  v1::Command cmd;
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id("c1/ecu-a/2.0.0");
  st->mutable_target()->set_signed_target(std::string(ota::codec::kMaxControlMessage, 'M'));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = bus->fleet().call("ecu-a", cmd, 30s);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r.is_ok());
  INFO(r.status().to_string());
  CHECK(r.status().code() == ota::Code::kInvalidArgument);
  CHECK(r.status().message().find("above the agents' limit of 65536 bytes") != std::string::npos);
  CHECK(took < 1s);
  // Nothing reached the agent: a small command sent afterwards is the first thing it sees.
  v1::Command ping;
  ping.mutable_get_inventory();
  REQUIRE(bus->fleet().send("ecu-a", ping).is_ok());
  auto first = agent->wait_for_topic("ota/v1/ecu/ecu-a/down/cmd", kDeadline);
  REQUIRE(first);
  CHECK(first->payload.size() < 1024);
  CHECK(agent->messages().size() == 1);
}

TEST_CASE_METHOD(ota::test::BrokerFixture,
                 "An agent's credentials with the client's client id cannot disturb the client",
                 "[integration][security]") {
  // The broker is rendered with the defaults: client id = username.
  ota::TransportOptions o;
  o.uri = broker().uri();
  o.client_id = "ota-client";
  o.username = "ota-client";
  o.password = broker().password("ota-client");
  auto client = ota::make_transport(o);
  std::atomic<int> losses{0};
  ota::test::TransportInbox inbox;
  client->on_message([&](ota::TransportMessage&& m) { inbox.add(std::move(m)); });
  client->on_connection([&](bool up) {
    if (!up) ++losses;
  });
  REQUIRE(client->connect(kDeadline).is_ok());
  REQUIRE(client->subscribe(ota::topics::ecu("ecu-a", ota::topics::Leaf::kState), 1).is_ok());
  // ecu-b connects again and again with the client id of the client, then of agent ecu-a.
  for (int i = 0; i < 20; ++i) {
    auto options = client_options("ecu-b", 4);
    options.client_id = i % 2 ? "ota-client" : "agent-ecu-a";
    auto intruder = connect_with(options);
  }
  auto a = connect("ecu-a");
  REQUIRE(a->publish("ota/v1/ecu/ecu-a/up/state", "after the intruders").is_ok());
  REQUIRE(inbox.wait_for_payload("ota/v1/ecu/ecu-a/up/state", "after the intruders", kDeadline));
  CHECK(losses == 0);
  CHECK(client->connected());
  CHECK(slurp(broker().log_path()).find("already connected, closing old connection") == std::string::npos);
}

TEST_CASE("A report with inflated agent fields is delivered, capped, on the bus and to the file",
          "[integration][security]") {
  // Ten agents, each with 40 DTCs of 1500-byte descriptions: uncapped, their DTC lists before and
  // after alone make a report of over 1 MiB, which the broker would refuse.
  auto dir = ota::test::temp_dir("ota-sec-report-");
  auto run = ota::test::run_sim(
      dir, {"--agents", "10", "--image-size", "64KiB", "--dtcs", "40", "--dtc-text-bytes", "1500"});
  INFO(run.output << "\n" << run.client_log());
  CHECK(run.exit_code == 0);
  REQUIRE(run.has_report);
  REQUIRE(run.report.ecus_size() == 10);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.dtcs_before_size() == 40);
    for (const auto& d : e.dtcs_before()) CHECK(d.description().size() <= AgentFieldLimits::kMaxText);
  }
  CHECK(run.client_log().find("DTC list cut to the client's limits") != std::string::npos);
  CHECK(run.report.ByteSizeLong() <= AgentFieldLimits::kMaxReportBytes);

  // The retained report on the vehicle bus: start the run's broker again on its database.
  ota::sim::BrokerOptions bo;
  bo.dir = run.work + "/broker";
  ota::test::BrokerFixture fixture(bo);
  auto observer = fixture.connect("ota-observer");
  REQUIRE(observer->subscribe(ota::topics::kVehicleReport).is_ok());
  auto m = observer->wait_for_topic(ota::topics::kVehicleReport, kDeadline);
  REQUIRE(m);
  v1::VehicleReport on_bus;
  REQUIRE(on_bus.ParseFromString(m->payload));
  CHECK(on_bus.campaign_id() == run.report.campaign_id());
  CHECK(on_bus.ecus_size() == 10);
}
