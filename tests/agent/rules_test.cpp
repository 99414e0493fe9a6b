// Every row of the transition table (kRules) but the start rows (recovery_test.cpp), driven through
// the loopback transport from every phase at rest the row admits: the state before, the event, the
// answer, the state after, and what is on disk.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <set>
#include <tuple>

#include "agent_rig.hpp"
#include "ota/core/file.hpp"
#include "ota/core/topics.hpp"

using namespace ota::agent_test;
using ota::agent_impl::Rule;
namespace v1 = ota::v1;

namespace {

constexpr v1::Phase IDLE = v1::PHASE_IDLE;
constexpr v1::Phase TRANSFER = v1::PHASE_TRANSFER;
constexpr v1::Phase STAGED = v1::PHASE_STAGED;
constexpr v1::Phase TRIAL = v1::PHASE_TRIAL;
constexpr v1::Phase DONE = v1::PHASE_DONE;
const v1::Phase kAtRest[] = {IDLE, TRANSFER, STAGED, TRIAL, DONE};

// What an event produced.
struct Outcome {
  std::optional<v1::Result> result;
  std::vector<v1::ChunkAck> acks;
};

struct Case {
  Event event;
  Action action;
  v1::Phase from;
  std::string what;                        // the situation, for the report
  std::function<void(AgentRig&)> arrange;  // from a fresh rig to `from`
  std::function<Outcome(AgentRig&)> act;   // the event
  std::function<void(AgentRig&, const Outcome&, const v1::AgentDiskState& before)> check;  // the details
};

Outcome command(AgentRig& rig, v1::Command cmd) { return Outcome{rig.call(std::move(cmd)), {}}; }
Outcome answered(v1::Result r) { return Outcome{std::move(r), {}}; }

v1::Command install(const std::string& id) {
  v1::Command c;
  c.mutable_install()->set_transfer_id(id);
  return c;
}
v1::Command activate(const std::string& id) {
  v1::Command c;
  c.mutable_activate()->set_transfer_id(id);
  return c;
}
v1::Command commit(const std::string& id) {
  v1::Command c;
  c.mutable_commit()->set_transfer_id(id);
  return c;
}
v1::Command rollback() {
  v1::Command c;
  c.mutable_rollback()->set_reason("test");
  return c;
}
v1::Command cancel() {
  v1::Command c;
  c.mutable_cancel();
  return c;
}

std::function<void(AgentRig&)> at(v1::Phase p) {
  return [p](AgentRig& rig) { rig.reach(p); };
}

// TRANSFER with the whole payload received (ready to install).
void transfer_complete(AgentRig& rig) {
  rig.reach(TRANSFER);
  rig.send_payload(rig.next, "t1", ota::agent_test::kChunk);
}

// TRANSFER, the transfer closed by a restart after two chunks.
void transfer_closed(AgentRig& rig) {
  rig.reach(TRANSFER);
  rig.send_chunk(rig.next, "t1", ota::agent_test::kChunk);
  rig.restart();
}

// IDLE still holding "t1": a kill during its activation (the health check, not yet answered), and
// the restart rolled it back.
void idle_after_trial(AgentRig& rig) {
  rig.device.snapshot_at("health_check", rig.state_path());
  rig.reach(TRIAL);
  rig.stop();
  auto killed = rig.device.snapshot();
  REQUIRE(killed);
  REQUIRE(ota::atomic_write_file(rig.state_path(), *killed).is_ok());
  rig.start();
  REQUIRE(rig.disk().phase() == IDLE);
  REQUIRE(rig.disk().transfer_id() == "t1");
}

const Image& third(AgentRig& rig) {
  static const Image img = make_image("3.0.0", 2 * ota::agent_test::kChunk + 5, 3);
  (void)rig;
  return img;
}

// Answered without a change: the state file is as it was.
void unchanged(AgentRig& rig, const Outcome&, const v1::AgentDiskState& before) {
  CHECK(rig.disk().SerializeAsString() == before.SerializeAsString());
}

std::function<void(AgentRig&, const Outcome&, const v1::AgentDiskState&)> refused(v1::ErrorCode code) {
  return [code](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
    CHECK(o.result->error().code() == code);
    CHECK(rig.disk().trial() == before.trial());
    CHECK(rig.disk().active_bank() == before.active_bank());
    CHECK(rig.disk().transfer_id() == before.transfer_id());
  };
}

void transfer_recorded(AgentRig& rig, const std::string& id, uint64_t durable) {
  auto d = rig.disk();
  CHECK(d.transfer_id() == id);
  CHECK(d.durable_offset() == durable);
  const int inactive = d.active_bank() == v1::BANK_A ? 1 : 0;
  CHECK_FALSE(d.banks(inactive).valid());  // about to be overwritten
  CHECK_FALSE(d.has_last_error());
}

std::vector<Case> connected_and_chunk_cases() {
  std::vector<Case> cases;
  for (v1::Phase p : kAtRest) {
    cases.push_back({Event::kConnected, Action::kPublishPresence, p, "the link to the broker came back",
                     at(p),
                     [](AgentRig& rig) {
                       const size_t mark = rig.transitions_seen();
                       const size_t hellos = rig.hellos_seen();
                       REQUIRE(rig.broker->drop("agent-ecu-a"));
                       rig.wait_transition(Event::kConnected, mark);
                       // After the Will said offline, the agent says online again. Waited for as the
                       // broker takes it: the publish may follow the transition (and the retained copy
                       // is stored just after the broker takes it).
                       CHECK(rig.wait_hello(hellos).online());
                       return Outcome{};
                     },
                     [](AgentRig& rig, const Outcome&, const v1::AgentDiskState& before) {
                       CHECK(rig.state().phase() == ota::agent_impl::at_rest(before.phase()));
                       CHECK(rig.broker->retained(ota::topics::ecu(kEcu, ota::topics::Leaf::kDtc)));
                       unchanged(rig, {}, before);
                     }});
  }
  cases.push_back({Event::kChunk, Action::kReceiveChunk, TRANSFER, "the next chunk", at(TRANSFER),
                   [](AgentRig& rig) {
                     const size_t mark = rig.acks_seen();
                     rig.send_chunk(rig.next, "t1", kChunk);
                     return Outcome{{}, rig.wait_acks(mark)};
                   },
                   [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState&) {
                     CHECK(o.acks[0].next_offset() == 2 * kChunk);
                     CHECK(o.acks[0].durable_offset() <= 2 * kChunk);
                     CHECK(rig.disk().transfer_id() == "t1");
                   }});
  const std::pair<v1::Phase, const char*> drops[] = {
      {IDLE, "t1"}, {TRANSFER, "other"}, {STAGED, "t1"}, {TRIAL, "t1"}, {DONE, "t1"}};
  for (const auto& [p, id] : drops) {
    std::string tid = id;
    cases.push_back({Event::kChunk, Action::kDropChunk, p, "a chunk of " + tid, at(p),
                     [tid](AgentRig& rig) {
                       const size_t mark = rig.acks_seen();
                       rig.send_chunk(rig.next, tid, 0);
                       // Everything the agent published for the chunk was recorded before its
                       // transition was reported: no ack means none was sent.
                       CHECK(rig.acks_seen() == mark);
                       return Outcome{};
                     },
                     unchanged});
  }
  cases.push_back({Event::kChunk, Action::kDropChunk, TRANSFER,
                   "a chunk after a restart, before StartTransfer", transfer_closed,
                   [](AgentRig& rig) {
                     const size_t mark = rig.acks_seen();
                     rig.send_chunk(rig.next, "t1", 2 * kChunk);
                     CHECK(rig.acks_seen() == mark);
                     return Outcome{};
                   },
                   unchanged});
  return cases;
}

std::vector<Case> start_transfer_cases() {
  std::vector<Case> cases;
  for (v1::Phase p : {STAGED, TRIAL, DONE}) {
    cases.push_back({Event::kStartTransfer, Action::kAnswerReceived, p, "the transfer held again", at(p),
                     [](AgentRig& rig) { return answered(rig.start_transfer(rig.next, "t1")); },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       CHECK(o.result->transfer_ready().resume_offset() == rig.next.bytes.size());
                       unchanged(rig, o, before);
                     }});
  }
  cases.push_back({Event::kStartTransfer, Action::kRefuseDuringTrial, TRIAL, "another transfer", at(TRIAL),
                   [](AgentRig& rig) { return answered(rig.start_transfer(third(rig), "t2")); },
                   [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                     refused(v1::ERROR_CODE_REJECTED)(rig, o, before);
                     CHECK(rig.disk().last_error().message() ==
                           "an activated update awaits commit or rollback");
                   }});
  cases.push_back({Event::kStartTransfer, Action::kRefuseDuringTrial, TRIAL,
                   "the transfer held, other chunks", at(TRIAL),
                   [](AgentRig& rig) { return answered(rig.start_transfer(rig.next, "t1", kChunk / 2)); },
                   refused(v1::ERROR_CODE_REJECTED)});
  cases.push_back({Event::kStartTransfer, Action::kSettleOpenTransfer, TRANSFER, "the open transfer again",
                   at(TRANSFER), [](AgentRig& rig) { return answered(rig.start_transfer(rig.next, "t1")); },
                   [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState&) {
                     CHECK(o.result->transfer_ready().resume_offset() == kChunk);
                     CHECK(rig.disk().durable_offset() == kChunk);
                   }});
  cases.push_back(
      {Event::kStartTransfer, Action::kResumeTransfer, TRANSFER, "the closed transfer again", transfer_closed,
       [](AgentRig& rig) { return answered(rig.start_transfer(rig.next, "t1")); },
       [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState&) {
         CHECK(o.result->transfer_ready().resume_offset() == 2 * kChunk);
         transfer_recorded(rig, "t1", 2 * kChunk);
         // The rest completes it: the prefix was re-hashed from the bank.
         CHECK(rig.send_payload(rig.next, "t1", 2 * kChunk).next_offset() == rig.next.bytes.size());
         CHECK(rig.install("t1").outcome() == v1::OUTCOME_OK);
       }});
  cases.push_back({Event::kStartTransfer, Action::kResumeTransfer, IDLE,
                   "the transfer of a rolled-back trial", idle_after_trial,
                   [](AgentRig& rig) { return answered(rig.start_transfer(rig.next, "t1")); },
                   [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState&) {
                     CHECK(o.result->transfer_ready().resume_offset() == rig.next.bytes.size());
                     transfer_recorded(rig, "t1", rig.next.bytes.size());
                   }});
  const std::pair<v1::Phase, const char*> begins[] = {
      {IDLE, "t1"}, {TRANSFER, "t2"}, {STAGED, "t2"}, {DONE, "t2"}};
  for (const auto& [p, id] : begins) {
    std::string tid = id;
    cases.push_back({Event::kStartTransfer, Action::kBeginTransfer, p, "new transfer " + tid, at(p),
                     [tid](AgentRig& rig) { return answered(rig.start_transfer(third(rig), tid)); },
                     [tid](AgentRig& rig, const Outcome& o, const v1::AgentDiskState&) {
                       CHECK(o.result->transfer_ready().resume_offset() == 0);
                       transfer_recorded(rig, tid, 0);
                       CHECK(rig.disk().target().sha256() == third(rig).sha256);
                       CHECK(rig.send_payload(third(rig), tid).next_offset() == third(rig).bytes.size());
                     }});
  }
  return cases;
}

