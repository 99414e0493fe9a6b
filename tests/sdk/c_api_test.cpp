// Tests of the agent SDK's C ABI (ota/agent.h). This file builds two executables:
//  - sdk_c_api_tests: through libota-agent.so, as a supplier links it: status names, versions,
//    config defaults, every way ota_agent_create refuses its input, and (with the test harness) a
//    C agent starting against a private Mosquitto;
//  - sdk_c_api_update_tests (OTA_SDK_TEST_UPDATE): a whole update driven by the vehicle client's
//    own transfer code into a C agent, checking every callback. It needs the generated protobuf
//    types, so it links the same objects as the static ota_agent_static (one copy of ota_core).
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "ota/agent.h"
#include "ota/agent.hpp"

#if defined(OTA_SDK_TEST_HAS_HARNESS) || defined(OTA_SDK_TEST_UPDATE)
#include "ota/sim/tempdir.hpp"
#include "ota/test/broker_fixture.hpp"

namespace {

// Agent ecu-a of the fixture's broker: its state directory and a C config that points into this
// object (so it stays in place: not copyable).
struct CAgentSetup {
  ota::sim::TempDir dir;
  std::string state_dir, password, uri;
  ota_agent_config_t cfg;

  CAgentSetup(ota::test::BrokerFixture& f, const char* prefix)
      : dir(make_dir(prefix)),
        state_dir(dir.file("state")),
        password(f.broker().password("ecu-a")),
        uri(f.broker().uri()) {
    ota_agent_config_init(&cfg);
    cfg.ecu_id = "ecu-a";
    cfg.broker_uri = uri.c_str();
    cfg.password = password.c_str();
    cfg.state_dir = state_dir.c_str();
  }
  CAgentSetup(const CAgentSetup&) = delete;
  CAgentSetup& operator=(const CAgentSetup&) = delete;

  static ota::sim::TempDir make_dir(const char* prefix) {
    auto d = ota::sim::TempDir::create(prefix);
    REQUIRE(d.is_ok());
    return std::move(*d);
  }
};

}  // namespace
#endif

#ifndef OTA_SDK_TEST_UPDATE
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

#ifdef OTA_SDK_TEST_HAS_HARNESS
#include <chrono>

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
#endif  // OTA_SDK_TEST_HAS_HARNESS
#endif  // !OTA_SDK_TEST_UPDATE

#ifdef OTA_SDK_TEST_UPDATE
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "agent_directory.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "transfer.hpp"

using namespace std::chrono_literals;

