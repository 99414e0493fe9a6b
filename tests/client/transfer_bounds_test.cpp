// run_transfer against a misbehaving agent, over the in-memory loopback broker: each bound ends the
// transfer in bounded time with an error naming what the agent did (docs/PROTOCOL.md 6.3, 12).
// The agent here is a few lines of protocol on a Transport, scripted per test; the real processes
// play the same misbehaviours in tests/security/bad_ecu_test.cpp.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent_directory.hpp"
#include "ota/core/file.hpp"
#include "ota/core/loopback_transport.hpp"
#include "ota/core/topics.hpp"
#include "ota/sim/tempdir.hpp"
#include "transfer.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;
using ota::Code;
using ota::client::TransferPlan;

namespace {

constexpr const char* kEcu = "rogue";
constexpr uint32_t kChunk = 1024;

// What the agent does with a chunk that arrived in order: the acks it publishes (none: silence).
using ChunkScript = std::function<std::vector<v1::ChunkAck>(const v1::Chunk& chunk, uint64_t next)>;

v1::ChunkAck ack_of(const std::string& transfer_id, uint64_t next, v1::ErrorCode code = v1::ERROR_CODE_OK) {
  v1::ChunkAck a;
  a.set_transfer_id(transfer_id);
  a.set_next_offset(next);
  if (code != v1::ERROR_CODE_OK) {
    a.mutable_error()->set_code(code);
    a.mutable_error()->set_message("chunk at offset " + std::to_string(next) + ": CRC-32C mismatch");
  }
  return a;
}

// The agent: answers StartTransfer (unless `answers` is false) with resume offset 0, then runs the
// script on every chunk; `after_ready` may add acks right behind TransferReady.
class RogueAgent {
 public:
  RogueAgent(std::shared_ptr<ota::LoopbackBroker> broker, ChunkScript script, bool answers = true)
      : script_(std::move(script)), answers_(answers) {
    ota::TransportOptions o;
    o.client_id = std::string("agent-") + kEcu;
    t_ = ota::make_loopback_transport(std::move(broker), o);
    t_->on_message([this](ota::TransportMessage&& m) { handle(m); });
    REQUIRE(t_->connect(1s).is_ok());
    REQUIRE(t_->subscribe(std::string("ota/v1/ecu/") + kEcu + "/down/#", 1).is_ok());
  }
  ~RogueAgent() { t_->disconnect(1s); }
  std::function<std::vector<v1::ChunkAck>(const std::string& transfer_id)> after_ready;
  int chunks() const { return chunks_; }

 private:
  void handle(const ota::TransportMessage& m) {
    if (m.topic == ota::topics::ecu(kEcu, ota::topics::Leaf::kCmd)) {
      v1::Command cmd;
      if (!answers_ || !cmd.ParseFromString(m.payload) || !cmd.has_start_transfer()) return;
      v1::Result r;
      r.set_correlation_id(cmd.correlation_id());
      r.set_ecu_id(kEcu);
      r.set_outcome(v1::OUTCOME_OK);
      r.mutable_transfer_ready()->set_resume_offset(0);
      next_ = 0;
      (void)t_->publish(ota::topics::ecu(kEcu, ota::topics::Leaf::kResult), r.SerializeAsString(), 1, false);
      if (after_ready) publish(after_ready(cmd.start_transfer().transfer_id()));
    } else if (m.topic == ota::topics::ecu(kEcu, ota::topics::Leaf::kData)) {
      v1::Chunk c;
      if (!c.ParseFromString(m.payload) || c.offset() != next_) return;
      ++chunks_;
      auto acks = script_(c, next_);
      for (const auto& a : acks) {
        if (!a.has_error() && a.next_offset() > next_) next_ = a.next_offset();
      }
      publish(acks);
    }
  }
  void publish(const std::vector<v1::ChunkAck>& acks) {
    for (const auto& a : acks)
      (void)t_->publish(ota::topics::ecu(kEcu, ota::topics::Leaf::kAck), a.SerializeAsString(), 1, false);
  }

