// What an agent with a trust root accepts from whoever commands it on the vehicle bus: only a
// target the director signed for it and the image role listed (full verification), a payload bound
// to that signed metadata before a byte of it is applied, a reconstruction bounded by the signed
// size, and each director metadata version once. Real ota-agent-sim processes and a real broker,
// driven through the client's own transfer code with metadata signed as the platform signs it.
#include <catch2/catch.hpp>

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <ctime>

#include "agent_directory.hpp"
#include "images.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/trust.hpp"
#include "ota/platform/campaign_signing.hpp"
#include "ota/sim/wait.hpp"
#include "ota/test/broker_fixture.hpp"
#include "support.hpp"
#include "transfer.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;

namespace {

std::string raw(const ota::Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

std::string read_or_empty(const std::string& path) {
  auto r = ota::read_small_file(path, 16 << 20);
  return r ? *r : std::string();
}

// A broker, the client's AgentDirectory, agents with the platform's root, and the images: the
// factory image `base` in bank A, the release `next` (signed, as a raw image and as a delta from
// base), and images the platform never signed.
struct SignedVehicle : ota::test::BrokerFixture {
  ota::sim::TempDir dir = ota::test::temp_dir("ota-sec-target-");
  ota::test::ClientBus bus{broker()};
  std::unique_ptr<ota::Transport>& transport = bus.transport;
  std::unique_ptr<ota::client::AgentDirectory>& fleet = bus.fleet;
  std::map<std::string, ota::sim::ChildProcess> agents;
  ota::sim::ImageFile base, next, delta;
  ota::sim::TrustMaterial trust;
  v1::SignedCampaign signed_campaign;

  SignedVehicle() : BrokerFixture(std::vector<std::string>{"ecu-a", "ecu-b"}) {
    base = image(ota::sim::write_base_image(dir.file("base.img"), 256 * 1024, 7));
    next = image(ota::sim::write_next_image(base, dir.file("next.img"), 3));
    delta = image(ota::sim::write_delta(base, next, dir.file("next.delta")));
    sign();
  }

  static ota::sim::ImageFile image(ota::Result<ota::sim::ImageFile> r) {
    INFO(r.status().to_string());
    REQUIRE(r.is_ok());
    return *r;
  }

  // The platform signs ecu-a's and ecu-b's target: `next`, shipped raw and as `delta`.
  void sign() {
    v1::Campaign c;
    c.set_vin("VIN0000000000001");
    c.set_campaign_id("c1");
    for (const std::string ecu : {"ecu-a", "ecu-b"}) {
      auto* t = c.add_targets();
      t->set_ecu_id(ecu);
      t->set_hardware_id("hw-1");
      t->set_version("2.0.0");
      t->set_size(next.size);
      t->set_sha256(raw(next.sha256));
      t->mutable_full()->set_encoding(v1::PAYLOAD_ENCODING_RAW);
      t->mutable_full()->set_uri(next.path);
      t->mutable_full()->set_size(next.size);
      t->mutable_full()->set_sha256(raw(next.sha256));
      t->mutable_delta()->set_encoding(v1::PAYLOAD_ENCODING_DELTA);
      t->mutable_delta()->set_uri(delta.path);
      t->mutable_delta()->set_size(delta.size);
      t->mutable_delta()->set_sha256(raw(delta.sha256));
      t->mutable_delta()->set_base_version("1.0.0");
      t->mutable_delta()->set_base_sha256(raw(base.sha256));
    }
    auto m = ota::sim::sign_campaign(c, dir.file("keys"), 5, ota::sim::Attack::kNone);
    INFO(m.status().to_string());
    REQUIRE(m.is_ok());
    trust = *m;
    REQUIRE(google::protobuf::util::JsonStringToMessage(trust.signed_campaign_json, &signed_campaign).ok());
  }

  std::string ecu_dir(const std::string& ecu) { return dir.file(ecu); }

  void start_agent(const std::string& ecu, std::vector<std::string> extra = {}) {
    REQUIRE(ota::make_dirs(ecu_dir(ecu)).is_ok());
    const std::string bank_a = ecu_dir(ecu) + "/bank_a.img";
    if (::access(bank_a.c_str(), F_OK) != 0) REQUIRE(ota::sim::copy_image(base, bank_a).is_ok());
    auto before = fleet->agent(ecu);
    const uint64_t previous_boot = before ? before->hello.boot_id() : 0;
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
                                     "1.0.0",
                                     "--trust-root",
                                     trust.root_path};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child =
        ota::sim::ChildProcess::spawn(argv, ota::sim::SpawnOptions{ecu_dir(ecu) + "/agent.log", {}, ecu, ""});
    REQUIRE(child.is_ok());
    agents.emplace(ecu, std::move(*child));
    bool online = ota::sim::wait_until(
        [&] {
          auto v = fleet->agent(ecu);
          return v && v->hello.online() && v->hello.boot_id() != previous_boot;
        },
        10s);
    INFO(log(ecu));
    REQUIRE(online);
  }

  std::string log(const std::string& ecu) { return read_or_empty(ecu_dir(ecu) + "/agent.log"); }

  // The honest plan for `ecu`: the signed target, its metadata, the raw image.
  ota::client::TransferPlan plan(const std::string& ecu, const std::string& transfer_id) {
    ota::client::TransferPlan p;
    p.ecu_id = ecu;
    p.campaign_id = "c1";
    p.transfer_id = transfer_id;
    p.payload_path = next.path;
    p.chunk_size = 64 * 1024;
    p.window = 8;
    p.stall_timeout = 2s;
    v1::Target& t = p.target;
    t.set_version("2.0.0");
    t.set_hardware_id("hw-1");
    t.set_size(next.size);
    t.set_sha256(raw(next.sha256));
    t.set_encoding(v1::PAYLOAD_ENCODING_RAW);
    t.set_payload_size(next.size);
    t.set_payload_sha256(raw(next.sha256));
    t.set_signed_target(signed_campaign.signed_director());
    t.set_signed_image(signed_campaign.signed_image());
    return p;
  }

  // The same plan with `payload` sent as a delta from base.
  ota::client::TransferPlan delta_plan(const std::string& ecu, const std::string& transfer_id,
                                       const ota::sim::ImageFile& payload) {
    auto p = plan(ecu, transfer_id);
    p.payload_path = payload.path;
    p.target.set_encoding(v1::PAYLOAD_ENCODING_DELTA);
    p.target.set_payload_size(payload.size);
    p.target.set_payload_sha256(raw(payload.sha256));
    p.target.set_base_version("1.0.0");
    p.target.set_base_sha256(raw(base.sha256));
    return p;
  }

  v1::Result call(const std::string& ecu, v1::Command cmd) {
    auto r = fleet->call(ecu, std::move(cmd), 10s);
    INFO(r.status().to_string());
    REQUIRE(r.is_ok());
    return *r;
  }

  v1::Result start(const ota::client::TransferPlan& p) {
    v1::Command cmd;
    auto* st = cmd.mutable_start_transfer();
    *st->mutable_target() = p.target;
    st->set_transfer_id(p.transfer_id);
    st->set_chunk_size(p.chunk_size);
    st->set_window(p.window);
    return call(p.ecu_id, cmd);
  }

  ota::Status transfer(const ota::client::TransferPlan& p) {
    std::atomic<bool> cancel{false};
    ota::client::TransferStats stats;
    return ota::client::run_transfer(*fleet, *transport, p, cancel, &stats);
  }

  v1::Result command(const std::string& ecu, const std::string& transfer_id, const std::string& what) {
    v1::Command cmd;
    if (what == "install") cmd.mutable_install()->set_transfer_id(transfer_id);
    if (what == "activate") {
      cmd.mutable_activate()->set_transfer_id(transfer_id);
      cmd.mutable_activate()->set_health_timeout_ms(5000);
    }
    if (what == "commit") cmd.mutable_commit()->set_transfer_id(transfer_id);
    return call(ecu, cmd);
  }

  // The bank file's size, 0 when the agent never wrote it.
  uint64_t bank_b_size(const std::string& ecu) {
    struct stat sb {};
    return ::stat((ecu_dir(ecu) + "/bank_b.img").c_str(), &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0;
  }
};

void expect_refused(const v1::Result& r, const std::string& reason) {
  INFO(r.error().message());
  CHECK(r.outcome() == v1::OUTCOME_REFUSED);
  CHECK(r.error().message().find(reason) != std::string::npos);
}

}  // namespace

TEST_CASE_METHOD(SignedVehicle, "A target signed by the director alone is refused under full verification",
                 "[integration][security]") {
  start_agent("ecu-a");
  CHECK(log("ecu-a").find("full verification (director and image metadata)") != std::string::npos);

  // The director also signs an image the image role never listed (a director key is enough to
  // name any hash): with the image metadata stripped, only the director's signature is left.
  auto director_key = ota::trust::PrivateKey::load(dir.file("keys/director.key"));
  REQUIRE(director_key.is_ok());
  auto rogue = image(ota::sim::write_next_image(base, dir.file("rogue.img"), 99));
  ota::trust::VerifiedCampaign c;
  c.vin = "VIN0000000000001";
  c.campaign_id = "c2";
  c.version = 6;
  c.expires = static_cast<int64_t>(std::time(nullptr)) + 3600;
  ota::trust::CampaignTarget t;
  t.ecu_id = "ecu-a";
  t.hardware_id = "hw-1";
  t.image_name = "ecu-a-fw";
  t.version = "2.0.1";
  t.version_number = 20001;
  t.sha256 = rogue.sha256;
  t.size = rogue.size;
  c.targets.push_back(t);
  auto rogue_director = ota::trust::sign(ota::trust::make_director_body(c), {*director_key});
  REQUIRE(rogue_director.is_ok());
  auto p = plan("ecu-a", "c2/ecu-a/2.0.1");
  p.payload_path = rogue.path;
  p.target.set_version("2.0.1");
  p.target.set_size(rogue.size);
  p.target.set_sha256(raw(rogue.sha256));
  p.target.set_payload_size(rogue.size);
  p.target.set_payload_sha256(raw(rogue.sha256));
  p.target.set_signed_target(*rogue_director);
  p.target.clear_signed_image();
  expect_refused(start(p), "carries no signed image metadata");
  // With the image metadata: the image role never listed that image (mix-and-match).
  p.target.set_signed_image(signed_campaign.signed_image());
  expect_refused(start(p), "is not in the image metadata");
  // The honest target without its image metadata: refused all the same.
  auto honest = plan("ecu-a", "c1/ecu-a/2.0.0");
  honest.target.clear_signed_image();
  expect_refused(start(honest), "carries no signed image metadata");
  CHECK(bank_b_size("ecu-a") == 0);  // not a byte written

  // An agent configured for partial verification says so, and takes the director's word.
  start_agent("ecu-b", {"--partial-verification"});
  CHECK(log("ecu-b").find("PARTIAL verification") != std::string::npos);
  auto partial = plan("ecu-b", "c1/ecu-b/2.0.0");
  partial.target.clear_signed_image();
  CHECK(start(partial).outcome() == v1::OUTCOME_OK);
}

TEST_CASE_METHOD(SignedVehicle, "A delta whose hash is not in the signed metadata is refused before a byte",
                 "[integration][security]") {
  start_agent("ecu-a");
  // A delta from the same base to an image nobody signed, announced as the signed target's payload.
  auto rogue = image(ota::sim::write_next_image(base, dir.file("rogue.img"), 99));
  auto rogue_delta = image(ota::sim::write_delta(base, rogue, dir.file("rogue.delta")));
  expect_refused(start(delta_plan("ecu-a", "c1/ecu-a/2.0.0", rogue_delta)), "matches no signed delta");
  CHECK(::access((ecu_dir("ecu-a") + "/state/payload.part").c_str(), F_OK) != 0);
  CHECK(bank_b_size("ecu-a") == 0);

  // The signed delta goes through: the check above is the signed metadata's, not a refusal of deltas.
  auto honest = delta_plan("ecu-a", "c1/ecu-a/2.0.0", delta);
  ota::Status st = transfer(honest);
  INFO(st.to_string() << "\n" << log("ecu-a"));
  REQUIRE(st.is_ok());
  auto r = command("ecu-a", honest.transfer_id, "install");
  INFO(r.error().message());
  REQUIRE(r.outcome() == v1::OUTCOME_OK);
  auto bank = ota::sha256_file(ecu_dir("ecu-a") + "/bank_b.img");
  REQUIRE(bank.is_ok());
  CHECK(*bank == next.sha256);
}

TEST_CASE_METHOD(SignedVehicle, "Delta reconstruction never writes past the signed image size",
                 "[integration][security]") {
  // Partial verification: the delta itself is not signed, only the image it must give.
  start_agent("ecu-b", {"--partial-verification"});
  // A delta from base to an image four times the signed size.
  auto big = image(ota::sim::write_base_image(dir.file("big.img"), 4 * next.size, 11));
  auto big_delta = image(ota::sim::write_delta(base, big, dir.file("big.delta")));
  auto p = delta_plan("ecu-b", "c1/ecu-b/2.0.0", big_delta);
  p.target.clear_signed_image();
  ota::Status st = transfer(p);
  INFO(st.to_string() << "\n" << log("ecu-b"));
  REQUIRE(st.is_ok());
  auto r = command("ecu-b", p.transfer_id, "install");
  INFO(r.error().message());
  CHECK(r.outcome() == v1::OUTCOME_FAILED);
  CHECK(r.error().message().find("reconstructs more than the signed image size of " +
                                 std::to_string(next.size) + " bytes") != std::string::npos);
  CHECK(bank_b_size("ecu-b") <= next.size);
  CHECK(r.active_bank() == v1::BANK_A);
}

TEST_CASE_METHOD(SignedVehicle, "A finished target is not flashed again under a new transfer id",
                 "[integration][security]") {
  start_agent("ecu-a");
  auto p = plan("ecu-a", "c1/ecu-a/2.0.0");
  REQUIRE(transfer(p).is_ok());
  REQUIRE(command("ecu-a", p.transfer_id, "install").outcome() == v1::OUTCOME_OK);
  auto activated = command("ecu-a", p.transfer_id, "activate");
  INFO(activated.error().message());
  REQUIRE(activated.outcome() == v1::OUTCOME_OK);
  REQUIRE(command("ecu-a", p.transfer_id, "commit").outcome() == v1::OUTCOME_OK);
  // Bank B runs the release; bank A, the fallback, holds the factory image.
  auto fallback = ota::sha256_file(ecu_dir("ecu-a") + "/bank_a.img");
  REQUIRE(fallback.is_ok());
  REQUIRE(*fallback == base.sha256);

  // The same signed metadata under a new transfer id would overwrite the fallback bank.
  expect_refused(start(plan("ecu-a", "c1/ecu-a/2.0.0-again")), "is a replay");
  // The original transfer id is answered from what is held, nothing is written.
  auto same = start(p);
  CHECK(same.outcome() == v1::OUTCOME_OK);
  // And after a restart of the agent, the same.
  agents.at("ecu-a").kill();
  agents.erase("ecu-a");
  start_agent("ecu-a");
  expect_refused(start(plan("ecu-a", "c1/ecu-a/2.0.0-third")), "is a replay");
  auto after = ota::sha256_file(ecu_dir("ecu-a") + "/bank_a.img");
  REQUIRE(after.is_ok());
  CHECK(*after == base.sha256);
}