std::vector<Case> install_cases() {
  std::vector<Case> cases;
  const std::pair<v1::Phase, const char*> unknown[] = {
      {IDLE, "t1"}, {TRANSFER, "tX"}, {STAGED, "tX"}, {TRIAL, "tX"}, {DONE, "tX"}};
  for (const auto& [p, id] : unknown) {
    std::string tid = id;
    cases.push_back({Event::kInstall, Action::kRefuseUnknownTransfer, p, "Install of " + tid, at(p),
                     [tid](AgentRig& rig) { return command(rig, install(tid)); },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       CHECK(o.result->error().code() == v1::ERROR_CODE_NOT_FOUND);
                       unchanged(rig, o, before);
                     }});
  }
  for (v1::Phase p : {STAGED, TRIAL, DONE}) {
    cases.push_back({Event::kInstall, Action::kAnswerOk, p, "Install again", at(p),
                     [](AgentRig& rig) { return command(rig, install("t1")); }, unchanged});
  }
  auto installed = [](AgentRig& rig, const Outcome&, const v1::AgentDiskState&) {
    auto d = rig.disk();
    const auto& b = d.banks(1);
    CHECK(b.valid());
    CHECK(b.version() == rig.next.version);
    CHECK(b.sha256() == rig.next.sha256);
    CHECK(b.size() == rig.next.bytes.size());
    auto bank = ota::read_small_file(rig.dir.file("bank_b.img"));
    REQUIRE(bank.is_ok());
    CHECK(*bank == rig.next.bytes);
    auto calls = rig.device.calls();
    CHECK(std::count(calls.begin(), calls.end(), "finish_install B") >= 1);
  };
  cases.push_back({Event::kInstall, Action::kInstall, TRANSFER, "every byte received", transfer_complete,
                   [](AgentRig& rig) { return command(rig, install("t1")); }, installed});
  cases.push_back({Event::kInstall, Action::kInstall, IDLE, "the transfer of a rolled-back trial",
                   idle_after_trial, [](AgentRig& rig) { return command(rig, install("t1")); }, installed});
  return cases;
}

