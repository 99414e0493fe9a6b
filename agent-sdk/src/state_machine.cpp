#include "state_machine.hpp"

namespace ota::agent_impl {

namespace {

constexpr v1::Phase IDLE = v1::PHASE_IDLE;
constexpr v1::Phase TRANSFER = v1::PHASE_TRANSFER;
constexpr v1::Phase INSTALL = v1::PHASE_INSTALL;
constexpr v1::Phase STAGED = v1::PHASE_STAGED;
constexpr v1::Phase ACTIVATE = v1::PHASE_ACTIVATE;
constexpr v1::Phase TRIAL = v1::PHASE_TRIAL;
constexpr v1::Phase DONE = v1::PHASE_DONE;

constexpr PhaseSet kAny = PhaseSet::any();
constexpr PhaseSet kSame = PhaseSet::unchanged();
constexpr PhaseSet kNever{};  // as "on failure": the action cannot fail
constexpr PhaseSet kSameOrTransfer = kSame | PhaseSet{TRANSFER};
constexpr PhaseSet kSameOrIdle = kSame | PhaseSet{IDLE};
constexpr PhaseSet kSameOrDone = kSame | PhaseSet{DONE};

using A = Action;
using E = Event;
using G = Guard;
using R = Answer;

// docs/PROTOCOL.md section 7 lists exactly these rows, in this order (a unit test compares them).
// clang-format off
constexpr Rule kRules[] = {
  // {event, from, guard, action, answer on success, phase after success, phase after a failure}
  {E::kStart, kAny, G::kNoStateFile, A::kCreateState, R::kNone, {IDLE}, kSame},
  {E::kStart, {TRIAL}, G::kTrial, A::kResumeTrial, R::kNone, {TRIAL, STAGED}, kSame},
  {E::kStart, kAny, G::kTrial, A::kRollBackUnconfirmedTrial, R::kNone, {IDLE}, kSame},
  {E::kStart, {INSTALL, ACTIVATE}, G::kAlways, A::kReturnToTransfer, R::kNone, {TRANSFER}, kSame},
  {E::kStart, kAny, G::kAlways, A::kKeepState, R::kNone, kSame, kNever},

  {E::kConnected, kAny, G::kAlways, A::kPublishPresence, R::kNone, kSame, kNever},

  {E::kChunk, {TRANSFER}, G::kOpenTransfer, A::kReceiveChunk, R::kAck, {TRANSFER}, {TRANSFER}},
  {E::kChunk, kAny, G::kAlways, A::kDropChunk, R::kNone, kSame, kNever},

  {E::kStartTransfer, {STAGED, TRIAL, DONE}, G::kSameTransfer, A::kAnswerReceived, R::kOk, kSame, kNever},
  {E::kStartTransfer, {TRIAL}, G::kAlways, A::kRefuseDuringTrial, R::kRefused, kSame, kNever},
  {E::kStartTransfer, {TRANSFER}, G::kSameOpenTransfer, A::kSettleOpenTransfer, R::kOk, {TRANSFER}, kSame},
  {E::kStartTransfer, {IDLE, TRANSFER}, G::kSameTransfer, A::kResumeTransfer, R::kOk, {TRANSFER},
   kSameOrTransfer},
  {E::kStartTransfer, {IDLE, TRANSFER, STAGED, DONE}, G::kAlways, A::kBeginTransfer, R::kOk, {TRANSFER},
   kSameOrTransfer},

  {E::kInstall, kAny, G::kNotHeldTransfer, A::kRefuseUnknownTransfer, R::kRefused, kSame, kNever},
  {E::kInstall, {STAGED, TRIAL, DONE}, G::kAlways, A::kAnswerOk, R::kOk, kSame, kNever},
  {E::kInstall, {IDLE, TRANSFER}, G::kAlways, A::kInstall, R::kOk, {STAGED}, {TRANSFER}},

  {E::kActivate, {TRIAL}, G::kHeldTransfer, A::kAnswerOk, R::kOk, kSame, kNever},
  {E::kActivate, {STAGED}, G::kHeldTransfer, A::kActivate, R::kOk, {TRIAL}, kSameOrIdle},
  {E::kActivate, kAny, G::kAlways, A::kRefuseNothingStaged, R::kRefused, kSame, kNever},

  {E::kCommit, {TRIAL}, G::kAlways, A::kCommit, R::kOk, {DONE}, kSameOrDone},
  {E::kCommit, {DONE}, G::kHeldTransfer, A::kAnswerOk, R::kOk, kSame, kNever},
  {E::kCommit, kAny, G::kAlways, A::kRefuseNoTrial, R::kRefused, kSame, kNever},

  {E::kRollback, {TRIAL}, G::kAlways, A::kRollBackTrial, R::kRolledBack, {IDLE}, {IDLE}},
  {E::kRollback, {IDLE, TRANSFER, STAGED}, G::kAlways, A::kAbandonTransfer, R::kRolledBack, {IDLE}, {IDLE}},
  {E::kRollback, {DONE}, G::kAlways, A::kKeepDone, R::kRolledBack, kSame, kNever},

  {E::kCancel, {TRIAL}, G::kAlways, A::kRefuseCancelInTrial, R::kRefused, kSame, kNever},
  {E::kCancel, {IDLE, TRANSFER, STAGED}, G::kAlways, A::kAbandonTransfer, R::kRolledBack, {IDLE}, {IDLE}},
  {E::kCancel, {DONE}, G::kAlways, A::kKeepDone, R::kRolledBack, kSame, kNever},

  {E::kGetInventory, kAny, G::kAlways, A::kAnswerInventory, R::kOk, kSame, kNever},
  {E::kReadDtcs, kAny, G::kAlways, A::kAnswerDtcs, R::kOk, kSame, kNever},
  {E::kClearDtcs, kAny, G::kAlways, A::kClearDtcs, R::kOk, kSame, kSame},
  {E::kOtherCommand, kAny, G::kAlways, A::kRefuseUnknownCommand, R::kRefused, kSame, kNever},
  {E::kOtherMajor, kAny, G::kAlways, A::kRefuseVersion, R::kRefused, kSame, kNever},
};
// clang-format on

}  // namespace

RuleTable rules() { return RuleTable{kRules, sizeof(kRules) / sizeof(kRules[0])}; }

bool holds(Guard guard, const Facts& f) {
  switch (guard) {
    case Guard::kAlways:
      return true;
    case Guard::kNoStateFile:
      return !f.state_file;
    case Guard::kTrial:
      return f.trial;
    case Guard::kOpenTransfer:
      return f.transfer_open && f.held_transfer;
    case Guard::kSameTransfer:
      return f.same_transfer;
    case Guard::kSameOpenTransfer:
      return f.same_transfer && f.transfer_open;
    case Guard::kHeldTransfer:
      return f.held_transfer;
    case Guard::kNotHeldTransfer:
      return !f.held_transfer;
  }
  return false;
}

const Rule* find_rule(Event event, const Facts& facts) {
  for (const Rule& r : kRules) {
    if (r.event == event && r.from.contains(facts.phase) && holds(r.guard, facts)) return &r;
  }
  return nullptr;
}

const char* event_name(Event e) {
  switch (e) {
    case Event::kStart:
      return "start";
    case Event::kConnected:
      return "connected";
    case Event::kChunk:
      return "chunk";
    case Event::kStartTransfer:
      return "StartTransfer";
    case Event::kInstall:
      return "Install";
    case Event::kActivate:
      return "Activate";
    case Event::kCommit:
      return "Commit";
    case Event::kRollback:
      return "Rollback";
    case Event::kCancel:
      return "Cancel";
    case Event::kGetInventory:
      return "GetInventory";
    case Event::kReadDtcs:
      return "ReadDtcs";
    case Event::kClearDtcs:
      return "ClearDtcs";
    case Event::kOtherCommand:
      return "other_command";
    case Event::kOtherMajor:
      return "other_major";
  }
  return "?";
}

const char* guard_name(Guard g) {
  switch (g) {
    case Guard::kAlways:
      return "always";
    case Guard::kNoStateFile:
      return "no_state_file";
    case Guard::kTrial:
      return "trial";
    case Guard::kOpenTransfer:
      return "open_transfer";
    case Guard::kSameTransfer:
      return "same_transfer";
    case Guard::kSameOpenTransfer:
      return "same_open_transfer";
    case Guard::kHeldTransfer:
      return "held_transfer";
    case Guard::kNotHeldTransfer:
      return "not_held_transfer";
  }
  return "?";
}

const char* action_name(Action a) {
  switch (a) {
    case Action::kCreateState:
      return "create_state";
    case Action::kResumeTrial:
      return "resume_trial";
    case Action::kRollBackUnconfirmedTrial:
      return "roll_back_unconfirmed_trial";
    case Action::kReturnToTransfer:
      return "return_to_transfer";
    case Action::kKeepState:
      return "keep_state";
    case Action::kPublishPresence:
      return "publish_presence";
    case Action::kReceiveChunk:
      return "receive_chunk";
    case Action::kDropChunk:
      return "drop_chunk";
    case Action::kAnswerReceived:
      return "answer_received";
    case Action::kRefuseDuringTrial:
      return "refuse_during_trial";
    case Action::kSettleOpenTransfer:
      return "settle_open_transfer";
    case Action::kResumeTransfer:
      return "resume_transfer";
    case Action::kBeginTransfer:
      return "begin_transfer";
    case Action::kRefuseUnknownTransfer:
      return "refuse_unknown_transfer";
    case Action::kAnswerOk:
      return "answer_ok";
    case Action::kInstall:
      return "install";
    case Action::kActivate:
      return "activate";
    case Action::kRefuseNothingStaged:
      return "refuse_nothing_staged";
    case Action::kCommit:
      return "commit";
    case Action::kRefuseNoTrial:
      return "refuse_no_trial";
    case Action::kRollBackTrial:
      return "roll_back_trial";
    case Action::kAbandonTransfer:
      return "abandon_transfer";
    case Action::kKeepDone:
      return "keep_done";
    case Action::kRefuseCancelInTrial:
      return "refuse_cancel_in_trial";
    case Action::kAnswerInventory:
      return "answer_inventory";
    case Action::kAnswerDtcs:
      return "answer_dtcs";
    case Action::kClearDtcs:
      return "clear_dtcs";
    case Action::kRefuseUnknownCommand:
      return "refuse_unknown_command";
    case Action::kRefuseVersion:
      return "refuse_version";
  }
  return "?";
}

const char* answer_name(Answer a) {
  switch (a) {
    case Answer::kNone:
      return "-";
    case Answer::kAck:
      return "ack";
    case Answer::kOk:
      return "OK";
    case Answer::kRefused:
      return "REFUSED";
    case Answer::kRolledBack:
      return "ROLLED_BACK";
  }
  return "?";
}

const char* phase_label(v1::Phase p) {
  switch (p) {
    case v1::PHASE_UNSPECIFIED:
      return "UNSPECIFIED";
    case v1::PHASE_IDLE:
      return "IDLE";
    case v1::PHASE_TRANSFER:
      return "TRANSFER";
    case v1::PHASE_INSTALL:
      return "INSTALL";
    case v1::PHASE_STAGED:
      return "STAGED";
    case v1::PHASE_ACTIVATE:
      return "ACTIVATE";
    case v1::PHASE_HEALTH:
      return "HEALTH";
    case v1::PHASE_TRIAL:
      return "TRIAL";
    case v1::PHASE_COMMIT:
      return "COMMIT";
    case v1::PHASE_ROLLBACK:
      return "ROLLBACK";
    case v1::PHASE_DONE:
      return "DONE";
    default:
      return "?";
  }
}

}  // namespace ota::agent_impl
