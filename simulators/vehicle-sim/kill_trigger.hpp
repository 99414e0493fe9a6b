// --kill WHO@WHEN (docs/CLIENT.md, section 7): kill -9 one process of the vehicle when the campaign
// reaches a point, then start it again at once with the same command line, as a process supervisor
// would. For crash tests of every phase.
//
//   WHO   client | broker | agent:ECU
//   WHEN  ECU:PHASE    ECU's agent has reported PHASE in its state (transfer, install, staged,
//                      activate, health, trial, commit, rollback, done)
//         decision:D   the client's journal records a group decision D (commit, rollback, cancel)
//         committed:N  the client's journal records N ECUs committed
#pragma once

#include <string>

#include "observer.hpp"
#include "ota/core/status.hpp"

namespace ota::sim {

struct KillTrigger {
  enum class Who { kClient, kBroker, kAgent };
  enum class When { kPhase, kDecision, kCommitted };
  std::string spec;  // as given
  Who who = Who::kClient;
  std::string agent;  // kAgent: the ECU whose agent is killed
  When when = When::kPhase;
  std::string ecu, phase;  // kPhase
  std::string decision;    // kDecision
  int committed = 0;       // kCommitted
  bool fired = false;
};

// kInvalidArgument naming what is wrong with `spec`.
Result<KillTrigger> parse_kill_trigger(const std::string& spec);

// Whether the trigger's point is reached: the observer's phases, or the journal at `journal_path`
// (not there yet or unreadable: not reached).
bool kill_point_reached(const KillTrigger& t, const Observer& observer, const std::string& journal_path);

}  // namespace ota::sim