std::vector<Case> activate_commit_cases() {
  std::vector<Case> cases;
  cases.push_back({Event::kActivate, Action::kAnswerOk, TRIAL, "Activate again", at(TRIAL),
                   [](AgentRig& rig) { return command(rig, activate("t1")); }, unchanged});
  cases.push_back({Event::kActivate, Action::kActivate, STAGED, "the staged transfer", at(STAGED),
                   [](AgentRig& rig) { return command(rig, activate("t1")); },
                   [](AgentRig& rig, const Outcome&, const v1::AgentDiskState&) {
                     auto d = rig.disk();
                     CHECK(d.trial());
                     CHECK(d.active_bank() == v1::BANK_B);
                     CHECK(d.previous_bank() == v1::BANK_A);
                     auto calls = rig.device.calls();
                     CHECK(std::find(calls.begin(), calls.end(), "activate B") != calls.end());
                     CHECK(std::find(calls.begin(), calls.end(), "health_check B") != calls.end());
                     CHECK(file_content(rig.dir.file("boot")) == "B");
                     CHECK(rig.hello().inventory().active_bank() == v1::BANK_B);
                   }});
  const std::pair<v1::Phase, const char*> nothing_staged[] = {
      {IDLE, "t1"}, {TRANSFER, "t1"}, {STAGED, "tX"}, {TRIAL, "tX"}, {DONE, "t1"}};
  for (const auto& [p, id] : nothing_staged) {
    std::string tid = id;
    cases.push_back({Event::kActivate, Action::kRefuseNothingStaged, p, "Activate " + tid, at(p),
                     [tid](AgentRig& rig) { return command(rig, activate(tid)); },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       CHECK(o.result->error().code() == v1::ERROR_CODE_REJECTED);
                       unchanged(rig, o, before);
                     }});
  }
  cases.push_back({Event::kCommit, Action::kCommit, TRIAL, "the trial", at(TRIAL),
                   [](AgentRig& rig) { return command(rig, commit("t1")); },
                   [](AgentRig& rig, const Outcome&, const v1::AgentDiskState&) {
                     auto d = rig.disk();
                     CHECK_FALSE(d.trial());
                     CHECK(d.active_bank() == v1::BANK_B);
                     auto calls = rig.device.calls();
                     CHECK(std::find(calls.begin(), calls.end(), "commit B") != calls.end());
                   }});
  cases.push_back({Event::kCommit, Action::kAnswerOk, DONE, "Commit again", at(DONE),
                   [](AgentRig& rig) { return command(rig, commit("t1")); }, unchanged});
  const std::pair<v1::Phase, const char*> no_trial[] = {
      {IDLE, "t1"}, {TRANSFER, "t1"}, {STAGED, "t1"}, {DONE, "tX"}};
  for (const auto& [p, id] : no_trial) {
    std::string tid = id;
    cases.push_back({Event::kCommit, Action::kRefuseNoTrial, p, "Commit " + tid, at(p),
                     [tid](AgentRig& rig) { return command(rig, commit(tid)); },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       CHECK(o.result->error().code() == v1::ERROR_CODE_REJECTED);
                       unchanged(rig, o, before);
                     }});
  }
  return cases;
}