  std::unique_ptr<ota::Transport> t_;
  ChunkScript script_;
  bool answers_;
  uint64_t next_ = 0;
  std::atomic<int> chunks_{0};
};

// The client's side: a directory over a loopback transport and a payload file of `size` bytes.
struct Client {
  explicit Client(std::shared_ptr<ota::LoopbackBroker> broker, uint64_t size = 64 * kChunk) {
    ota::TransportOptions o;
    o.client_id = "ota-client";
    t = ota::make_loopback_transport(std::move(broker), o);
    dir = std::make_unique<ota::client::AgentDirectory>(*t);
    t->on_message([this](ota::TransportMessage&& m) { dir->on_message(m); });
    REQUIRE(t->connect(1s).is_ok());
    REQUIRE(t->subscribe(ota::topics::kAllAgentsUp, 1).is_ok());
    auto dir = ota::sim::TempDir::create("ota-transfer-bounds-");
    REQUIRE(dir.is_ok());
    tmp = std::make_unique<ota::sim::TempDir>(std::move(*dir));
    payload = tmp->file("payload.bin");
    REQUIRE(ota::atomic_write_file(payload, std::string(size, 'p')).is_ok());
    plan.ecu_id = kEcu;
    plan.campaign_id = "c";
    plan.transfer_id = std::string("c/") + kEcu + "/2";
    plan.payload_path = payload;
    plan.target.set_payload_size(size);
    plan.chunk_size = kChunk;
    plan.window = 2;
    plan.stall_timeout = 300ms;
  }
  ~Client() { t->disconnect(1s); }
  // Runs the transfer; *took is how long it ran.
  ota::Status run(std::chrono::milliseconds* took = nullptr) {
    std::atomic<bool> cancel{false};
    ota::client::TransferStats stats;
    const auto t0 = std::chrono::steady_clock::now();
    ota::Status st = ota::client::run_transfer(*dir, *t, plan, cancel, &stats);
    if (took)
      *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    rewinds = stats.rewinds;
    return st;
  }
  std::unique_ptr<ota::Transport> t;
  std::unique_ptr<ota::client::AgentDirectory> dir;
  std::unique_ptr<ota::sim::TempDir> tmp;
  std::string payload;
  TransferPlan plan;
  int rewinds = 0;
};

std::vector<v1::ChunkAck> honest(const v1::Chunk& c, uint64_t) {
  return {ack_of(c.transfer_id(), c.offset() + c.data().size())};
}

}  // namespace

TEST_CASE("an honest agent gets the whole payload with every bound set", "[unit][transfer]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  RogueAgent agent(broker, honest);
  Client client(broker);
  client.plan.min_rate = 1024;
  client.plan.rate_window = 1000ms;
  client.plan.deadline = std::chrono::steady_clock::now() + 10s;
  ota::Status st = client.run();
  INFO(st.to_string());
  CHECK(st.is_ok());
  CHECK(agent.chunks() == 64);
}

TEST_CASE("a chunk size or window outside the sane range fails before anything is sent",
          "[unit][transfer][security]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  RogueAgent agent(broker, honest);
  Client client(broker);
  client.plan.chunk_size = 1;  // an agent declaring max_chunk_size 1
  ota::Status st = client.run();
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message() ==
        "rogue: chunk size of 1 bytes is outside 512..524288 (the campaign's chunk_size, lowered to the "
        "agent's declared max_chunk_size)");
  client.plan.chunk_size = kChunk;
  client.plan.window = 100000;
  st = client.run();
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().find("rogue: window of 100000 chunks is outside 1..64") == 0);
  client.plan.window = 0;
  CHECK(client.run().code() == Code::kInvalidArgument);
  CHECK(agent.chunks() == 0);
}

TEST_CASE("an ack beyond the payload or beyond what was sent is a protocol error",
          "[unit][transfer][security]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  SECTION("2^64-1 right behind TransferReady, before any chunk") {
    RogueAgent agent(broker, honest);
    agent.after_ready = [](const std::string& id) {
      return std::vector<v1::ChunkAck>{ack_of(id, std::numeric_limits<uint64_t>::max())};
    };
    Client client(broker);
    ota::Status st = client.run();
    CHECK(st.code() == Code::kCorrupt);
    CHECK(
        st.message() ==
        "rogue: protocol error: ack with next_offset 18446744073709551615 beyond the payload of 65536 bytes");
  }
  SECTION("the whole payload acknowledged after the first chunk") {
    RogueAgent agent(broker, [](const v1::Chunk& c, uint64_t) {
      return std::vector<v1::ChunkAck>{ack_of(c.transfer_id(), 64 * kChunk)};
    });
    Client client(broker);
    ota::Status st = client.run();
    CHECK(st.code() == Code::kCorrupt);
    // The window lets up to two chunks out before the first ack arrives: one or two were sent.
    const std::string one = "rogue: protocol error: ack with next_offset 65536 beyond the 1024 bytes sent";
    const std::string two = "rogue: protocol error: ack with next_offset 65536 beyond the 2048 bytes sent";
    INFO(st.message());
    CHECK((st.message() == one || st.message() == two));
  }
}

