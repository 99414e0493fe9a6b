// The agent's transition table (docs/PROTOCOL.md section 7), as data. Each row names an event, the
// phases it may arrive in, a guard, the action that carries it out, the answer on success, and the
// phase the agent is left in on success and on failure. The dispatcher takes the first row whose
// event, phase and guard match and runs its action: which action runs is decided here and nowhere
// else. Every event has a last row with guard `always` over every phase at rest (every phase for
// `start`), so a row always matches.
//
// Pure data and lookups: no I/O, no locks, callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "ota/v1/ota.pb.h"

namespace ota::agent_impl {

namespace v1 = ::ota::v1;

enum class Event : uint8_t {
  kStart,      // start(): the state found on disk (recovery)
  kConnected,  // the transport connected, or reconnected
  kChunk,      // a Chunk on down/data
  kStartTransfer,
  kInstall,
  kActivate,
  kCommit,
  kRollback,
  kCancel,
  kGetInventory,
  kReadDtcs,
  kClearDtcs,
  kOtherCommand,  // a command with no body this agent knows
  kOtherMajor,    // a command of another protocol major version
};

enum class Guard : uint8_t {
  kAlways,
  kNoStateFile,       // start: there is no state file yet (first start)
  kTrial,             // start: the state on disk has the trial flag set
  kOpenTransfer,      // chunk: a transfer is open and the chunk names it
  kSameTransfer,      // StartTransfer names the transfer held: id, sha256, payload_sha256, chunk size
  kSameOpenTransfer,  // kSameTransfer, and that transfer is open
  kHeldTransfer,      // the command's transfer_id is the (non-empty) one held
  kNotHeldTransfer,   // the negation of kHeldTransfer
};

enum class Action : uint8_t {
  // start
  kCreateState,
  kResumeTrial,
  kRollBackUnconfirmedTrial,
  kReturnToTransfer,
  kKeepState,
  // connected
  kPublishPresence,
  // chunk
  kReceiveChunk,
  kDropChunk,
  // StartTransfer
  kAnswerReceived,
  kRefuseDuringTrial,
  kSettleOpenTransfer,
  kResumeTransfer,
  kBeginTransfer,
  // Install
  kRefuseUnknownTransfer,
  kAnswerOk,
  kInstall,
  // Activate
  kActivate,
  kRefuseNothingStaged,
  // Commit
  kCommit,
  kRefuseNoTrial,
  // Rollback, Cancel
  kRollBackTrial,
  kAbandonTransfer,
  kKeepDone,
  kRefuseCancelInTrial,
  // the rest
  kAnswerInventory,
  kAnswerDtcs,
  kClearDtcs,
  kRefuseUnknownCommand,
  kRefuseVersion,
};

// What the agent answers when the action succeeds (failures are described in the protocol doc).
enum class Answer : uint8_t { kNone, kAck, kOk, kRefused, kRolledBack };

// A set of phases (a bit mask over v1::Phase), which may also hold `unchanged`: the phase the event
// arrived in.
class PhaseSet {
 public:
  constexpr PhaseSet() = default;
  constexpr PhaseSet(std::initializer_list<v1::Phase> phases) {
    for (v1::Phase p : phases) bits_ |= bit(p);
  }
  static constexpr PhaseSet unchanged() { return PhaseSet(kUnchangedBit); }
  static constexpr PhaseSet any() { return PhaseSet(kAllPhases); }

  constexpr PhaseSet operator|(PhaseSet o) const { return PhaseSet(bits_ | o.bits_); }
  constexpr bool operator==(PhaseSet o) const { return bits_ == o.bits_; }
  constexpr bool operator!=(PhaseSet o) const { return bits_ != o.bits_; }
  constexpr bool contains(v1::Phase p) const { return (bits_ & bit(p)) != 0; }
  constexpr bool has_unchanged() const { return (bits_ & kUnchangedBit) != 0; }
  constexpr bool is_any() const { return (bits_ & kAllPhases) == kAllPhases; }
  constexpr bool empty() const { return bits_ == 0; }
  // True when an event that arrived in `before` may leave the agent in `after`.
  constexpr bool allows(v1::Phase before, v1::Phase after) const {
    return contains(after) || (has_unchanged() && before == after);
  }

 private:
  static constexpr uint32_t bit(v1::Phase p) { return uint32_t{1} << static_cast<unsigned>(p); }
  static constexpr uint32_t kAllPhases = ((uint32_t{1} << (v1::Phase_MAX + 1)) - 1) & ~uint32_t{1};
  static constexpr uint32_t kUnchangedBit = uint32_t{1} << 31;
  constexpr explicit PhaseSet(uint32_t bits) : bits_(bits) {}
  uint32_t bits_ = 0;
};

// What the guards look at.
struct Facts {
  v1::Phase phase = v1::PHASE_IDLE;  // as at_rest() reports it
  bool state_file = true;            // start: a state file was found
  bool trial = false;                // start: the trial flag on disk
  bool transfer_open = false;        // chunks are being received
  bool same_transfer = false;        // see Guard::kSameTransfer
  bool held_transfer = false;        // see Guard::kHeldTransfer
};

struct Rule {
  Event event;
  PhaseSet from;
  Guard guard;
  Action action;
  Answer answer;
  PhaseSet to;             // after success
  PhaseSet to_on_failure;  // after a failure of the action (empty: it cannot fail)
};

// The rows, in the order the dispatcher tries them.
struct RuleTable {
  const Rule* first;
  std::size_t size;
  const Rule* begin() const { return first; }
  const Rule* end() const { return first + size; }
};
RuleTable rules();

bool holds(Guard guard, const Facts& facts);
// The first row for this event that matches the facts. Never null for a phase at rest (IDLE,
// TRANSFER, STAGED, TRIAL, DONE), nor for the start event in any phase.
const Rule* find_rule(Event event, const Facts& facts);

// The phase a state reports at rest: the phase of a state never changed yet (unset) is IDLE.
inline v1::Phase at_rest(v1::Phase p) { return p == v1::PHASE_UNSPECIFIED ? v1::PHASE_IDLE : p; }

// The names the protocol doc uses.
const char* event_name(Event e);
const char* guard_name(Guard g);
const char* action_name(Action a);
const char* answer_name(Answer a);
const char* phase_label(v1::Phase p);  // "IDLE", "TRANSFER", ...

}  // namespace ota::agent_impl