std::vector<Case> rollback_cancel_cases() {
  std::vector<Case> cases;
  cases.push_back({Event::kRollback, Action::kRollBackTrial, TRIAL, "the trial", at(TRIAL),
                   [](AgentRig& rig) { return command(rig, rollback()); },
                   [](AgentRig& rig, const Outcome&, const v1::AgentDiskState&) {
                     auto d = rig.disk();
                     CHECK_FALSE(d.trial());
                     CHECK(d.active_bank() == v1::BANK_A);
                     CHECK_FALSE(d.banks(1).valid());
                     CHECK(d.transfer_id().empty());
                     auto calls = rig.device.calls();
                     CHECK(std::find(calls.begin(), calls.end(), "rollback A") != calls.end());
                     CHECK(file_content(rig.dir.file("boot")) == "A");
                   }});
  for (Event e : {Event::kRollback, Event::kCancel}) {
    for (v1::Phase p : {IDLE, TRANSFER, STAGED}) {
      cases.push_back(
          {e, Action::kAbandonTransfer, p, "before activation", at(p),
           [e](AgentRig& rig) { return command(rig, e == Event::kRollback ? rollback() : cancel()); },
           [](AgentRig& rig, const Outcome&, const v1::AgentDiskState&) {
             auto d = rig.disk();
             CHECK(d.transfer_id().empty());
             CHECK(d.active_bank() == v1::BANK_A);
             CHECK_FALSE(d.banks(1).valid());
             // The transfer is closed: a chunk of it is dropped.
             const size_t mark = rig.acks_seen();
             rig.send_chunk(rig.next, "t1", 0);
             CHECK(rig.last_transition().action == Action::kDropChunk);
             CHECK(rig.acks_seen() == mark);
           }});
    }
    cases.push_back(
        {e, Action::kKeepDone, DONE, "after the commit", at(DONE),
         [e](AgentRig& rig) { return command(rig, e == Event::kRollback ? rollback() : cancel()); },
         unchanged});
  }
  cases.push_back({Event::kCancel, Action::kRefuseCancelInTrial, TRIAL, "the trial", at(TRIAL),
                   [](AgentRig& rig) { return command(rig, cancel()); },
                   [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                     CHECK(o.result->error().code() == v1::ERROR_CODE_REJECTED);
                     unchanged(rig, o, before);
                   }});
  return cases;
}

