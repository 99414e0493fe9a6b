// A signed campaign into a C agent (ota/agent.h) provisioned with a trust root and an ECU key, both
// given through ota_agent_config_t: the agent checks the director and image metadata before it
// takes a byte, and signs every Result with its own key. Like c_api_update_test.cpp it links the
// SDK's objects statically (it decodes protobuf itself).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "agent_directory.hpp"
#include "c_agent_setup.hpp"
#include "ota/agent.h"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "ota/core/trust.hpp"
#include "transfer.hpp"

using namespace std::chrono_literals;
namespace trust = ota::trust;

namespace {

struct MemDevice {
  std::mutex mu;
  std::vector<uint8_t> bank[3] = {{}, std::vector<uint8_t>(1 << 18, 0x11), std::vector<uint8_t>(1 << 18, 0)};
  int active = OTA_BANK_A;
};

MemDevice* mem(void* user) { return static_cast<MemDevice*>(user); }

ota_agent_callbacks_t mem_callbacks(MemDevice* dev) {
  ota_agent_callbacks_t cb;
  ota_agent_callbacks_init(&cb);
  cb.user = dev;
  cb.bank_size = [](void* user) -> uint64_t { return mem(user)->bank[1].size(); };
  cb.bank_write = [](void* user, ota_bank_t bank, uint64_t off, const uint8_t* data, size_t len) {
    std::lock_guard<std::mutex> lock(mem(user)->mu);
    auto& b = mem(user)->bank[bank];
    if (off + len > b.size()) return OTA_ERR_NO_SPACE;
    std::memcpy(b.data() + off, data, len);
    return OTA_OK;
  };
  cb.bank_read = [](void* user, ota_bank_t bank, uint64_t off, uint8_t* buf, size_t len) {
    std::lock_guard<std::mutex> lock(mem(user)->mu);
    std::memcpy(buf, mem(user)->bank[bank].data() + off, len);
    return OTA_OK;
  };
  cb.activate = [](void* user, ota_bank_t bank, const ota_image_info_t*) {
    std::lock_guard<std::mutex> lock(mem(user)->mu);
    mem(user)->active = bank;
    return OTA_OK;
  };
  return cb;
}

// A root with one key per role, and the image and director metadata of one image for ecu-a.
struct SignedRelease {
  std::string root, director, image;

