// The agent SDK against a real broker: ota-agent-sim processes driven by the client library.
#include <catch2/catch.hpp>

#include <csignal>

#include "agent_directory.hpp"
#include "images.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "ota/sim/wait.hpp"
#include "ota/test/broker_fixture.hpp"
#include "support.hpp"
#include "transfer.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;

namespace {

std::string bytes_of(const ota::Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

ota::sim::TempDir make_temp() {
  auto t = ota::sim::TempDir::create("ota-agent-it-");
  if (!t) throw std::runtime_error(t.status().to_string());
  return std::move(*t);
}

// A broker, a client-side AgentDirectory connected as ota-client, and helpers to start agents.
struct Vehicle : ota::test::BrokerFixture {
  ota::sim::TempDir dir = make_temp();
  ota::test::ClientBus bus{broker()};
  std::unique_ptr<ota::Transport>& transport = bus.transport;
  std::unique_ptr<ota::client::AgentDirectory>& fleet = bus.fleet;
  std::map<std::string, ota::sim::ChildProcess> agents;

  Vehicle() : BrokerFixture(std::vector<std::string>{"ecu-a", "ecu-b"}) {}

  std::string ecu_dir(const std::string& ecu) { return dir.file(ecu); }

  ota::sim::ImageFile factory_image(const std::string& ecu, uint64_t size) {
    REQUIRE(ota::make_dirs(ecu_dir(ecu)).is_ok());
    auto img = ota::sim::write_base_image(ecu_dir(ecu) + "/bank_a.img", size, 7);
    REQUIRE(img.is_ok());
    return *img;
  }

  // Factory images of `size` bytes for ecu-a and ecu-b, and the next version of them.
  ota::sim::ImageFile factory_and_next_image(uint64_t size, uint64_t seed) {
    factory_image("ecu-a", size);
    auto image = ota::sim::write_next_image(factory_image("ecu-b", size), dir.file("image-2.bin"), seed);
    REQUIRE(image.is_ok());
    return *image;
  }

  void start_agent(const std::string& ecu, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {ota::test::bin("ota-agent-sim"),
                                     "--ecu",
                                     ecu,
                                     "--hardware-id",
                                     "hw-1",
                                     "--broker",
                                     broker().uri(),
                                     "--password-file",
                                     broker().credentials_file(ecu),
                                     "--dir",
                                     ecu_dir(ecu),
                                     "--factory-version",
                                     "1.0.0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ota::sim::SpawnOptions so;
    so.log_path = ecu_dir(ecu) + "/agent.log";
    auto child = ota::sim::ChildProcess::spawn(argv, so);
    REQUIRE(child.is_ok());
    agents.erase(ecu);
    agents.emplace(ecu, std::move(*child));
  }

  uint64_t boot_id(const std::string& ecu) {
    auto view = fleet->agent(ecu);
    return view ? view->hello.boot_id() : 0;
  }

  // Waits for an online hello from a new boot of the agent.
  void wait_online(const std::string& ecu, uint64_t previous_boot = 0) {
    bool ok = ota::sim::wait_until(
        [&] {
          auto v = fleet->agent(ecu);
          return v && v->hello.online() && v->hello.boot_id() != previous_boot;
        },
        10s);
    INFO(ota::sim::tail_file(ecu_dir(ecu) + "/agent.log"));
    REQUIRE(ok);
  }

  v1::Result install(const std::string& ecu, const std::string& transfer_id) {
    v1::Command cmd;
    cmd.mutable_install()->set_transfer_id(transfer_id);
    return call(ecu, cmd);
  }

  // Bank B of the ECU holds exactly the image.
  void check_bank_b(const std::string& ecu, const ota::sim::ImageFile& image) {
    auto bank = ota::sha256_file(ecu_dir(ecu) + "/bank_b.img");
    REQUIRE(bank.is_ok());
    CHECK(*bank == image.sha256);
  }

  v1::Result call(const std::string& ecu, v1::Command cmd) {
    auto r = fleet->call(ecu, std::move(cmd), 10s);
    INFO(r.status().to_string());
    REQUIRE(r.is_ok());
    return *r;
  }
};

ota::client::TransferPlan raw_plan(const std::string& ecu, const ota::sim::ImageFile& image) {
  ota::client::TransferPlan plan;
  plan.ecu_id = ecu;
  plan.campaign_id = "c1";
  plan.transfer_id = "c1/" + ecu + "/2.0.0";
  plan.payload_path = image.path;
  plan.chunk_size = 64 * 1024;
  plan.window = 8;
  plan.stall_timeout = 2s;
  plan.target.set_version("2.0.0");
  plan.target.set_size(image.size);
  plan.target.set_sha256(bytes_of(image.sha256));
  plan.target.set_encoding(v1::PAYLOAD_ENCODING_RAW);
  plan.target.set_payload_size(image.size);
  plan.target.set_payload_sha256(bytes_of(image.sha256));
  return plan;
}

}  // namespace

TEST_CASE_METHOD(Vehicle, "An agent announces itself retained with a Last Will", "[integration][sdk]") {
  factory_image("ecu-a", 64 * 1024);
  start_agent("ecu-a");
  wait_online("ecu-a");
  auto view = fleet->agent("ecu-a");
  const auto& inv = view->hello.inventory();
  CHECK(inv.ecu_id() == "ecu-a");
  CHECK(inv.hardware_id() == "hw-1");
  CHECK(inv.active_bank() == v1::BANK_A);
  CHECK(inv.capabilities().delta());
  CHECK(view->hello.protocol().major() == 1);
  REQUIRE(inv.banks_size() == 2);
  CHECK(inv.banks(0).version() == "1.0.0");

  // A client that connects later sees the agent at once (retained hello).
  auto late = connect("ota-observer");
  REQUIRE(late->subscribe("ota/v1/ecu/ecu-a/up/hello").is_ok());
  auto retained = late->wait_for_topic("ota/v1/ecu/ecu-a/up/hello", 5s);
  REQUIRE(retained.has_value());
  CHECK(retained->retained);

  // kill -9: the broker publishes the Last Will, online=false.
  agents.at("ecu-a").kill();
  REQUIRE(ota::sim::wait_until([&] { return !fleet->agent("ecu-a")->hello.online(); }, 10s));
}

TEST_CASE_METHOD(Vehicle, "A command of an unknown major version is refused and never crashes the agent",
                 "[integration][sdk]") {
  factory_image("ecu-a", 64 * 1024);
  start_agent("ecu-a");
  wait_online("ecu-a");
  // The vehicle's own client connection: the broker allows one per user (client id = username).
  ota::Transport* client = transport.get();

  // Malformed bytes first: dropped with a log line.
  REQUIRE(client->publish("ota/v1/ecu/ecu-a/down/cmd", std::string("\xff\xff\xff\x01garbage", 11), 1, false)
              .is_ok());
  REQUIRE(client->publish("ota/v1/ecu/ecu-a/down/data", std::string(100, '\xee'), 1, false).is_ok());

  v1::Command cmd;
  cmd.mutable_protocol()->set_major(2);
  cmd.set_correlation_id("ecu-a/v2-probe");
  cmd.mutable_get_inventory();
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/ecu/ecu-a/up/result").is_ok());
  REQUIRE(client->publish("ota/v1/ecu/ecu-a/down/cmd", cmd.SerializeAsString(), 1, false).is_ok());
  auto msg = observer->wait_for_topic("ota/v1/ecu/ecu-a/up/result", 5s);
  REQUIRE(msg.has_value());
  v1::Result r;
  REQUIRE(r.ParseFromString(msg->payload));
  CHECK(r.correlation_id() == "ecu-a/v2-probe");
  CHECK(r.outcome() == v1::OUTCOME_REFUSED);
  CHECK(r.error().code() == v1::ERROR_CODE_UNSUPPORTED_VERSION);
  CHECK(r.error().message().find("protocol version 2.0 is not supported") != std::string::npos);

  // Still alive and answering version 1.
  v1::Command ok;
  ok.mutable_get_inventory();
  auto answer = call("ecu-a", ok);
  CHECK(answer.outcome() == v1::OUTCOME_OK);
  CHECK(answer.inventory().ecu_id() == "ecu-a");
  CHECK(agents.at("ecu-a").running());
}

TEST_CASE_METHOD(Vehicle, "kill -9 of an agent mid-transfer resumes from its durable offset",
                 "[integration][sdk][fault]") {
  const auto image = factory_and_next_image(4 << 20, 3);
  // Slow flash and a small durable interval, so the kill lands mid-transfer after some durable data.
  std::vector<std::string> knobs = {"--write-speed", "8", "--durable-interval", "262144"};
  start_agent("ecu-a", knobs);
  wait_online("ecu-a");
  const uint64_t first_boot = boot_id("ecu-a");

  auto plan = raw_plan("ecu-a", image);
  std::atomic<bool> cancel{false};
  std::atomic<uint64_t> acked{0};
  ota::client::TransferStats stats;
  ota::Status result;
  std::thread sender([&] {
    result =
        ota::client::run_transfer(*fleet, *transport, plan, cancel, &stats, [&](uint64_t a) { acked = a; });
  });
  // Kill the agent once it holds more than half of the image.
  bool half = ota::sim::wait_until([&] { return acked > image.size / 2; }, 30s);
  agents.at("ecu-a").kill();
  start_agent("ecu-a", knobs);
  sender.join();
  INFO(result.to_string() << "\n" << ota::sim::tail_file(ecu_dir("ecu-a") + "/agent.log"));
  REQUIRE(half);
  REQUIRE(result.is_ok());
  CHECK(boot_id("ecu-a") != first_boot);
  CHECK(stats.resyncs >= 1);
  // Re-sent: what the agent had not made durable, plus the window in flight; far less than the image.
  const uint64_t resent = stats.bytes_sent - image.size;
  CHECK(stats.bytes_sent >= image.size);
  CHECK(resent < image.size / 3);

  // The image is verified and staged.
  auto r = install("ecu-a", plan.transfer_id);
  INFO(r.error().message());
  REQUIRE(r.outcome() == v1::OUTCOME_OK);
  CHECK(r.phase() == v1::PHASE_STAGED);
  check_bank_b("ecu-a", image);
}

TEST_CASE_METHOD(Vehicle,
                 "An agent killed after the last ack but before its last checkpoint refuses Install until "
                 "the transfer resumes",
                 "[integration][sdk][fault]") {
  const auto image = factory_and_next_image(2 << 20, 9);
  // A slow flash sync: the last checkpoint is still running when the last chunk is acknowledged.
  const std::vector<std::string> knobs = {"--sync-delay-ms", "3000", "--durable-interval", "1048576"};
  start_agent("ecu-a", knobs);
  wait_online("ecu-a");
  const uint64_t first_boot = boot_id("ecu-a");

  auto plan = raw_plan("ecu-a", image);
  std::atomic<bool> cancel{false};
  ota::client::TransferStats stats;
  REQUIRE(ota::client::run_transfer(*fleet, *transport, plan, cancel, &stats).is_ok());
  // Every byte is acknowledged; the power fails before the flash has them all.
  agents.at("ecu-a").kill();
  start_agent("ecu-a");
  wait_online("ecu-a", first_boot);

  auto r = install("ecu-a", plan.transfer_id);
  INFO(r.error().message());
  CHECK(r.outcome() == v1::OUTCOME_FAILED);
  CHECK(r.error().code() == v1::ERROR_CODE_NOT_FOUND);
  CHECK(r.error().message().find("transfer incomplete") != std::string::npos);

  // What the client then does: resume the transfer (only what was not durable is sent again), and
  // install again.
  ota::client::TransferStats again;
  REQUIRE(ota::client::run_transfer(*fleet, *transport, plan, cancel, &again).is_ok());
  CHECK(again.first_resume_offset < image.size);
  CHECK(again.bytes_sent == image.size - again.first_resume_offset / plan.chunk_size * plan.chunk_size);
  r = install("ecu-a", plan.transfer_id);
  INFO(r.error().message());
  REQUIRE(r.outcome() == v1::OUTCOME_OK);
  check_bank_b("ecu-a", image);
}

TEST_CASE_METHOD(Vehicle,
                 "A failing flash sync ends the transfer with its error and records nothing as durable",
                 "[integration][sdk][fault]") {
  const auto image = factory_and_next_image(2 << 20, 5);
  // Checkpoints every 256 KiB run on the agent's checkpoint thread (a file bank syncs beside writes).
  start_agent("ecu-a", {"--fail", "sync", "--durable-interval", "262144"});
  wait_online("ecu-a");

  auto plan = raw_plan("ecu-a", image);
  std::atomic<bool> cancel{false};
  ota::client::TransferStats stats;
  ota::Status st = ota::client::run_transfer(*fleet, *transport, plan, cancel, &stats);
  INFO(st.to_string() << "\n" << ota::sim::tail_file(ecu_dir("ecu-a") + "/agent.log"));
  CHECK(st.code() == ota::Code::kIoError);
  CHECK(st.message().find("simulated flash sync failure") != std::string::npos);
  CHECK(st.message().find("checkpoint at byte") != std::string::npos);

  // Nothing was recorded as durable: a new start of the same transfer resumes at 0, and Install
  // refuses what is not durably held.
  auto r = install("ecu-a", plan.transfer_id);
  CHECK(r.outcome() != v1::OUTCOME_OK);
  CHECK(r.active_bank() == v1::BANK_A);
  v1::Command start;
  *start.mutable_start_transfer()->mutable_target() = plan.target;
  start.mutable_start_transfer()->set_transfer_id(plan.transfer_id);
  start.mutable_start_transfer()->set_chunk_size(plan.chunk_size);
  start.mutable_start_transfer()->set_window(plan.window);
  r = call("ecu-a", start);
  REQUIRE(r.outcome() == v1::OUTCOME_OK);
  CHECK(r.transfer_ready().resume_offset() == 0);
}

TEST_CASE_METHOD(
    Vehicle, "A failed health check rolls back by itself and a crash during the trial rolls back on restart",
    "[integration][sdk][fault]") {
  auto base_a = factory_image("ecu-a", 256 * 1024);
  auto base_b = factory_image("ecu-b", 256 * 1024);
  auto image = ota::sim::write_next_image(base_a, dir.file("image-2.bin"), 5);
  REQUIRE(image.is_ok());
  start_agent("ecu-a", {"--fail", "health"});
  start_agent("ecu-b", {"--crash", "health"});
  wait_online("ecu-a");
  wait_online("ecu-b");
  const uint64_t b_boot = boot_id("ecu-b");

  for (const std::string ecu : {"ecu-a", "ecu-b"}) {
    auto plan = raw_plan(ecu, *image);
    std::atomic<bool> cancel{false};
    ota::client::TransferStats stats;
    REQUIRE(ota::client::run_transfer(*fleet, *transport, plan, cancel, &stats).is_ok());
    REQUIRE(install(ecu, plan.transfer_id).outcome() == v1::OUTCOME_OK);
  }

  v1::Command activate;
  activate.mutable_activate()->set_transfer_id("c1/ecu-a/2.0.0");
  activate.mutable_activate()->set_health_timeout_ms(2000);
  auto r = call("ecu-a", activate);
  CHECK(r.outcome() == v1::OUTCOME_ROLLED_BACK);
  CHECK(r.error().phase() == v1::PHASE_HEALTH);
  CHECK(r.error().message().find("simulated health check failure") != std::string::npos);
  CHECK(r.active_bank() == v1::BANK_A);
  CHECK(r.active_version() == "1.0.0");

  // ecu-b dies in its health check, after activation: on restart it must be back on bank A.
  v1::Command activate_b;
  activate_b.mutable_activate()->set_transfer_id("c1/ecu-b/2.0.0");
  auto lost = fleet->call("ecu-b", activate_b, 3s);
  CHECK_FALSE(lost.is_ok());
  REQUIRE(agents.at("ecu-b").wait_for(5s).has_value());
  auto boot = ota::read_small_file(ecu_dir("ecu-b") + "/boot");
  REQUIRE(boot.is_ok());
  CHECK(*boot == "B");  // it had switched when it died
  start_agent("ecu-b");
  wait_online("ecu-b", b_boot);
  auto view = fleet->agent("ecu-b");
  CHECK(view->hello.inventory().active_bank() == v1::BANK_A);
  boot = ota::read_small_file(ecu_dir("ecu-b") + "/boot");
  CHECK(*boot == "A");
  // The new boot's state message follows its hello; until it arrives the view holds the retained one.
  const bool reported = ota::sim::wait_until(
      [&] {
        auto v = fleet->agent("ecu-b");
        return v && v->state.last_error().message().find("rolled back") != std::string::npos;
      },
      10s);
  INFO(fleet->agent("ecu-b")->state.ShortDebugString());
  CHECK(reported);
}

TEST_CASE_METHOD(Vehicle, "DTCs are reported with their details and cleared on command",
                 "[integration][sdk]") {
  factory_image("ecu-a", 64 * 1024);
  start_agent("ecu-a", {"--dtcs", "3"});
  wait_online("ecu-a");
  v1::Command read;
  read.mutable_read_dtcs();
  auto r = call("ecu-a", read);
  REQUIRE(r.dtcs().dtcs_size() == 3);
  const auto& d = r.dtcs().dtcs(0);
  CHECK(d.code() == 0xC10000u);
  CHECK(d.status() == v1::DTC_STATUS_ACTIVE);
  CHECK(d.first_seen_ms() > 0);
  CHECK(d.last_seen_ms() >= d.first_seen_ms());

  v1::Command clear;
  clear.mutable_clear_dtcs()->add_codes(0xC10001u);
  r = call("ecu-a", clear);
  CHECK(r.outcome() == v1::OUTCOME_OK);
  REQUIRE(r.dtcs().dtcs_size() == 2);
  for (const auto& left : r.dtcs().dtcs()) CHECK(left.code() != 0xC10001u);
  // The retained DTC list follows.
  REQUIRE(ota::sim::wait_until([&] { return fleet->agent("ecu-a")->dtcs.dtcs_size() == 2; }, 5s));
}

TEST_CASE_METHOD(Vehicle, "A corrupted chunk is refused and re-sent and the image arrives intact",
                 "[integration][sdk][fault]") {
  auto base = factory_image("ecu-a", 256 * 1024);
  auto image = ota::sim::write_next_image(base, dir.file("image-2.bin"), 9);
  REQUIRE(image.is_ok());
  start_agent("ecu-a");
  wait_online("ecu-a");
  auto plan = raw_plan("ecu-a", *image);
  // Start the transfer, then inject a chunk with a bad CRC at offset 0 before the real sender runs.
  v1::Command start;
  auto* st = start.mutable_start_transfer();
  st->set_transfer_id(plan.transfer_id);
  *st->mutable_target() = plan.target;
  st->set_chunk_size(plan.chunk_size);
  st->set_window(plan.window);
  REQUIRE(call("ecu-a", start).outcome() == v1::OUTCOME_OK);
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/ecu/ecu-a/up/ack").is_ok());
  v1::Chunk bad;
  bad.set_transfer_id(plan.transfer_id);
  bad.set_offset(0);
  bad.set_data(std::string(plan.chunk_size, 'x'));
  bad.set_crc32c(12345);
  // The vehicle's own client connection: the broker allows one per user (client id = username).
  REQUIRE(transport->publish("ota/v1/ecu/ecu-a/down/data", bad.SerializeAsString(), 1, false).is_ok());
  auto ack = observer->wait_for_topic("ota/v1/ecu/ecu-a/up/ack", 5s);
  REQUIRE(ack.has_value());
  v1::ChunkAck a;
  REQUIRE(a.ParseFromString(ack->payload));
  CHECK(a.next_offset() == 0);
  CHECK(a.error().code() == v1::ERROR_CODE_CORRUPT);
  CHECK(a.error().message().find("CRC-32C mismatch") != std::string::npos);

  std::atomic<bool> cancel{false};
  ota::client::TransferStats stats;
  REQUIRE(ota::client::run_transfer(*fleet, *transport, plan, cancel, &stats).is_ok());
  CHECK(install("ecu-a", plan.transfer_id).outcome() == v1::OUTCOME_OK);
  check_bank_b("ecu-a", *image);
}