std::vector<Case> phase_free_cases() {
  std::vector<Case> cases;
  for (v1::Phase p : kAtRest) {
    cases.push_back({Event::kGetInventory, Action::kAnswerInventory, p, "GetInventory", at(p),
                     [](AgentRig& rig) {
                       v1::Command c;
                       c.mutable_get_inventory();
                       return command(rig, c);
                     },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       CHECK(o.result->inventory().ecu_id() == kEcu);
                       CHECK(o.result->inventory().banks_size() == 2);
                       CHECK(o.result->inventory().active_bank() == before.active_bank());
                       unchanged(rig, o, before);
                     }});
    cases.push_back({Event::kReadDtcs, Action::kAnswerDtcs, p, "ReadDtcs", at(p),
                     [](AgentRig& rig) {
                       v1::Command c;
                       c.mutable_read_dtcs();
                       return command(rig, c);
                     },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       REQUIRE(o.result->dtcs().dtcs_size() == 2);
                       CHECK(o.result->dtcs().dtcs(0).code() == 0xC14187);
                       unchanged(rig, o, before);
                     }});
    cases.push_back({Event::kClearDtcs, Action::kClearDtcs, p, "ClearDtcs", at(p),
                     [](AgentRig& rig) {
                       v1::Command c;
                       c.mutable_clear_dtcs()->add_codes(0xC14187);
                       return command(rig, c);
                     },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       REQUIRE(o.result->dtcs().dtcs_size() == 1);
                       CHECK(o.result->dtcs().dtcs(0).code() == 0x9A0B11);
                       unchanged(rig, o, before);
                     }});
    cases.push_back({Event::kOtherCommand, Action::kRefuseUnknownCommand, p, "RequestDiagnostics", at(p),
                     [](AgentRig& rig) {
                       v1::Command c;
                       c.mutable_request_diagnostics();
                       return command(rig, c);
                     },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       CHECK(o.result->error().code() == v1::ERROR_CODE_UNSUPPORTED);
                       unchanged(rig, o, before);
                     }});
    cases.push_back({Event::kOtherMajor, Action::kRefuseVersion, p, "protocol 2.0", at(p),
                     [](AgentRig& rig) {
                       v1::Command c;
                       c.mutable_protocol()->set_major(2);
                       c.mutable_commit()->set_transfer_id("t1");
                       return command(rig, c);
                     },
                     [](AgentRig& rig, const Outcome& o, const v1::AgentDiskState& before) {
                       CHECK(o.result->error().code() == v1::ERROR_CODE_UNSUPPORTED_VERSION);
                       unchanged(rig, o, before);
                     }});
  }
  return cases;
}

