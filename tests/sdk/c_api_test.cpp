// Tests of the agent SDK's C ABI (ota/agent.h) through libota-agent.so, as a supplier links it:
// status names, versions, config defaults, every way ota_agent_create refuses its input, and a C
// agent starting against a private Mosquitto. The generated ota.pb.h is not used here (see
// hello_online): a whole update through the C ABI is in c_api_update_test.cpp.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "c_agent_setup.hpp"
#include "ota/agent.h"
#include "ota/agent.hpp"

using ota::test::CAgentSetup;

namespace {

// A device whose banks live in memory: enough for create/start without touching flash.
struct MemDevice {
  std::vector<uint8_t> bank[3] = {{}, std::vector<uint8_t>(4096, 0x5a), std::vector<uint8_t>(4096, 0)};
  int reads = 0;
};

uint64_t mem_bank_size(void* user) { return static_cast<MemDevice*>(user)->bank[1].size(); }

ota_status_t mem_write(void* user, ota_bank_t bank, uint64_t off, const uint8_t* data, size_t len) {
  auto& b = static_cast<MemDevice*>(user)->bank[bank];
  if (off + len > b.size()) {
    ota_callback_set_error("write beyond the bank");
    return OTA_ERR_NO_SPACE;
  }
  std::memcpy(b.data() + off, data, len);
  return OTA_OK;
}

ota_status_t mem_read(void* user, ota_bank_t bank, uint64_t off, uint8_t* buf, size_t len) {
  auto* d = static_cast<MemDevice*>(user);
  ++d->reads;
  std::memcpy(buf, d->bank[bank].data() + off, len);
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

ota_agent_config_t valid_config() {
  ota_agent_config_t cfg;
  ota_agent_config_init(&cfg);
  cfg.ecu_id = "ecu-a";
  cfg.broker_uri = "tcp://127.0.0.1:1";
  cfg.state_dir = "unused-state-dir";
  return cfg;
}

// Expects create to fail with INVALID_ARGUMENT, leave *out NULL and explain itself; returns the message.
std::string create_fails(const ota_agent_config_t* cfg, const ota_agent_callbacks_t* cb) {
  ota_agent_t* agent = reinterpret_cast<ota_agent_t*>(0x1);  // must be overwritten with NULL
  CHECK(ota_agent_create(cfg, cb, &agent) == OTA_ERR_INVALID_ARGUMENT);
  CHECK(agent == nullptr);
  std::string message = ota_agent_last_error(nullptr);
  INFO(message);
  CHECK(message.rfind("ota_agent_create: ", 0) == 0);
  return message;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("ota_status_str names every status like ota::code_name", "[unit][sdk]") {
  const std::pair<ota_status_t, const char*> names[] = {
      {OTA_OK, "OK"},
      {OTA_ERR_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {OTA_ERR_NOT_FOUND, "NOT_FOUND"},
      {OTA_ERR_CORRUPT, "CORRUPT"},
      {OTA_ERR_IO, "IO_ERROR"},
      {OTA_ERR_HASH_MISMATCH, "HASH_MISMATCH"},
      {OTA_ERR_SIGNATURE_INVALID, "SIGNATURE_INVALID"},
      {OTA_ERR_UNSUPPORTED, "UNSUPPORTED"},
      {OTA_ERR_TIMEOUT, "TIMEOUT"},
      {OTA_ERR_REJECTED, "REJECTED"},
      {OTA_ERR_ABORTED, "ABORTED"},
      {OTA_ERR_UNAVAILABLE, "UNAVAILABLE"},
      {OTA_ERR_INTERNAL, "INTERNAL"},
      {OTA_ERR_NO_SPACE, "NO_SPACE"},
  };
  for (const auto& [status, name] : names) {
    CHECK(std::string(ota_status_str(status)) == name);
    CHECK(std::string(ota::code_name(static_cast<ota::Code>(status))) == name);
  }
  CHECK(std::string(ota_status_str(static_cast<ota_status_t>(-1))) == "UNKNOWN");
  CHECK(std::string(ota_status_str(static_cast<ota_status_t>(OTA_ERR_NO_SPACE + 1))) == "UNKNOWN");
  CHECK(std::string(ota_status_str(static_cast<ota_status_t>(1000))) == "UNKNOWN");
}

TEST_CASE("the library reports the ABI version of this header and the SDK version", "[unit][sdk]") {
  CHECK(ota_agent_abi_version() == OTA_AGENT_ABI_VERSION);
  CHECK(std::string(ota_agent_sdk_version()) == ota::agent::sdk_version());
  CHECK_FALSE(std::string(ota_agent_sdk_version()).empty());
}

TEST_CASE("ota_agent_config_init fills the C++ defaults", "[unit][sdk]") {
  ota_agent_config_t cfg;
  std::memset(&cfg, 0xab, sizeof(cfg));
  ota_agent_config_init(&cfg);
  const ota::agent::AgentConfig d;
  CHECK(cfg.struct_size == sizeof(cfg));
  CHECK(cfg.ecu_id == nullptr);
  CHECK(cfg.hardware_id == nullptr);
  CHECK(cfg.serial == nullptr);
  CHECK(cfg.broker_uri == nullptr);
  CHECK(cfg.password == nullptr);
  CHECK(cfg.tls_ca_file == nullptr);
  CHECK(cfg.tls_cert_file == nullptr);
  CHECK(cfg.tls_key_file == nullptr);
  CHECK(cfg.state_dir == nullptr);
  REQUIRE(cfg.factory_version != nullptr);
  CHECK(std::string(cfg.factory_version) == d.factory_version);
  CHECK(cfg.factory_image_size == d.factory_image_size);
  CHECK(cfg.delta_capable == 1);
  CHECK(cfg.max_chunk_size == d.max_chunk_size);
  CHECK(cfg.max_window == d.max_window);
  CHECK(cfg.durable_interval_bytes == d.durable_interval_bytes);
  CHECK(cfg.health_timeout_ms == static_cast<uint32_t>(d.health_timeout.count()));
  CHECK(cfg.progress_interval_ms == static_cast<uint32_t>(d.progress_interval.count()));
  CHECK(cfg.bank_sync_concurrent == 0);
  CHECK(cfg.trust_root_file == nullptr);
  CHECK(cfg.partial_verification == 0);
  CHECK(cfg.ecu_key_file == nullptr);
  CHECK(cfg.connect_timeout_ms == static_cast<uint32_t>(d.connect_timeout.count()));
  CHECK(cfg.connect_timeout_ms == 10000);
}

TEST_CASE("ota_agent_config_init_sized never writes past a smaller (older) struct", "[unit][sdk]") {
  const size_t older = offsetof(ota_agent_config_t, factory_version);
  std::vector<unsigned char> buf(sizeof(ota_agent_config_t), 0xab);
  ota_agent_config_init_sized(reinterpret_cast<ota_agent_config_t*>(buf.data()), older);
  ota_agent_config_t cfg;
  std::memcpy(&cfg, buf.data(), sizeof(cfg));
  CHECK(cfg.struct_size == older);
  CHECK(cfg.state_dir == nullptr);
  for (size_t i = older; i < buf.size(); ++i) REQUIRE(buf[i] == 0xab);
}

TEST_CASE("ota_agent_callbacks_init clears every callback", "[unit][sdk]") {
  ota_agent_callbacks_t cb;
  std::memset(&cb, 0xab, sizeof(cb));
  ota_agent_callbacks_init(&cb);
  CHECK(cb.struct_size == sizeof(cb));
  CHECK(cb.user == nullptr);
  CHECK(cb.bank_size == nullptr);
  CHECK(cb.bank_write == nullptr);
  CHECK(cb.health_check == nullptr);
  CHECK(cb.free_space == nullptr);
}

TEST_CASE("ota_agent_create refuses NULL arguments", "[unit][sdk]") {
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  const ota_agent_config_t cfg = valid_config();
  CHECK(ota_agent_create(&cfg, &cb, nullptr) == OTA_ERR_INVALID_ARGUMENT);
  CHECK(contains(ota_agent_last_error(nullptr), "out is NULL"));
  CHECK(contains(create_fails(nullptr, &cb), "config is NULL"));
  CHECK(contains(create_fails(&cfg, nullptr), "callbacks is NULL"));
}

TEST_CASE("ota_agent_create names each missing required callback", "[unit][sdk]") {
  MemDevice dev;
  const ota_agent_config_t cfg = valid_config();
  ota_agent_callbacks_t cb = mem_callbacks(&dev);
  SECTION("bank_size") {
    cb.bank_size = nullptr;
    CHECK(contains(create_fails(&cfg, &cb), "required callbacks missing: bank_size"));
  }
  SECTION("bank_write") {
    cb.bank_write = nullptr;
    CHECK(contains(create_fails(&cfg, &cb), "required callbacks missing: bank_write"));
  }
  SECTION("bank_read") {
    cb.bank_read = nullptr;
    CHECK(contains(create_fails(&cfg, &cb), "required callbacks missing: bank_read"));
  }
  SECTION("all of them") {
    ota_agent_callbacks_init(&cb);
    CHECK(contains(create_fails(&cfg, &cb), "missing: bank_size bank_write bank_read"));
  }
}

TEST_CASE("ota_agent_create refuses structs too small for the required fields", "[unit][sdk]") {
  MemDevice dev;
  ota_agent_config_t cfg = valid_config();
  ota_agent_callbacks_t cb = mem_callbacks(&dev);
  SECTION("uninitialised config (struct_size 0)") {
    cfg.struct_size = 0;
    CHECK(contains(create_fails(&cfg, &cb), "config->struct_size 0 is smaller"));
  }
  SECTION("config without state_dir") {
    cfg.struct_size = offsetof(ota_agent_config_t, state_dir);
    CHECK(contains(create_fails(&cfg, &cb), "config->struct_size"));
  }
  SECTION("callbacks without bank_read") {
    cb.struct_size = offsetof(ota_agent_callbacks_t, bank_read);
    CHECK(contains(create_fails(&cfg, &cb), "callbacks->struct_size"));
  }
}

TEST_CASE("ota_agent_create reads only the fields within struct_size", "[unit][sdk]") {
  MemDevice dev;
  // An older caller's structs: everything after the required fields is garbage it never set.
  ota_agent_config_t cfg = valid_config();
  cfg.struct_size = offsetof(ota_agent_config_t, state_dir) + sizeof(cfg.state_dir);
  std::memset(&cfg.factory_version, 0xab, sizeof(cfg) - offsetof(ota_agent_config_t, factory_version));
  ota_agent_callbacks_t cb = mem_callbacks(&dev);
  cb.struct_size = offsetof(ota_agent_callbacks_t, bank_read) + sizeof(cb.bank_read);
  std::memset(&cb.bank_open, 0xab, sizeof(cb) - offsetof(ota_agent_callbacks_t, bank_open));
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&cfg, &cb, &agent) == OTA_OK);
  CHECK(std::string(ota_agent_last_error(nullptr)).empty());
  CHECK(ota_agent_active_bank(agent) == OTA_BANK_A);
  ota_agent_destroy(agent);
}

TEST_CASE("ota_agent_create refuses an invalid ecu_id, broker_uri or state_dir", "[unit][sdk]") {
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  ota_agent_config_t cfg = valid_config();
  const std::string too_long(65, 'e');
  for (const char* bad :
       {static_cast<const char*>(nullptr), "", "ecu/a", "ecu a", "ecu+", "ecu#", too_long.c_str()}) {
    cfg.ecu_id = bad;
    INFO("ecu_id " << (bad ? bad : "NULL"));
    CHECK(contains(create_fails(&cfg, &cb), "ecu_id '"));
  }
  cfg.ecu_id = "ecu-a";
  cfg.broker_uri = "";
  CHECK(contains(create_fails(&cfg, &cb), "broker_uri is required"));
  cfg.broker_uri = "tcp://127.0.0.1:1";
  cfg.state_dir = nullptr;
  CHECK(contains(create_fails(&cfg, &cb), "state_dir is required"));
}

TEST_CASE("a created agent can be destroyed without starting, and NULL is a no-op", "[unit][sdk]") {
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  const ota_agent_config_t cfg = valid_config();
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&cfg, &cb, &agent) == OTA_OK);
  REQUIRE(agent != nullptr);
  CHECK(std::string(ota_agent_last_error(agent)).empty());
  char version[8];
  CHECK(ota_agent_active_version(agent, version, sizeof(version)) == 0);  // no state loaded yet
  CHECK(std::string(version).empty());
  ota_agent_stop(agent);  // idempotent, also before start
  ota_agent_destroy(agent);
  ota_agent_destroy(nullptr);
  ota_agent_stop(nullptr);
  ota_callback_set_error("outside any callback: ignored");
}

