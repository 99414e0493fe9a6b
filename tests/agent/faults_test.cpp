// The failure sides of the rows ("On failure" in docs/PROTOCOL.md section 7), and the clock seam:
// health-check deadlines and metadata expiry on a clock the test moves.
#include <catch2/catch.hpp>

#include <algorithm>

#include "agent_rig.hpp"
#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/trust.hpp"

using namespace ota::agent_test;
using namespace std::chrono_literals;
namespace v1 = ota::v1;

namespace {

bool called(const AgentRig& rig, const std::string& call) {
  auto calls = rig.device.calls();
  return std::find(calls.begin(), calls.end(), call) != calls.end();
}

void check_rolled_back_to_a(AgentRig& rig) {
  auto d = rig.disk();
  CHECK(d.phase() == v1::PHASE_IDLE);
  CHECK_FALSE(d.trial());
  CHECK(d.active_bank() == v1::BANK_A);
  CHECK_FALSE(d.banks(1).valid());
  CHECK(d.transfer_id().empty());
  CHECK(called(rig, "rollback A"));
  CHECK(file_content(rig.dir.file("boot")) == "A");
}

v1::Command activate(const std::string& id, uint32_t timeout_ms) {
  v1::Command c;
  c.mutable_activate()->set_transfer_id(id);
  c.mutable_activate()->set_health_timeout_ms(timeout_ms);
  return c;
}

}  // namespace

TEST_CASE("a health check that does not answer in time rolls back, on the agent's clock",
          "[unit][agent][faults]") {
  // The command's timeout, or the agent's default when the command gives none.
  const auto timeouts = GENERATE(std::make_pair(3000u, 3000), std::make_pair(0u, 10000));
  const uint32_t timeout_ms = timeouts.first;
  const int expected_ms = timeouts.second;
  AgentRig rig;
  rig.reach(v1::PHASE_STAGED);
  rig.device.hang_health();
  const size_t mark = rig.transitions_seen();
  const std::string id = rig.send(activate("t1", timeout_ms));
  // The agent waits on its clock for the command's timeout, or its configured default.
  auto deadlines = rig.clock->wait_for_waiters(1, kDeadline);
  REQUIRE(deadlines.size() == 1);
  CHECK(deadlines[0] == expected_ms);
  rig.clock->advance(std::chrono::milliseconds(expected_ms - 1));
  CHECK(rig.clock->wait_for_waiters(1, 0ms).size() == 1);  // not yet
  rig.clock->advance(1ms);
  const Transition t = rig.wait_transition(Event::kActivate, mark);
  auto r = rig.result_of(id);
  REQUIRE(r);
  CHECK(r->outcome() == v1::OUTCOME_ROLLED_BACK);
  CHECK(r->error().code() == v1::ERROR_CODE_TIMEOUT);
  CHECK(r->error().phase() == v1::PHASE_HEALTH);
  CHECK(r->error().message().find("rolled back to bank A") != std::string::npos);
  CHECK(t.after == v1::PHASE_IDLE);
  check_rolled_back_to_a(rig);
  rig.device.release_health();
}

TEST_CASE("a failed health check or bank switch rolls back", "[unit][agent][faults]") {
  const std::string call = GENERATE(std::string("health_check"), std::string("activate"));
  AgentRig rig;
  rig.reach(v1::PHASE_STAGED);
  rig.device.fail(call, ota::Status(ota::Code::kIoError, "simulated " + call + " failure"));
  auto r = rig.activate("t1");
  CHECK(r.outcome() == v1::OUTCOME_ROLLED_BACK);
  CHECK(r.error().phase() == (call == "activate" ? v1::PHASE_ACTIVATE : v1::PHASE_HEALTH));
  CHECK(r.error().message().find("simulated " + call + " failure") != std::string::npos);
  CHECK(rig.last_transition().after == v1::PHASE_IDLE);
  check_rolled_back_to_a(rig);
  CHECK(rig.disk().last_error().phase() == r.error().phase());
}