std::vector<Case> all_cases() {
  std::vector<Case> all;
  for (auto make : {connected_and_chunk_cases, start_transfer_cases, install_cases, activate_commit_cases,
                    rollback_cancel_cases, phase_free_cases}) {
    auto more = make();
    all.insert(all.end(), more.begin(), more.end());
  }
  return all;
}

void run_case(const Case& c) {
  AgentRig rig;
  rig.device.dtcs = {{0xC14187, 0x09, true, true, 1, 2, 3, "brake pressure"},
                     {0x9A0B11, 0x08, false, true, 1, 2, 1, "cabin"}};
  c.arrange(rig);
  REQUIRE(ota::agent_impl::at_rest(rig.disk().phase()) == c.from);
  const v1::AgentDiskState before = rig.disk();
  const size_t mark = rig.transitions_seen();
  Outcome o = c.act(rig);
  const Transition t = rig.wait_transition(c.event, mark);
  check_row(rig, t, c.event, c.action, c.from, o.result ? &*o.result : nullptr, o.acks);
  c.check(rig, o, before);
}

void run_cases(const std::function<bool(Event)>& which) {
  for (const Case& c : all_cases()) {
    if (!which(c.event)) continue;
    DYNAMIC_SECTION(ota::agent_impl::event_name(c.event)
                    << "/" << ota::agent_impl::action_name(c.action) << " from "
                    << ota::agent_impl::phase_label(c.from) << ": " << c.what) {
      run_case(c);
    }
  }
}

// True when some facts make `row` the one taken for an event in phase `p`.
bool reachable(const Rule& row, v1::Phase p) {
  for (int bits = 0; bits < 32; ++bits) {
    ota::agent_impl::Facts f;
    f.phase = p;
    f.state_file = bits & 1;
    f.trial = bits & 2;
    f.transfer_open = bits & 4;
    f.same_transfer = bits & 8;
    f.held_transfer = bits & 16;
    if (ota::agent_impl::find_rule(row.event, f) == &row) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("rows: connected and chunk", "[unit][agent][rules]") {
  run_cases([](Event e) { return e == Event::kConnected || e == Event::kChunk; });
}

TEST_CASE("rows: StartTransfer", "[unit][agent][rules]") {
  run_cases([](Event e) { return e == Event::kStartTransfer; });
}

TEST_CASE("rows: Install", "[unit][agent][rules]") {
  run_cases([](Event e) { return e == Event::kInstall; });
}

TEST_CASE("rows: Activate and Commit", "[unit][agent][rules]") {
  run_cases([](Event e) { return e == Event::kActivate || e == Event::kCommit; });
}

TEST_CASE("rows: Rollback and Cancel", "[unit][agent][rules]") {
  run_cases([](Event e) { return e == Event::kRollback || e == Event::kCancel; });
}

TEST_CASE("rows: GetInventory, ReadDtcs, ClearDtcs and other commands", "[unit][agent][rules]") {
  run_cases([](Event e) { return e >= Event::kGetInventory; });
}

TEST_CASE("every row but the start rows has a case from every phase at rest it can be taken in",
          "[unit][agent][rules]") {
  std::set<std::tuple<Event, Action, v1::Phase>> covered;
  for (const Case& c : all_cases()) covered.insert({c.event, c.action, c.from});
  for (const Rule& r : ota::agent_impl::rules()) {
    if (r.event == Event::kStart) continue;  // recovery_test.cpp
    for (v1::Phase p : kAtRest) {
      if (!r.from.contains(p) || !reachable(r, p)) continue;
      INFO(ota::agent_impl::event_name(r.event)
           << "/" << ota::agent_impl::action_name(r.action) << " from " << ota::agent_impl::phase_label(p));
      CHECK(covered.count({r.event, r.action, p}) == 1);
    }
  }
}