namespace {

// A C device that records what the SDK asks of it, and checks the documented contracts on the
// way (writes never touch the active bank and are sequential from the bank_open offset).
struct RecordingDevice {
  std::mutex mu;  // health_check runs on another thread
  std::vector<uint8_t> bank[3] = {{}, std::vector<uint8_t>(1 << 20, 0x11), std::vector<uint8_t>(1 << 20, 0)};
  int active = OTA_BANK_A;
  uint64_t next_write = 0;
  int bad_writes = 0, opens = 0, syncs = 0, closes = 0;
  std::thread::id write_thread;                        // of the last bank_write
  int syncs_on_write_thread = 0, syncs_elsewhere = 0;  // bank_sync on that thread or another
  int finished = 0, activated = 0, checked = 0, committed = 0, rolled_back = 0;
  std::string finished_sha256;
  bool healthy = true;
  std::vector<ota_dtc_t> dtcs;
  std::vector<uint32_t> cleared;
};

RecordingDevice* rec(void* user) { return static_cast<RecordingDevice*>(user); }

ota_agent_callbacks_t recording_callbacks(RecordingDevice* dev) {
  ota_agent_callbacks_t cb;
  ota_agent_callbacks_init(&cb);
  cb.user = dev;
  cb.bank_size = [](void* user) -> uint64_t { return rec(user)->bank[1].size(); };
  cb.bank_open = [](void* user, ota_bank_t bank, uint64_t offset) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    if (bank == rec(user)->active) ++rec(user)->bad_writes;
    rec(user)->next_write = offset;
    ++rec(user)->opens;
    return OTA_OK;
  };
  cb.bank_write = [](void* user, ota_bank_t bank, uint64_t off, const uint8_t* data, size_t len) {
    RecordingDevice* d = rec(user);
    std::lock_guard<std::mutex> lock(d->mu);
    if (bank == d->active || off != d->next_write || off + len > d->bank[bank].size()) {
      ++d->bad_writes;
      return OTA_ERR_INVALID_ARGUMENT;
    }
    std::memcpy(d->bank[bank].data() + off, data, len);
    d->next_write = off + len;
    d->write_thread = std::this_thread::get_id();
    return OTA_OK;
  };
  cb.bank_sync = [](void* user, ota_bank_t) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    ++rec(user)->syncs;
    ++(std::this_thread::get_id() == rec(user)->write_thread ? rec(user)->syncs_on_write_thread
                                                             : rec(user)->syncs_elsewhere);
    return OTA_OK;
  };
  cb.bank_close = [](void* user, ota_bank_t) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    ++rec(user)->closes;
  };
  cb.bank_read = [](void* user, ota_bank_t bank, uint64_t off, uint8_t* buf, size_t len) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    std::memcpy(buf, rec(user)->bank[bank].data() + off, len);
    return OTA_OK;
  };
  cb.finish_install = [](void* user, ota_bank_t, const ota_image_info_t* image) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    ++rec(user)->finished;
    rec(user)->finished_sha256 = image->sha256_hex;
    return OTA_OK;
  };
  cb.activate = [](void* user, ota_bank_t bank, const ota_image_info_t*) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    ++rec(user)->activated;
    rec(user)->active = bank;
    return OTA_OK;
  };
  cb.health_check = [](void* user, ota_bank_t, uint32_t) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    ++rec(user)->checked;
    if (rec(user)->healthy) return OTA_OK;
    ota_callback_set_error("brake sensor self-test failed");
    return OTA_ERR_UNAVAILABLE;
  };
  cb.commit = [](void* user, ota_bank_t) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    ++rec(user)->committed;
    return OTA_OK;
  };
  cb.read_dtcs = [](void* user, ota_dtc_t* out, size_t capacity, size_t* count) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    const auto& dtcs = rec(user)->dtcs;
    std::memcpy(out, dtcs.data(), std::min(capacity, dtcs.size()) * sizeof(ota_dtc_t));
    *count = dtcs.size();  // more than capacity: the SDK asks again with room for all
    return OTA_OK;
  };
  cb.clear_dtcs = [](void* user, const uint32_t* codes, size_t count) {
    RecordingDevice* d = rec(user);
    std::lock_guard<std::mutex> lock(d->mu);
    d->cleared.assign(codes, codes + count);
    for (size_t i = 0; i < count; ++i) {
      d->dtcs.erase(std::remove_if(d->dtcs.begin(), d->dtcs.end(),
                                   [&](const ota_dtc_t& x) { return x.code == codes[i]; }),
                    d->dtcs.end());
    }
    return OTA_OK;
  };
  cb.rollback = [](void* user, ota_bank_t previous) {
    std::lock_guard<std::mutex> lock(rec(user)->mu);
    ++rec(user)->rolled_back;
    rec(user)->active = previous;
    return OTA_OK;
  };
  return cb;
}

// The vehicle client's side: a transport as ota-client and the AgentDirectory that routes its messages.
struct TestClient {
  explicit TestClient(ota::test::BrokerFixture& f) {
    ota::TransportOptions o;
    o.uri = f.broker().uri();
    o.client_id = "sdk-test-client";
    o.username = "ota-client";
    o.password = f.broker().password("ota-client");
    transport = ota::make_transport(o);
    fleet = std::make_unique<ota::client::AgentDirectory>(*transport);
    transport->on_message([this](const ota::TransportMessage& m) { fleet->on_message(m); });
  }
  // The transport's thread calls into the fleet: stop it before the fleet goes away.
  ~TestClient() {
    transport->disconnect(2s);
    transport.reset();
  }
  ota::v1::Result call(ota::v1::Command cmd) {
    auto r = fleet->call("ecu-a", std::move(cmd), 20s);
    INFO(r.status().to_string());
    REQUIRE(r.is_ok());
    return *r;
  }
  std::unique_ptr<ota::Transport> transport;
  std::unique_ptr<ota::client::AgentDirectory> fleet;
};

}  // namespace

