// A whole update driven by the vehicle client's own transfer code into a C agent (ota/agent.h),
// checking every callback. It needs the generated protobuf types, so it links the same objects as
// the static ota_agent_static (one copy of ota_core): with libota-agent.so's hidden copy of the
// generated code next to its own, libprotobuf would abort at start-up.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agent_directory.hpp"
#include "c_agent_setup.hpp"
#include "ota/agent.h"
#include "ota/agent.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "transfer.hpp"

using ota::test::CAgentSetup;

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

  // Changes seen by the client (a section waits on them); they outlive the client's transport thread.
  std::mutex seen_mu;
  std::condition_variable seen;
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

  SECTION("restarted on an answered trial: the C device's booted_bank decides, read within struct_size") {
    ota::v1::Command activate;
    activate.mutable_activate()->set_transfer_id(plan.transfer_id);
    REQUIRE(client.call(activate).outcome() == ota::v1::OUTCOME_OK);
    ota_agent_stop(agent);
    owner.reset();
    // NULL: the trial bank; an ABI 2 caller's struct ends before the field, so it is not read;
    // a callback saying the bootloader fell back to A: rolled back, the image kept.
    const char* how = GENERATE("null", "abi 2 size", "fell back");
    CAPTURE(how);
    ota_agent_callbacks_t again = recording_callbacks(&dev);
    again.booted_bank = [](void*, ota_bank_t, ota_bank_t* booted) {
      *booted = OTA_BANK_A;
      return OTA_OK;
    };
    if (std::string(how) == "null") again.booted_bank = nullptr;
    if (std::string(how) == "abi 2 size") again.struct_size = offsetof(ota_agent_callbacks_t, booted_bank);
    const bool falls_back = std::string(how) == "fell back";
    const uint64_t returns_before = client.fleet->agent("ecu-a")->returns;
    client.fleet->on_change([&](const std::string&) {
      std::lock_guard<std::mutex> lock(seen_mu);
      seen.notify_all();
    });
    REQUIRE(ota_agent_create(&cfg, &again, &agent) == OTA_OK);
    owner.reset(agent);
    INFO(ota_agent_last_error(agent));
    REQUIRE(ota_agent_start(agent) == OTA_OK);
    {  // its new hello, before the client speaks to it again
      std::unique_lock<std::mutex> lock(seen_mu);
      REQUIRE(
          seen.wait_for(lock, 10s, [&] { return client.fleet->agent("ecu-a")->returns > returns_before; }));
    }
    CHECK(ota_agent_active_bank(agent) == (falls_back ? OTA_BANK_A : OTA_BANK_B));
    {
      std::lock_guard<std::mutex> lock(dev.mu);
      CHECK(dev.checked == (falls_back ? 1 : 2));  // checked again when the trial is kept
      CHECK(dev.rolled_back == (falls_back ? 1 : 0));
    }
    ota::v1::Command commit;
    commit.mutable_commit()->set_transfer_id(plan.transfer_id);
    r = client.call(commit);
    CHECK(r.outcome() == (falls_back ? ota::v1::OUTCOME_REFUSED : ota::v1::OUTCOME_OK));
    if (falls_back) {  // the client rolls it forward: the staged image is activated again
      REQUIRE(client.call(activate).outcome() == ota::v1::OUTCOME_OK);
      CHECK(client.call(commit).outcome() == ota::v1::OUTCOME_OK);
    }
    CHECK(ota_agent_active_bank(agent) == OTA_BANK_B);
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