using namespace std::chrono_literals;

namespace {

// Field 2 (online) of an ota.v1.Hello, read from the wire bytes. The generated ota.pb.h is not
// used on purpose: libota-agent.so carries its own hidden copy of the generated code, and a
// second copy in this executable would register ota/v1/ota.proto twice with libprotobuf (fatal).
bool hello_online(const std::string& payload) {
  size_t i = 0;
  auto varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; i < payload.size() && shift < 64; shift += 7) {
      const auto byte = static_cast<uint8_t>(payload[i++]);
      *v |= uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  };
  bool online = false;  // proto3: absent means false
  uint64_t tag = 0, v = 0;
  while (i < payload.size() && varint(&tag)) {
    const uint64_t wire_type = tag & 7;
    if (wire_type == 0) {  // varint
      if (!varint(&v)) return false;
      if (tag >> 3 == 2) online = v != 0;
    } else if (wire_type == 1) {  // fixed64
      i += 8;
    } else if (wire_type == 2) {  // length-delimited
      if (!varint(&v)) return false;
      i += v;
    } else if (wire_type == 5) {  // fixed32
      i += 4;
    } else {
      return false;
    }
  }
  return online;
}

}  // namespace

TEST_CASE_METHOD(ota::test::BrokerFixture, "a C agent starts, publishes its retained hello and stops",
                 "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-");
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  setup.cfg.factory_version = "1.2.3";

  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&setup.cfg, &cb, &agent) == OTA_OK);
  const ota_status_t started = ota_agent_start(agent);
  INFO(ota_agent_last_error(agent));
  REQUIRE(started == OTA_OK);
  CHECK(dev.reads > 0);  // the factory image in bank A was hashed through bank_read
  CHECK(ota_agent_active_bank(agent) == OTA_BANK_A);
  char version[16];
  CHECK(ota_agent_active_version(agent, version, sizeof(version)) == 5);
  CHECK(std::string(version) == "1.2.3");

  // A second start is refused rather than starting a second worker.
  CHECK(ota_agent_start(agent) == OTA_ERR_INVALID_ARGUMENT);
  CHECK(contains(ota_agent_last_error(agent), "already"));

  // The observer subscribes after the agent published: the hello it sees is the retained one.
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/ecu/ecu-a/up/hello").is_ok());
  auto hello = observer->wait_for_topic("ota/v1/ecu/ecu-a/up/hello", 5s);
  REQUIRE(hello);
  CHECK(hello->retained);
  CHECK(contains(hello->payload, "ecu-a"));

  CHECK(hello_online(hello->payload));

  // Stopping publishes the offline hello over it.
  const size_t before = observer->messages().size();
  ota_agent_stop(agent);
  auto offline = observer->wait_for(
      [&](const ota::test::ReceivedMessage& m) {
        return m.topic == "ota/v1/ecu/ecu-a/up/hello" && !hello_online(m.payload);
      },
      5s);
  CHECK(offline);
  CHECK(observer->messages().size() > before);
  ota_agent_destroy(agent);
}

TEST_CASE_METHOD(ota::test::BrokerFixture, "a C agent that cannot connect says why", "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-");
  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  setup.cfg.password = "wrong-password";
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&setup.cfg, &cb, &agent) == OTA_OK);
  const ota_status_t st = ota_agent_start(agent);
  INFO(ota_agent_last_error(agent));
  CHECK(st == OTA_ERR_REJECTED);
  CHECK(std::string(ota_agent_last_error(agent)).rfind("REJECTED: ", 0) == 0);
  ota_agent_destroy(agent);
}
