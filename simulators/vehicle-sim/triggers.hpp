// The scenario's triggers, fired while the client runs: --cancel-at, --kill-client-at,
// --restart-broker-at (docs/CLIENT.md, section 7).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "launch.hpp"
#include "observer.hpp"
#include "options.hpp"
#include "scenario.hpp"

namespace ota::sim {

// The broker restart, for the summary.
struct BrokerRestart {
  bool done = false;
  int percent = 0;                        // the slowest ECU's percent when the broker was killed
  std::map<std::string, uint64_t> acked;  // bytes acknowledged per ECU before the kill
};

// Waits for the client (v.client) to exit, at most opt.timeout_s, firing each trigger once as the
// observer's percentages reach it: SIGUSR1 to the client; kill -9 of the client and a new one; kill -9
// of the broker, restarted on its port. The killed processes' stats go to v.stats.
// Returns 0 with the client's exit in *client_exit, or, printed why, ota-sim's exit status: 1 when
// the campaign did not finish in time, 2 when a restart failed.
int supervise_client(const Scenario& s, const Options& opt, Observer& observer, Vehicle& v,
                     ExitInfo* client_exit, BrokerRestart* restart);

}  // namespace ota::sim