  SignedRelease(const std::string& version, const std::string& bytes) {
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    auto root_key = trust::PrivateKey::generate().value();
    auto image_key = trust::PrivateKey::generate().value();
    auto director_key = trust::PrivateKey::generate().value();
    trust::RootSpec spec;
    spec.expires = now + 86400;
    spec.root.public_pems = {root_key.public_pem()};
    spec.image.public_pems = {image_key.public_pem()};
    spec.director.public_pems = {director_key.public_pem()};
    root = trust::sign(trust::make_root_body(spec).value(), {root_key}).value();

    trust::ImageInfo img;
    img.name = "fw";
    img.version = version;
    img.size = bytes.size();
    const ota::Digest digest = ota::Sha256::of(bytes);
    std::copy(digest.begin(), digest.end(), img.sha256.begin());
    img.hardware_ids = {"hw-1"};
    image = trust::sign(trust::make_image_body(1, now + 3600, {img}), {image_key}).value();

    trust::VerifiedCampaign campaign;
    campaign.vin = "VIN0000000000001";
    campaign.campaign_id = "c1";
    campaign.version = 1;
    campaign.expires = now + 3600;
    trust::CampaignTarget target;
    target.ecu_id = "ecu-a";
    target.hardware_id = "hw-1";
    target.image_name = img.name;
    target.version = img.version;
    target.size = img.size;
    target.sha256 = img.sha256;
    campaign.targets = {target};
    campaign.groups = {trust::CampaignGroup{}};
    director = trust::sign(trust::make_director_body(campaign), {director_key}).value();
  }
};

// The vehicle client's side: a transport as ota-client and the AgentDirectory that routes its messages.
struct TestClient {
  explicit TestClient(ota::test::BrokerFixture& f) {
    ota::TransportOptions o;
    o.uri = f.broker().uri();
    o.client_id = "sdk-signed-test-client";
    o.username = "ota-client";
    o.password = f.broker().password("ota-client");
    transport = ota::make_transport(o);
    fleet = std::make_unique<ota::client::AgentDirectory>(*transport);
    transport->on_message([this](const ota::TransportMessage& m) { fleet->on_message(m); });
  }
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

TEST_CASE_METHOD(
    ota::test::BrokerFixture,
    "a C agent with a trust root and an ECU key installs a signed campaign and signs its results",
    "[integration][sdk][security]") {
  ota::test::CAgentSetup setup(*this, "ota-sdk-c-signed-");
  std::string bytes(100 * 1024 + 3, '\0');
  std::mt19937 rng(11);
  for (auto& c : bytes) c = static_cast<char>(rng());
  const SignedRelease release("2.0.0", bytes);
  const std::string root_path = setup.dir.file("root.signed");
  const std::string key_path = setup.dir.file("ecu-a.key");
  const std::string image_path = setup.dir.file("image.bin");
  REQUIRE(ota::atomic_write_file(root_path, release.root).is_ok());
  REQUIRE(ota::atomic_write_file(image_path, bytes).is_ok());
  auto ecu_key = trust::PrivateKey::generate().value();
  REQUIRE(ecu_key.save(key_path).is_ok());

  MemDevice dev;
  const ota_agent_callbacks_t cb = mem_callbacks(&dev);
  setup.cfg.hardware_id = "hw-1";
  setup.cfg.trust_root_file = root_path.c_str();
  setup.cfg.ecu_key_file = key_path.c_str();
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

  const ota::Digest digest = ota::Sha256::of(bytes);
  const std::string sha(reinterpret_cast<const char*>(digest.data()), digest.size());
  ota::client::TransferPlan plan;
  plan.ecu_id = "ecu-a";
  plan.campaign_id = "c1";
  plan.transfer_id = "c1/ecu-a/2.0.0";
  plan.target.set_version("2.0.0");
  plan.target.set_size(bytes.size());
  plan.target.set_sha256(sha);
  plan.target.set_kind(ota::v1::PAYLOAD_KIND_FIRMWARE_IMAGE);
  plan.target.set_encoding(ota::v1::PAYLOAD_ENCODING_RAW);
  plan.target.set_payload_size(bytes.size());
  plan.target.set_payload_sha256(sha);
  plan.target.set_hardware_id("hw-1");
  plan.target.set_signed_target(release.director);
  plan.payload_path = image_path;
  plan.chunk_size = 32 * 1024;

  SECTION("signed: installed, activated, committed, every result signed by the ECU's key") {
    plan.target.set_signed_image(release.image);
    std::atomic<bool> cancel{false};
    ota::client::TransferStats stats;
    const ota::Status sent =
        ota::client::run_transfer(*client.fleet, *client.transport, plan, cancel, &stats);
    INFO(sent.to_string());
    REQUIRE(sent.is_ok());
    for (const char* step : {"install", "activate", "commit"}) {
      ota::v1::Command cmd;
      if (std::string(step) == "install") cmd.mutable_install()->set_transfer_id(plan.transfer_id);
      if (std::string(step) == "activate") cmd.mutable_activate()->set_transfer_id(plan.transfer_id);
      if (std::string(step) == "commit") cmd.mutable_commit()->set_transfer_id(plan.transfer_id);
      const ota::v1::Result r = client.call(cmd);
      INFO(step << ": " << r.error().message());
      REQUIRE(r.outcome() == ota::v1::OUTCOME_OK);
      CHECK_FALSE(r.ecu_signature().empty());
      CHECK(trust::verify_result_signature(r.SerializeAsString(), ecu_key.public_key()).is_ok());
      // Another key does not verify it: the signature is the ECU's, not merely present.
      const auto other = trust::PrivateKey::generate().value();
      CHECK(trust::verify_result_signature(r.SerializeAsString(), other.public_key()).code() ==
            ota::Code::kSignatureInvalid);
    }
    CHECK(ota_agent_active_bank(agent) == OTA_BANK_B);
    std::lock_guard<std::mutex> lock(dev.mu);
    CHECK(std::memcmp(dev.bank[OTA_BANK_B].data(), bytes.data(), bytes.size()) == 0);
  }

  SECTION("the trust root is enforced: no image metadata, refused (full verification), and signed") {
    ota::v1::Command cmd;
    auto* st = cmd.mutable_start_transfer();
    st->set_transfer_id(plan.transfer_id);
    *st->mutable_target() = plan.target;
    st->set_chunk_size(plan.chunk_size);
    const ota::v1::Result r = client.call(cmd);
    CHECK(r.outcome() == ota::v1::OUTCOME_REFUSED);
    CHECK(r.error().code() == ota::v1::ERROR_CODE_SIGNATURE_INVALID);
    CHECK(trust::verify_result_signature(r.SerializeAsString(), ecu_key.public_key()).is_ok());
  }
}