TEST_CASE_METHOD(ota::test::BrokerFixture, "an update runs through every callback of a C agent",
                 "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-update-");
  auto& dir = setup.dir;
  auto& cfg = setup.cfg;
  RecordingDevice dev;
  const ota_agent_callbacks_t cb = recording_callbacks(&dev);
  cfg.durable_interval_bytes = 64 * 1024;  // several syncs during the transfer
  // Without the flag every sync runs between two writes on their thread; with it, on the agent's
  // checkpoint thread.
  const int concurrent = GENERATE(0, 1);
  CAPTURE(concurrent);
  cfg.bank_sync_concurrent = concurrent;
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&cfg, &cb, &agent) == OTA_OK);
  std::unique_ptr<ota_agent_t, void (*)(ota_agent_t*)> owner(agent, ota_agent_destroy);
  INFO(ota_agent_last_error(agent));
  REQUIRE(ota_agent_start(agent) == OTA_OK);

  TestClient client(*this);
  REQUIRE(client.transport->connect(5s).is_ok());
  for (auto leaf : ota::topics::kAgentUpLeaves)
    REQUIRE(client.transport->subscribe(ota::topics::all_agents_filter(leaf), 1).is_ok());
  REQUIRE(client.fleet->wait_online({"ecu-a"}, 10s).is_ok());

  // A raw 300 KiB image, sent in 64 KiB chunks by the client's own transfer code.
  std::string image(300 * 1024 + 17, '\0');
  std::mt19937 rng(7);
  for (auto& c : image) c = static_cast<char>(rng());
  const std::string image_path = dir.file("image.bin");
  std::ofstream(image_path, std::ios::binary) << image;
  const ota::Digest digest = ota::Sha256::of(image);
  const std::string sha(reinterpret_cast<const char*>(digest.data()), digest.size());

  ota::client::TransferPlan plan;
  plan.ecu_id = "ecu-a";
  plan.campaign_id = "c1";
  plan.transfer_id = "c1/ecu-a/2.0.0";
  plan.target.set_version("2.0.0");
  plan.target.set_size(image.size());
  plan.target.set_sha256(sha);
  plan.target.set_kind(ota::v1::PAYLOAD_KIND_FIRMWARE_IMAGE);
  plan.target.set_encoding(ota::v1::PAYLOAD_ENCODING_RAW);
  plan.target.set_payload_size(image.size());
  plan.target.set_payload_sha256(sha);
  plan.payload_path = image_path;
  plan.chunk_size = 64 * 1024;
  plan.window = 4;
  std::atomic<bool> cancel{false};
  ota::client::TransferStats stats;
  const ota::Status sent = ota::client::run_transfer(*client.fleet, *client.transport, plan, cancel, &stats);
  INFO(sent.to_string());
  REQUIRE(sent.is_ok());

  ota::v1::Command install;
  install.mutable_install()->set_transfer_id(plan.transfer_id);
  ota::v1::Result r = client.call(install);
  INFO(r.error().message());
  REQUIRE(r.outcome() == ota::v1::OUTCOME_OK);
  {
    std::lock_guard<std::mutex> lock(dev.mu);
    CHECK(dev.bad_writes == 0);
    CHECK(dev.opens >= 1);
    if (concurrent) {
      // Checkpoints asked for while one runs are merged: at least the last one (the whole image).
      CHECK(dev.syncs >= 1);
      CHECK(dev.syncs_elsewhere == dev.syncs);
    } else {
      CHECK(dev.syncs >= 4);
      CHECK(dev.syncs_on_write_thread == dev.syncs);
    }
    CHECK(dev.finished == 1);
    CHECK(dev.finished_sha256 == ota::to_hex(digest));
    CHECK(std::memcmp(dev.bank[OTA_BANK_B].data(), image.data(), image.size()) == 0);
  }

  SECTION("healthy: activate and commit") {
    ota::v1::Command activate;
    activate.mutable_activate()->set_transfer_id(plan.transfer_id);
    r = client.call(activate);
    INFO(r.error().message());
    REQUIRE(r.outcome() == ota::v1::OUTCOME_OK);
    CHECK(ota_agent_active_bank(agent) == OTA_BANK_B);
    ota::v1::Command commit;
    commit.mutable_commit()->set_transfer_id(plan.transfer_id);
    r = client.call(commit);
    REQUIRE(r.outcome() == ota::v1::OUTCOME_OK);
    char version[16];
    ota_agent_active_version(agent, version, sizeof(version));
    CHECK(std::string(version) == "2.0.0");
    std::lock_guard<std::mutex> lock(dev.mu);
    CHECK(dev.activated == 1);
    CHECK(dev.checked == 1);
    CHECK(dev.committed == 1);
    CHECK(dev.rolled_back == 0);
    CHECK(dev.active == OTA_BANK_B);
  }

  SECTION("unhealthy: the C callback's message comes back with the rollback") {
    {
      std::lock_guard<std::mutex> lock(dev.mu);
      dev.healthy = false;
    }
    ota::v1::Command activate;
    activate.mutable_activate()->set_transfer_id(plan.transfer_id);
    r = client.call(activate);
    INFO(r.error().message());
    CHECK(r.outcome() == ota::v1::OUTCOME_ROLLED_BACK);
    CHECK(r.error().message().find("health_check: brake sensor self-test failed") != std::string::npos);
    CHECK(static_cast<int>(r.error().code()) == OTA_ERR_UNAVAILABLE);
    CHECK(ota_agent_active_bank(agent) == OTA_BANK_A);
    std::lock_guard<std::mutex> lock(dev.mu);
    CHECK(dev.checked == 1);
    CHECK(dev.rolled_back == 1);
    CHECK(dev.committed == 0);
    CHECK(dev.active == OTA_BANK_A);
  }
  ota_agent_stop(agent);
  std::lock_guard<std::mutex> lock(dev.mu);
  CHECK(dev.closes == dev.opens);
}

