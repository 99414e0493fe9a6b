// The start rows of kRules: recovery at start from every state an agent can leave on disk, a kill
// included. A kill is played by the state file as it was on entry of a device call (what a kill at
// that moment leaves: every decision is saved before it is acted on), put back before a restart.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>

#include <unistd.h>

#include "agent_rig.hpp"
#include "ota/core/file.hpp"

using namespace ota::agent_test;
namespace v1 = ota::v1;

namespace {

bool called(const AgentRig& rig, const std::string& call) {
  auto calls = rig.device.calls();
  return std::find(calls.begin(), calls.end(), call) != calls.end();
}

// Reaches `phase` with the state file copied on entry of device call `at`, stops the agent (an
// orderly stop saves nothing), and puts the copy back: the disk as a kill in that call leaves it.
void kill_in(AgentRig& rig, const std::string& at, v1::Phase phase) {
  rig.device.snapshot_at(at, rig.state_path());
  rig.reach(phase);
  rig.stop();
  auto snapshot = rig.device.snapshot();
  REQUIRE(snapshot);
  REQUIRE(ota::atomic_write_file(rig.state_path(), *snapshot).is_ok());
}

Transition start_again(AgentRig& rig) {
  const size_t mark = rig.transitions_seen();
  rig.start();
  return rig.wait_transition(Event::kStart, mark);
}

// The rolled-back state a restart during a trial leaves.
void check_rolled_back(AgentRig& rig) {
  auto d = rig.disk();
  CHECK_FALSE(d.trial());
  CHECK(d.active_bank() == v1::BANK_A);
  CHECK(d.banks(0).valid());
  CHECK_FALSE(d.banks(1).valid());
  CHECK(d.transfer_id() == "t1");  // kept: the transfer may be resumed
  CHECK(d.last_error().code() == v1::ERROR_CODE_ABORTED);
  CHECK(d.last_error().phase() == v1::PHASE_HEALTH);
  CHECK(d.last_error().message() == "agent restarted before commit; rolled back to bank A");
  CHECK(called(rig, "rollback A"));
  CHECK(file_content(rig.dir.file("boot")) == "A");
  CHECK(rig.hello().inventory().active_bank() == v1::BANK_A);
}

}  // namespace

TEST_CASE("first start: the factory image in bank A", "[unit][agent][recovery]") {
  AgentRig rig;
  const size_t mark = rig.transitions_seen();
  rig.start();
  const Transition t = rig.wait_transition(Event::kStart, mark);
  check_row(rig, t, Event::kStart, Action::kCreateState, v1::PHASE_IDLE, nullptr, {});
  auto d = rig.disk();
  CHECK(d.format() == 1);
  CHECK(d.active_bank() == v1::BANK_A);
  REQUIRE(d.banks_size() == 2);
  CHECK(d.banks(0).valid());
  CHECK(d.banks(0).version() == "1.0.0");
  CHECK(d.banks(0).sha256() == rig.base.sha256);
  CHECK(d.banks(0).size() == rig.base.bytes.size());
  CHECK_FALSE(d.banks(1).valid());
  CHECK(d.transfer_id().empty());
  CHECK(rig.hello().online());
}

TEST_CASE("first start with an unreadable factory image: deltas are refused until a full update",
          "[unit][agent][recovery]") {
  AgentRig rig;
  REQUIRE(::unlink(rig.dir.file("bank_a.img").c_str()) == 0);
  rig.start();
  CHECK(rig.last_transition().event == Event::kConnected);
  auto d = rig.disk();
  CHECK(d.banks(0).valid());
  CHECK(d.banks(0).sha256().empty());
  v1::Command cmd;
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id("d1");
  *st->mutable_target() = raw_target(rig.next);
  st->mutable_target()->set_encoding(v1::PAYLOAD_ENCODING_DELTA);
  st->mutable_target()->set_base_sha256(rig.base.sha256);
  st->set_chunk_size(kChunk);
  auto r = rig.call(cmd);
  CHECK(r.outcome() == v1::OUTCOME_REFUSED);
  CHECK(r.error().code() == v1::ERROR_CODE_REJECTED);
}

TEST_CASE("a start in a phase at rest keeps the state", "[unit][agent][recovery]") {
  for (v1::Phase p : {v1::PHASE_IDLE, v1::PHASE_TRANSFER, v1::PHASE_STAGED, v1::PHASE_DONE}) {
    DYNAMIC_SECTION("from " << ota::agent_impl::phase_label(p)) {
      AgentRig rig;
      rig.reach(p);
      rig.stop();
      const std::string before = rig.disk().SerializeAsString();
      const Transition t = start_again(rig);
      check_row(rig, t, Event::kStart, Action::kKeepState, p, nullptr, {});
      CHECK(rig.disk().SerializeAsString() == before);
      CHECK_FALSE(called(rig, "rollback A"));
      if (p == v1::PHASE_TRANSFER) {
        // Not open after a start: a chunk is dropped until the next StartTransfer.
        rig.send_chunk(rig.next, "t1", kChunk);
        CHECK(rig.last_transition().action == Action::kDropChunk);
      }
    }
  }
}

