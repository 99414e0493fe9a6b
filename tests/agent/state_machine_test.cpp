// The transition table alone: its lookups, and the properties the dispatcher relies on.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "state_machine.hpp"

using namespace ota::agent_impl;
namespace v1 = ota::v1;

namespace {

const v1::Phase kAtRest[] = {v1::PHASE_IDLE, v1::PHASE_TRANSFER, v1::PHASE_STAGED, v1::PHASE_TRIAL,
                             v1::PHASE_DONE};

const Event kEvents[] = {Event::kStart,        Event::kConnected,    Event::kChunk,    Event::kStartTransfer,
                         Event::kInstall,      Event::kActivate,     Event::kCommit,   Event::kRollback,
                         Event::kCancel,       Event::kGetInventory, Event::kReadDtcs, Event::kClearDtcs,
                         Event::kOtherCommand, Event::kOtherMajor};

bool at_rest_phase(v1::Phase p) {
  for (v1::Phase q : kAtRest) {
    if (p == q) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("every event finds a row in every phase at rest whatever the facts, start in every phase",
          "[unit][agent][rules]") {
  for (Event e : kEvents) {
    for (int p = v1::Phase_MIN; p <= v1::Phase_MAX; ++p) {
      if (e != Event::kStart && !at_rest_phase(at_rest(static_cast<v1::Phase>(p)))) continue;
      for (int bits = 0; bits < 32; ++bits) {
        Facts f;
        f.phase = at_rest(static_cast<v1::Phase>(p));
        f.state_file = bits & 1;
        f.trial = bits & 2;
        f.transfer_open = bits & 4;
        f.same_transfer = bits & 8;
        f.held_transfer = bits & 16;
        INFO(event_name(e) << " in " << phase_label(f.phase) << " facts " << bits);
        const Rule* r = find_rule(e, f);
        REQUIRE(r != nullptr);
        CHECK(r->event == e);
        CHECK(r->from.contains(f.phase));
        CHECK(holds(r->guard, f));
      }
    }
  }
}

TEST_CASE("each event ends with rows under guard always that cover every phase at rest",
          "[unit][agent][rules]") {
  for (Event e : kEvents) {
    PhaseSet unguarded;
    for (const Rule& r : rules()) {
      if (r.event == e && r.guard == Guard::kAlways) unguarded = unguarded | r.from;
    }
    INFO(event_name(e));
    for (v1::Phase p : kAtRest) CHECK(unguarded.contains(p));
    if (e == Event::kStart) CHECK(unguarded.is_any());
  }
}

TEST_CASE("a row is named by its event and action", "[unit][agent][rules]") {
  std::set<std::string> seen;
  for (const Rule& r : rules()) {
    std::string key = std::string(event_name(r.event)) + "/" + action_name(r.action);
    INFO(key);
    CHECK(seen.insert(key).second);
  }
}

TEST_CASE("no row is shadowed by the rows before it", "[unit][agent][rules]") {
  // Some combination of phase and facts must reach every row; otherwise it is dead.
  std::set<const Rule*> reached;
  for (Event e : kEvents) {
    for (int p = v1::Phase_MIN; p <= v1::Phase_MAX; ++p) {
      for (int bits = 0; bits < 32; ++bits) {
        Facts f;
        f.phase = at_rest(static_cast<v1::Phase>(p));
        f.state_file = bits & 1;
        f.trial = bits & 2;
        f.transfer_open = bits & 4;
        f.same_transfer = bits & 8;
        f.held_transfer = bits & 16;
        reached.insert(find_rule(e, f));
      }
    }
  }
  for (const Rule& r : rules()) {
    INFO(event_name(r.event) << "/" << action_name(r.action));
    CHECK(reached.count(&r) == 1);
  }
}

TEST_CASE("the guards read the facts", "[unit][agent][rules]") {
  Facts f;
  CHECK(holds(Guard::kAlways, f));
  CHECK_FALSE(holds(Guard::kNoStateFile, f));
  f.state_file = false;
  CHECK(holds(Guard::kNoStateFile, f));
  CHECK_FALSE(holds(Guard::kTrial, f));
  f.trial = true;
  CHECK(holds(Guard::kTrial, f));

  f.same_transfer = true;
  CHECK(holds(Guard::kSameTransfer, f));
  CHECK_FALSE(holds(Guard::kSameOpenTransfer, f));
  f.transfer_open = true;
  CHECK(holds(Guard::kSameOpenTransfer, f));

  CHECK_FALSE(holds(Guard::kOpenTransfer, f));  // open, but the chunk names another transfer
  CHECK(holds(Guard::kNotHeldTransfer, f));
  f.held_transfer = true;
  CHECK(holds(Guard::kOpenTransfer, f));
  CHECK(holds(Guard::kHeldTransfer, f));
  CHECK_FALSE(holds(Guard::kNotHeldTransfer, f));
}

TEST_CASE("the rows the protocol singles out", "[unit][agent][rules]") {
  Facts f;
  SECTION("a StartTransfer of the transfer held, once staged or further, is answered OK") {
    f.same_transfer = true;
    for (v1::Phase p : {v1::PHASE_STAGED, v1::PHASE_TRIAL, v1::PHASE_DONE}) {
      f.phase = p;
      CHECK(find_rule(Event::kStartTransfer, f)->action == Action::kAnswerReceived);
    }
  }
  SECTION("any other StartTransfer during a trial is refused") {
    f.phase = v1::PHASE_TRIAL;
    CHECK(find_rule(Event::kStartTransfer, f)->action == Action::kRefuseDuringTrial);
  }
  SECTION("Install in DONE is answered OK") {
    f.phase = v1::PHASE_DONE;
    f.held_transfer = true;
    CHECK(find_rule(Event::kInstall, f)->action == Action::kAnswerOk);
    f.held_transfer = false;
    CHECK(find_rule(Event::kInstall, f)->action == Action::kRefuseUnknownTransfer);
  }
  SECTION("a start with the trial flag keeps an answered trial and rolls back any other phase saved") {
    f.trial = true;
    for (v1::Phase p : kAtRest) {
      f.phase = p;
      CHECK(find_rule(Event::kStart, f)->action ==
            (p == v1::PHASE_TRIAL ? Action::kResumeTrial : Action::kRollBackUnconfirmedTrial));
    }
    f.phase = v1::PHASE_ACTIVATE;
    CHECK(find_rule(Event::kStart, f)->action == Action::kRollBackUnconfirmedTrial);
  }
  SECTION("the first start creates the state before anything else") {
    f.state_file = false;
    f.trial = true;
    CHECK(find_rule(Event::kStart, f)->action == Action::kCreateState);
  }
  SECTION("an unset phase is IDLE") {
    CHECK(at_rest(v1::PHASE_UNSPECIFIED) == v1::PHASE_IDLE);
    f.phase = at_rest(v1::PHASE_UNSPECIFIED);
    CHECK(find_rule(Event::kStartTransfer, f)->action == Action::kBeginTransfer);
  }
}

TEST_CASE("a phase set says where a row may leave the agent", "[unit][agent][rules]") {
  PhaseSet idle{v1::PHASE_IDLE};
  CHECK(idle.allows(v1::PHASE_TRIAL, v1::PHASE_IDLE));
  CHECK_FALSE(idle.allows(v1::PHASE_TRIAL, v1::PHASE_TRIAL));
  PhaseSet same = PhaseSet::unchanged();
  CHECK(same.allows(v1::PHASE_TRIAL, v1::PHASE_TRIAL));
  CHECK_FALSE(same.allows(v1::PHASE_TRIAL, v1::PHASE_IDLE));
  CHECK((same | idle).allows(v1::PHASE_STAGED, v1::PHASE_IDLE));
  CHECK(PhaseSet::any().is_any());
  CHECK_FALSE(PhaseSet::any().contains(v1::PHASE_UNSPECIFIED));
  CHECK(PhaseSet{}.empty());
}