TEST_CASE("the trial intent that cannot be saved changes nothing", "[unit][agent][faults]") {
  AgentRig rig;
  rig.reach(v1::PHASE_STAGED);
  const std::string before = rig.disk().SerializeAsString();
  // A directory where the state file's temporary goes: the atomic write fails.
  REQUIRE(ota::make_dirs(rig.state_path() + ".tmp").is_ok());
  auto r = rig.activate("t1");
  CHECK(r.outcome() == v1::OUTCOME_FAILED);
  CHECK(r.error().phase() == v1::PHASE_ACTIVATE);
  CHECK(r.phase() == v1::PHASE_STAGED);
  CHECK(r.active_bank() == v1::BANK_A);
  CHECK_FALSE(called(rig, "activate B"));
  CHECK(rig.disk().SerializeAsString() == before);
}

TEST_CASE("a failed commit stays on trial, and the retry commits", "[unit][agent][faults]") {
  AgentRig rig;
  rig.reach(v1::PHASE_TRIAL);
  rig.device.fail("commit", ota::Status(ota::Code::kIoError, "simulated commit failure"));
  auto r = rig.commit("t1");
  CHECK(r.outcome() == v1::OUTCOME_FAILED);
  CHECK(r.error().phase() == v1::PHASE_COMMIT);
  CHECK(r.phase() == v1::PHASE_TRIAL);
  CHECK(rig.disk().trial());
  CHECK(rig.disk().phase() == v1::PHASE_TRIAL);
  rig.device.fail("commit", ota::Status::ok());
  CHECK(rig.commit("t1").outcome() == v1::OUTCOME_OK);
  CHECK(rig.disk().phase() == v1::PHASE_DONE);
}

TEST_CASE("Install before every byte is durable fails with NOT_FOUND", "[unit][agent][faults]") {
  AgentRig rig;
  rig.reach(v1::PHASE_TRANSFER);
  auto r = rig.install("t1");
  CHECK(r.outcome() == v1::OUTCOME_FAILED);
  CHECK(r.error().code() == v1::ERROR_CODE_NOT_FOUND);
  CHECK(r.error().message().find("transfer incomplete") != std::string::npos);
  CHECK(r.phase() == v1::PHASE_TRANSFER);
  CHECK(rig.disk().phase() == v1::PHASE_TRANSFER);
  // The transfer stays open: the rest goes on, and Install then succeeds.
  CHECK(rig.send_payload(rig.next, "t1", kChunk).next_offset() == rig.next.bytes.size());
  CHECK(rig.install("t1").outcome() == v1::OUTCOME_OK);
}

TEST_CASE("a damaged chunk is refused and the transfer goes on", "[unit][agent][faults]") {
  AgentRig rig;
  rig.reach(v1::PHASE_TRANSFER);
  size_t mark = rig.acks_seen();
  rig.send_chunk(rig.next, "t1", kChunk, kChunk, /*damage=*/true);
  auto acks = rig.wait_acks(mark);
  REQUIRE(acks.size() == 1);
  CHECK(acks[0].error().code() == v1::ERROR_CODE_CORRUPT);
  CHECK(acks[0].next_offset() == kChunk);
  CHECK(rig.send_payload(rig.next, "t1", kChunk).next_offset() == rig.next.bytes.size());
}

TEST_CASE("a payload whose SHA-256 is not the target's is refused whole", "[unit][agent][faults]") {
  AgentRig rig;
  rig.reach(v1::PHASE_TRANSFER);
  Image wrong = rig.next;
  wrong.bytes.back() = static_cast<char>(wrong.bytes.back() ^ 1);  // every chunk's CRC still matches
  const size_t mark = rig.acks_seen();
  for (uint64_t off = kChunk; off < wrong.bytes.size(); off += kChunk) rig.send_chunk(wrong, "t1", off);
  auto acks = rig.wait_acks(mark);
  REQUIRE(acks.size() == 3);
  CHECK(acks.back().error().code() == v1::ERROR_CODE_HASH_MISMATCH);
  CHECK(acks.back().next_offset() == 0);
  CHECK(acks.back().durable_offset() == 0);
  CHECK(rig.last_transition().after == v1::PHASE_TRANSFER);
  auto d = rig.disk();
  CHECK(d.durable_offset() == 0);
  CHECK(d.last_error().code() == v1::ERROR_CODE_HASH_MISMATCH);
  // Closed: the next StartTransfer starts over.
  CHECK(rig.start_transfer(rig.next, "t1").transfer_ready().resume_offset() == 0);
}

