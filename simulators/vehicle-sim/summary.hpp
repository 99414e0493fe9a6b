// The end of a run: the client's report with every process's stats, and a summary on stdout.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "launch.hpp"
#include "options.hpp"
#include "scenario.hpp"
#include "triggers.hpp"

namespace ota::sim {

// Reads the client's report (WORK/client-report.json), adds v.stats as processes[], writes it to
// `report_path` and prints the summary: the campaign line, a table per ECU, the throughput and, with
// --restart-broker-at, where each transfer went on after the restart (`resumes`: resume offset per
// ECU). Returns ota-sim's exit status: 0 only if the campaign succeeded.
int summarize(const Scenario& s, const Options& opt, const Vehicle& v, const ExitInfo& client_exit,
              const BrokerRestart& restart, const std::map<std::string, uint64_t>& resumes,
              const std::string& report_path);

}  // namespace ota::sim