TEST_CASE_METHOD(ota::test::BrokerFixture, "a C agent reads and clears DTCs through its callbacks",
                 "[integration][sdk]") {
  CAgentSetup setup(*this, "ota-sdk-c-dtc-");

  // More DTCs than the SDK's first guess of room, and a description that fills its array with
  // no NUL: both must come through intact.
  RecordingDevice dev;
  for (uint32_t i = 0; i < 100; ++i) {
    ota_dtc_t d;
    std::memset(&d, 0, sizeof(d));
    d.code = 0xC10000 + i;
    d.status_mask = 0x09;
    d.active = i % 2;
    d.confirmed = 1;
    d.occurrences = i;
    d.first_seen_ms = 1000 + i;
    d.last_seen_ms = 2000 + i;
    std::snprintf(d.description, sizeof(d.description), "DTC %u", i);
    if (i == 99) std::memset(d.description, 'x', sizeof(d.description));
    dev.dtcs.push_back(d);
  }
  const ota_agent_callbacks_t cb = recording_callbacks(&dev);
  ota_agent_t* agent = nullptr;
  REQUIRE(ota_agent_create(&setup.cfg, &cb, &agent) == OTA_OK);
  std::unique_ptr<ota_agent_t, void (*)(ota_agent_t*)> owner(agent, ota_agent_destroy);
  INFO(ota_agent_last_error(agent));
  REQUIRE(ota_agent_start(agent) == OTA_OK);

  TestClient client(*this);
  REQUIRE(client.transport->connect(5s).is_ok());
  for (auto leaf : ota::topics::kAgentUpLeaves)
    REQUIRE(client.transport->subscribe(ota::topics::all_agents_filter(leaf), 1).is_ok());
  REQUIRE(client.fleet->wait_online({"ecu-a"}, 10s).is_ok());

  ota::v1::Command read;
  read.mutable_read_dtcs();
  ota::v1::Result r = client.call(read);
  REQUIRE(r.outcome() == ota::v1::OUTCOME_OK);
  REQUIRE(r.dtcs().dtcs_size() == 100);
  CHECK(r.dtcs().dtcs(7).code() == 0xC10007u);
  CHECK(r.dtcs().dtcs(7).status() == ota::v1::DTC_STATUS_ACTIVE);
  CHECK(r.dtcs().dtcs(8).status() == ota::v1::DTC_STATUS_CONFIRMED);
  CHECK(r.dtcs().dtcs(7).status_mask() == 0x09u);
  CHECK(r.dtcs().dtcs(7).occurrences() == 7u);
  CHECK(r.dtcs().dtcs(7).first_seen_ms() == 1007u);
  CHECK(r.dtcs().dtcs(7).last_seen_ms() == 2007u);
  CHECK(r.dtcs().dtcs(7).description() == "DTC 7");
  CHECK(r.dtcs().dtcs(99).description() == std::string(sizeof(ota_dtc_t::description), 'x'));

  ota::v1::Command clear;
  clear.mutable_clear_dtcs()->add_codes(0xC10003);
  clear.mutable_clear_dtcs()->add_codes(0xC10004);
  r = client.call(clear);
  REQUIRE(r.outcome() == ota::v1::OUTCOME_OK);
  CHECK(r.dtcs().dtcs_size() == 98);
  std::lock_guard<std::mutex> lock(dev.mu);
  CHECK(dev.cleared == std::vector<uint32_t>{0xC10003, 0xC10004});
}
#endif  // OTA_SDK_TEST_UPDATE
