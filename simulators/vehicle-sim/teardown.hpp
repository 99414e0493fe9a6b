// The end of a run: every process stopped, and what each used recorded for the report.
#pragma once

#include <string>

#include "launch.hpp"
#include "ota/sim/process.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::sim {

// A process's line in the report: its peak RSS, and its exit code or, when a signal ended it, minus
// the signal.
v1::ProcessStats process_stats(const std::string& name, const ExitInfo& info);

// After the client exited (with `client_exit`): stops the agents, lets the platform finish (it
// exits once it has the report; 5 s, then it is stopped), stops both brokers, and adds each one's
// stats to v.stats, the client's first.
void stop_vehicle(Vehicle& v, const ExitInfo& client_exit);

}  // namespace ota::sim
