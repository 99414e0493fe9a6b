// Tests of how a C agent (ota/agent.h, through libota-agent.so) reaches its broker: it waits for a
// broker that comes up after it, gives up after connect_timeout_ms, fails at once on refused
// credentials, and a caller built against ABI 3 (a smaller config struct) still starts.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "c_agent_setup.hpp"
#include "ota/agent.h"

using namespace std::chrono_literals;
using ota::test::CAgentSetup;

namespace {

struct MemDevice {
  std::vector<uint8_t> bank[3] = {{}, std::vector<uint8_t>(4096, 0x5a), std::vector<uint8_t>(4096, 0)};
};

uint64_t mem_bank_size(void* user) { return static_cast<MemDevice*>(user)->bank[1].size(); }

ota_status_t mem_write(void* user, ota_bank_t bank, uint64_t off, const uint8_t* data, size_t len) {
  auto& b = static_cast<MemDevice*>(user)->bank[bank];
  if (off + len > b.size()) return OTA_ERR_NO_SPACE;
  std::memcpy(b.data() + off, data, len);
  return OTA_OK;
}

ota_status_t mem_read(void* user, ota_bank_t bank, uint64_t off, uint8_t* buf, size_t len) {
  std::memcpy(buf, static_cast<MemDevice*>(user)->bank[bank].data() + off, len);
  return OTA_OK;
}

ota_agent_callbacks_t mem_callbacks(MemDevice* dev) {
  ota_agent_callbacks_t cb;
  ota_agent_callbacks_init(&cb);
  cb.user = dev;
  cb.bank_size = mem_bank_size;
  cb.bank_write = mem_write;
  cb.bank_read = mem_read;
  return cb;
}

// Collects the SDK's log records while it lives (the handler is process-wide), so that a test can
// wait for one with a deadline instead of sleeping.
class LogCapture {
 public:
  LogCapture() {
    ota_log_set_level(OTA_LOG_DEBUG);
    ota_log_set_handler(&LogCapture::handle, this);
  }
  ~LogCapture() {
    ota_log_set_handler(nullptr, nullptr);
    ota_log_set_level(OTA_LOG_INFO);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // How many records at `level` contain `part`, once there are at least `count` (or the deadline).
  size_t wait_for(ota_log_level_t level, const std::string& part, size_t count,
                  std::chrono::seconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    size_t n = 0;
    cv_.wait_for(lock, deadline, [&] {
      n = 0;
      for (const auto& r : records_)
        if (r.first == level && r.second.find(part) != std::string::npos) ++n;
      return n >= count;
    });
    return n;
  }

 private:
  static void handle(void* user, ota_log_level_t level, const char* /*component*/, const char* message) {
    auto* self = static_cast<LogCapture*>(user);
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->records_.emplace_back(level, message);
    }
    self->cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<ota_log_level_t, std::string>> records_;
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE_METHOD(ota::test::BrokerFixture,
                 "a C agent started before its broker connects when the broker comes up",
                 "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-");
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  setup.cfg.connect_timeout_ms = 0;  // forever: the broker decides when
  REQUIRE(broker().stop());

  LogCapture log;
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&setup.cfg, &cb, &agent) == OTA_OK);
  auto started = std::async(std::launch::async, [agent] { return ota_agent_start(agent); });
  // Two failed attempts logged (at INFO, with the pause before the next) before the broker is back.
  CHECK(log.wait_for(OTA_LOG_INFO, "broker not reachable", 2, 10s) >= 2);
  CHECK(log.wait_for(OTA_LOG_DEBUG, "(attempt 2)", 1, 10s) == 1);
  CHECK(started.wait_for(0s) == std::future_status::timeout);  // still waiting
  REQUIRE(broker().restart().is_ok());

  REQUIRE(started.wait_for(15s) == std::future_status::ready);
  const ota_status_t st = started.get();
  INFO(ota_agent_last_error(agent));
  REQUIRE(st == OTA_OK);
  CHECK(log.wait_for(OTA_LOG_INFO, "connected to", 1, 1s) == 1);
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/ecu/ecu-a/up/hello").is_ok());
  auto hello = observer->wait_for_topic("ota/v1/ecu/ecu-a/up/hello", 5s);
  REQUIRE(hello);
  CHECK(hello->retained);
  ota_agent_destroy(agent);
}

TEST_CASE_METHOD(ota::test::BrokerFixture, "a C agent gives up on an absent broker after connect_timeout_ms",
                 "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-");
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  setup.cfg.connect_timeout_ms = 700;
  REQUIRE(broker().stop());
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&setup.cfg, &cb, &agent) == OTA_OK);
  const auto t0 = std::chrono::steady_clock::now();
  const ota_status_t st = ota_agent_start(agent);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  const std::string message = ota_agent_last_error(agent);
  INFO(message);
  CHECK(st == OTA_ERR_UNAVAILABLE);
  CHECK(contains(message, "not reachable within 700 ms"));
  CHECK(elapsed >= 700ms);
  CHECK(elapsed < 5s);
  ota_agent_destroy(agent);
}

TEST_CASE_METHOD(ota::test::BrokerFixture, "a C agent with refused credentials fails at once, not retried",
                 "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-");
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  setup.cfg.password = "wrong-password";
  setup.cfg.connect_timeout_ms = 0;  // even when told to wait forever
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&setup.cfg, &cb, &agent) == OTA_OK);
  const auto t0 = std::chrono::steady_clock::now();
  const ota_status_t st = ota_agent_start(agent);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  const std::string message = ota_agent_last_error(agent);
  INFO(message);
  CHECK(st == OTA_ERR_REJECTED);
  CHECK(contains(message, "not retried"));
  CHECK(elapsed < 3s);
  ota_agent_destroy(agent);
}

TEST_CASE_METHOD(ota::test::BrokerFixture,
                 "a caller built against ABI 3 (a smaller config struct) still starts",
                 "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-");
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  // The ABI 3 struct ended with bank_sync_concurrent; what follows is memory the caller never set.
  const size_t abi3_size = offsetof(ota_agent_config_t, trust_root_file);
  std::vector<unsigned char> buf(sizeof(ota_agent_config_t), 0xab);
  std::memcpy(buf.data(), &setup.cfg, abi3_size);
  auto* old = reinterpret_cast<ota_agent_config_t*>(buf.data());
  old->struct_size = abi3_size;

  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(old, &cb, &agent) == OTA_OK);
  const ota_status_t st = ota_agent_start(agent);
  INFO(ota_agent_last_error(agent));
  CHECK(st == OTA_OK);  // no trust root, no ECU key, the default connect timeout: not the 0xab bytes
  CHECK(ota_agent_active_bank(agent) == OTA_BANK_A);
  ota_agent_destroy(agent);
}