TEST_CASE("endless CORRUPT acks end after the documented 20 rounds", "[unit][transfer][security]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  RogueAgent agent(broker, [](const v1::Chunk& c, uint64_t next) {
    return std::vector<v1::ChunkAck>{ack_of(c.transfer_id(), next, v1::ERROR_CODE_CORRUPT)};
  });
  Client client(broker);
  std::chrono::milliseconds took{};
  ota::Status st = client.run(&took);
  INFO(st.to_string());
  CHECK(st.code() == Code::kHashMismatch);
  CHECK(st.message() ==
        "rogue: the agent refused chunks 21 times in 21 rounds (last: chunk at offset 0: CRC-32C mismatch)");
  CHECK(client.rewinds == 21);
  CHECK(agent.chunks() <= 21 * 2);
  CHECK(took < 5s);
}

TEST_CASE("slowloris acks below the progress floor fail the transfer", "[unit][transfer][security]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  // Each ack comes 200 ms after its chunk, inside the 300 ms stall timeout: 5 KiB/s, the whole
  // payload in 13 s without the floor.
  RogueAgent agent(broker, [](const v1::Chunk& c, uint64_t) {
    std::this_thread::sleep_for(200ms);
    return std::vector<v1::ChunkAck>{ack_of(c.transfer_id(), c.offset() + c.data().size())};
  });
  Client client(broker);
  client.plan.min_rate = 64 * 1024;
  client.plan.rate_window = 1000ms;
  std::chrono::milliseconds took{};
  ota::Status st = client.run(&took);
  INFO(st.to_string());
  CHECK(st.code() == Code::kTimeout);
  CHECK(st.message().find("rogue: too slow: ") == 0);
  CHECK(st.message().find("below the floor of 65536 bytes/s") != std::string::npos);
  CHECK(took < 4s);
  CHECK(agent.chunks() < 64);
}

TEST_CASE("a silent agent fails at the first floor window", "[unit][transfer][security]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  RogueAgent agent(broker, honest, /*answers=*/false);
  Client client(broker);
  client.plan.min_rate = 1024;
  client.plan.rate_window = 1000ms;
  std::chrono::milliseconds took{};
  ota::Status st = client.run(&took);
  INFO(st.to_string());
  CHECK(st.code() == Code::kTimeout);
  CHECK(st.message().find("rogue: StartTransfer unanswered: too slow: 0 bytes acknowledged in ") == 0);
  CHECK(took >= 1000ms);
  CHECK(took < 4s);  // not 21 unanswered StartTransfers
}

TEST_CASE("an agent that answers StartTransfer but acknowledges nothing gains no time from resyncs",
          "[unit][transfer][security]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  RogueAgent agent(broker, [](const v1::Chunk&, uint64_t) { return std::vector<v1::ChunkAck>{}; });
  Client client(broker);
  client.plan.min_rate = 1024;
  client.plan.rate_window = 1000ms;
  std::chrono::milliseconds took{};
  ota::Status st = client.run(&took);
  INFO(st.to_string());
  CHECK(st.code() == Code::kTimeout);
  CHECK(st.message().find("too slow: 0 bytes acknowledged") != std::string::npos);
  CHECK(took < 4s);  // not 21 stall timeouts (over 6 s)
}

TEST_CASE("the campaign's deadline ends a transfer that keeps above the floor", "[unit][transfer]") {
  auto broker = std::make_shared<ota::LoopbackBroker>();
  // 64 chunks of 50 ms each: 3.2 s without the deadline.
  RogueAgent agent(broker, [](const v1::Chunk& c, uint64_t) {
    std::this_thread::sleep_for(50ms);
    return std::vector<v1::ChunkAck>{ack_of(c.transfer_id(), c.offset() + c.data().size())};
  });
  Client client(broker);
  client.plan.deadline = std::chrono::steady_clock::now() + 300ms;
  std::chrono::milliseconds took{};
  ota::Status st = client.run(&took);
  INFO(st.to_string());
  CHECK(st.code() == Code::kTimeout);
  CHECK(st.message().find("rogue: the campaign's deadline passed at byte ") == 0);
  CHECK(took < 2s);
}

TEST_CASE("the derived campaign deadline covers every target at the floor", "[unit][transfer]") {
  v1::Campaign c;
  auto* a = c.add_targets();
  a->set_size(1 << 20);
  auto* b = c.add_targets();
  b->set_size(100);
  b->mutable_delta()->set_size(2 << 20);  // larger than its image: counted instead
  CHECK(ota::client::derived_campaign_timeout(c, 1024) ==
        ota::client::kBaseCampaignTime + std::chrono::milliseconds((3 << 20) / 1024 * 1000));
}