TEST_CASE("a start during a trial rolls back to the previous bank", "[unit][agent][recovery]") {
  struct Kill {
    const char* what;
    const char* at;     // device call the kill happens in ("": an orderly stop)
    v1::Phase reach;    // where the run was going
    v1::Phase on_disk;  // the phase the state file holds
  };
  const Kill kills[] = {
      {"killed while switching banks", "activate", v1::PHASE_TRIAL, v1::PHASE_ACTIVATE},
      {"killed during the health check", "health_check", v1::PHASE_TRIAL, v1::PHASE_ACTIVATE},
  };
  for (const Kill& k : kills) {
    DYNAMIC_SECTION(k.what) {
      AgentRig rig;
      if (*k.at) {
        kill_in(rig, k.at, k.reach);
      } else {
        rig.reach(k.reach);
        rig.stop();
      }
      REQUIRE(rig.disk().trial());
      REQUIRE(rig.disk().phase() == k.on_disk);
      const Transition t = start_again(rig);
      check_row(rig, t, Event::kStart, Action::kRollBackUnconfirmedTrial, k.on_disk, nullptr, {});
      check_rolled_back(rig);
      // The transfer held is still there: StartTransfer resumes it in full, Install stages it again.
      auto ready = rig.start_transfer(rig.next, "t1");
      CHECK(ready.transfer_ready().resume_offset() == rig.next.bytes.size());
      CHECK(rig.install("t1").outcome() == v1::OUTCOME_OK);
      CHECK(rig.disk().phase() == v1::PHASE_STAGED);
    }
  }
}

TEST_CASE("a start whose rollback fails fails, and the next start rolls back", "[unit][agent][recovery]") {
  AgentRig rig;
  kill_in(rig, "health_check", v1::PHASE_TRIAL);
  const std::string before = rig.disk().SerializeAsString();
  rig.device.fail("rollback", ota::Status(ota::Code::kIoError, "simulated bootloader failure"));
  const size_t mark = rig.transitions_seen();
  ota::Status st = rig.try_start();
  CHECK(st.code() == ota::Code::kIoError);
  CHECK(st.message().find("rollback after restart") != std::string::npos);
  const Transition t = rig.wait_transition(Event::kStart, mark);
  CHECK(t.action == Action::kRollBackUnconfirmedTrial);
  CHECK(t.after == v1::PHASE_ACTIVATE);  // unchanged: the row's "on failure"
  CHECK(rig.disk().SerializeAsString() == before);
  rig.stop();

  rig.device.fail("rollback", ota::Status::ok());
  start_again(rig);
  check_rolled_back(rig);
}

TEST_CASE("a start after a kill during Install returns to the transfer", "[unit][agent][recovery]") {
  AgentRig rig;
  kill_in(rig, "finish_install", v1::PHASE_STAGED);
  REQUIRE(rig.disk().phase() == v1::PHASE_INSTALL);
  const Transition t = start_again(rig);
  check_row(rig, t, Event::kStart, Action::kReturnToTransfer, v1::PHASE_INSTALL, nullptr, {});
  auto d = rig.disk();
  CHECK(d.transfer_id() == "t1");
  CHECK(d.durable_offset() == rig.next.bytes.size());
  CHECK_FALSE(d.banks(1).valid());
  // The payload is intact: StartTransfer resumes after its last byte and Install completes.
  CHECK(rig.start_transfer(rig.next, "t1").transfer_ready().resume_offset() == rig.next.bytes.size());
  CHECK(rig.install("t1").outcome() == v1::OUTCOME_OK);
  CHECK(rig.disk().banks(1).valid());
}

TEST_CASE("a start in ACTIVATE without the trial flag returns to the transfer", "[unit][agent][recovery]") {
  AgentRig rig;
  rig.reach(v1::PHASE_STAGED);
  rig.stop();
  auto d = rig.disk();
  d.set_phase(v1::PHASE_ACTIVATE);
  REQUIRE(ota::atomic_write_file(rig.state_path(), d.SerializeAsString()).is_ok());
  const Transition t = start_again(rig);
  check_row(rig, t, Event::kStart, Action::kReturnToTransfer, v1::PHASE_ACTIVATE, nullptr, {});
  CHECK(rig.disk().active_bank() == v1::BANK_A);
}

TEST_CASE("a state file that does not decode stops the start", "[unit][agent][recovery]") {
  AgentRig rig;
  REQUIRE(ota::make_dirs(rig.config.state_dir).is_ok());
  REQUIRE(ota::atomic_write_file(rig.state_path(), "\xff\xff\xff garbage").is_ok());
  const size_t mark = rig.transitions_seen();
  ota::Status st = rig.try_start();
  CHECK(st.code() == ota::Code::kCorrupt);
  CHECK(rig.transitions_seen() == mark);  // no row is taken for a state that cannot be read
}