TEST_CASE("a delta is staged in the state directory and reconstructed at Install", "[unit][agent][faults]") {
  AgentRig rig;
  rig.start();
  struct StringSink : ota::ByteSink {
    std::string bytes;
    ota::Status write(const uint8_t* data, size_t n) override {
      bytes.append(reinterpret_cast<const char*>(data), n);
      return ota::Status::ok();
    }
  } delta;
  REQUIRE(ota::delta::make_delta(
              reinterpret_cast<const uint8_t*>(rig.base.bytes.data()), rig.base.bytes.size(),
              reinterpret_cast<const uint8_t*>(rig.next.bytes.data()), rig.next.bytes.size(), delta)
              .is_ok());
  Image payload;
  payload.version = rig.next.version;
  payload.bytes = delta.bytes;
  const ota::Digest digest = ota::Sha256::of(payload.bytes);
  payload.sha256.assign(reinterpret_cast<const char*>(digest.data()), digest.size());
  v1::Command cmd;
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id("d1");
  *st->mutable_target() = raw_target(rig.next);
  st->mutable_target()->set_encoding(v1::PAYLOAD_ENCODING_DELTA);
  st->mutable_target()->set_base_sha256(rig.base.sha256);
  st->mutable_target()->set_payload_size(payload.bytes.size());
  st->mutable_target()->set_payload_sha256(payload.sha256);
  st->set_chunk_size(kChunk);
  REQUIRE(rig.call(cmd).outcome() == v1::OUTCOME_OK);
  rig.send_payload(payload, "d1");
  CHECK(ota::read_small_file(rig.config.state_dir + "/payload.part").is_ok());
  auto r = rig.install("d1");
  INFO(r.error().message());
  CHECK(r.outcome() == v1::OUTCOME_OK);
  CHECK(file_content(rig.dir.file("bank_b.img")) == rig.next.bytes);
  CHECK(ota::read_small_file(rig.config.state_dir + "/payload.part").status().code() == ota::Code::kNotFound);
}

TEST_CASE("signed targets expire on the agent's clock", "[unit][agent][faults][trust]") {
  AgentRig rig;
  auto root_key = ota::trust::PrivateKey::generate().value();
  auto image_key = ota::trust::PrivateKey::generate().value();
  auto director_key = ota::trust::PrivateKey::generate().value();
  ota::trust::RootSpec spec;
  spec.expires = kStartTime + 86400;
  spec.root.public_pems = {root_key.public_pem()};
  spec.image.public_pems = {image_key.public_pem()};
  spec.director.public_pems = {director_key.public_pem()};
  auto root = ota::trust::sign(ota::trust::make_root_body(spec).value(), {root_key}).value();
  REQUIRE(ota::atomic_write_file(rig.dir.file("root.signed"), root).is_ok());
  rig.config.trust_root_file = rig.dir.file("root.signed");
  rig.config.partial_verification = true;  // director metadata only: the expiry is what is tested

  ota::trust::VerifiedCampaign campaign;
  campaign.vin = "VIN0000000000001";
  campaign.campaign_id = "c1";
  campaign.version = 1;
  campaign.expires = kStartTime + 100;
  ota::trust::CampaignTarget target;
  target.ecu_id = kEcu;
  target.hardware_id = "hw-1";
  target.image_name = "fw";
  target.version = rig.next.version;
  target.size = rig.next.bytes.size();
  std::copy(rig.next.sha256.begin(), rig.next.sha256.end(), target.sha256.begin());
  campaign.targets = {target};
  campaign.groups = {ota::trust::CampaignGroup{}};
  auto director = ota::trust::sign(ota::trust::make_director_body(campaign), {director_key}).value();

  rig.start();
  v1::Command cmd;
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id("t1");
  *st->mutable_target() = raw_target(rig.next);
  st->mutable_target()->set_signed_target(director);
  st->set_chunk_size(kChunk);
  auto r = rig.call(cmd);
  INFO(r.error().message());
  CHECK(r.outcome() == v1::OUTCOME_OK);
  CHECK(rig.disk().director_version() == 1);

  rig.clock->set_unix_seconds(kStartTime + 101);
  cmd.clear_correlation_id();
  r = rig.call(cmd);
  CHECK(r.outcome() == v1::OUTCOME_REFUSED);
  CHECK(r.error().message().find("expire") != std::string::npos);
  CHECK(rig.disk().last_error().code() == r.error().code());
}