namespace {

// A trial the agent had answered, as a kill (or a stop) leaves it on disk.
void leave_answered_trial(AgentRig& rig, const std::string& how) {
  if (how == "stopped on trial") {
    rig.reach(v1::PHASE_TRIAL);
    rig.stop();
  } else {
    kill_in(rig, "commit", v1::PHASE_DONE);
  }
  REQUIRE(rig.disk().trial());
  REQUIRE(rig.disk().phase() == v1::PHASE_TRIAL);
}

}  // namespace

TEST_CASE("a restart on an answered trial keeps it and waits for the client's decision",
          "[unit][agent][recovery]") {
  for (const std::string how : {"stopped on trial", "killed while committing"}) {
    DYNAMIC_SECTION(how) {
      AgentRig rig;
      leave_answered_trial(rig, how);
      const Transition t = start_again(rig);
      check_row(rig, t, Event::kStart, Action::kResumeTrial, v1::PHASE_TRIAL, nullptr, {});
      CHECK(t.after == v1::PHASE_TRIAL);
      auto d = rig.disk();
      CHECK(d.trial());
      CHECK(d.active_bank() == v1::BANK_B);
      CHECK(d.banks(1).valid());
      const auto calls = rig.device.calls();
      CHECK(std::count(calls.begin(), calls.end(), "health_check B") == 2);  // again after the restart
      CHECK_FALSE(called(rig, "rollback A"));
      CHECK(file_content(rig.dir.file("boot")) == "B");
      CHECK(rig.hello().inventory().active_bank() == v1::BANK_B);
      SECTION("the client's Commit commits it") {
        CHECK(rig.commit("t1").outcome() == v1::OUTCOME_OK);
        CHECK(rig.disk().phase() == v1::PHASE_DONE);
        CHECK_FALSE(rig.disk().trial());
      }
      SECTION("the client's Rollback rolls it back") {
        CHECK(rig.rollback("t1").outcome() == v1::OUTCOME_ROLLED_BACK);
        CHECK(rig.disk().active_bank() == v1::BANK_A);
        CHECK(file_content(rig.dir.file("boot")) == "A");
      }
    }
  }
}

TEST_CASE("a restart on an answered trial the bootloader gave up on falls back, the image kept staged",
          "[unit][agent][recovery]") {
  AgentRig rig;
  leave_answered_trial(rig, "stopped on trial");
  // The bootloader spent its boot attempts on B and booted A again: it says so in the boot file.
  REQUIRE(ota::atomic_write_file(rig.dir.file("boot"), "A").is_ok());
  const Transition t = start_again(rig);
  check_row(rig, t, Event::kStart, Action::kResumeTrial, v1::PHASE_TRIAL, nullptr, {});
  CHECK(t.after == v1::PHASE_STAGED);
  auto d = rig.disk();
  CHECK_FALSE(d.trial());
  CHECK(d.active_bank() == v1::BANK_A);
  CHECK(d.banks(1).valid());  // the verified image stays for a roll forward
  CHECK(d.transfer_id() == "t1");
  CHECK(d.last_error().code() == v1::ERROR_CODE_ABORTED);
  CHECK(d.last_error().message().find("booted bank A instead of trial bank B") != std::string::npos);
  const auto calls = rig.device.calls();
  CHECK(std::count(calls.begin(), calls.end(), "health_check B") == 1);  // the activation's only
  // The client's Commit is refused with the cause; its roll forward activates the staged image again.
  auto refused = rig.commit("t1");
  CHECK(refused.outcome() == v1::OUTCOME_REFUSED);
  CHECK(refused.error().message().find("booted bank A instead of trial bank B") != std::string::npos);
  CHECK(rig.activate("t1").outcome() == v1::OUTCOME_OK);
  CHECK(rig.commit("t1").outcome() == v1::OUTCOME_OK);
  CHECK(rig.disk().active_bank() == v1::BANK_B);
  CHECK(file_content(rig.dir.file("boot")) == "B");
}

TEST_CASE("a restart on an answered trial that fails its health check again falls back",
          "[unit][agent][recovery]") {
  AgentRig rig;
  leave_answered_trial(rig, "stopped on trial");
  rig.device.fail("health_check", ota::Status(ota::Code::kRejected, "service did not start"));
  const Transition t = start_again(rig);
  check_row(rig, t, Event::kStart, Action::kResumeTrial, v1::PHASE_TRIAL, nullptr, {});
  CHECK(t.after == v1::PHASE_STAGED);
  auto d = rig.disk();
  CHECK_FALSE(d.trial());
  CHECK(d.active_bank() == v1::BANK_A);
  CHECK(d.banks(1).valid());
  CHECK(d.last_error().message().find("service did not start") != std::string::npos);
  CHECK(called(rig, "rollback A"));
  CHECK(file_content(rig.dir.file("boot")) == "A");
}
