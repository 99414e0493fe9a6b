// Helpers for the integration tests: run ota-sim and read its report, start simulated agents.
#pragma once

#include <string>
#include <vector>

#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::test {

std::string bin(const std::string& name);

// A temporary directory named after `prefix`, removed when it goes out of scope (REQUIREs it).
ota::sim::TempDir temp_dir(const std::string& prefix);

struct SimRun {
  int exit_code = -1;
  v1::VehicleReport report;
  bool has_report = false;
  std::string work;    // the run's work directory (kept until the SimRun is destroyed)
  std::string output;  // ota-sim's stdout and stderr
  std::string client_log() const;
  const v1::EcuReport* ecu(const std::string& id) const;
};

// Runs ota-sim with the given arguments (plus --work-dir and --report in a temporary directory)
// and waits for it (REQUIREs it to end within `timeout_s`). `env` adds NAME=VALUE entries to the
// environment ota-sim and its children inherit.
SimRun run_sim(const ota::sim::TempDir& dir, std::vector<std::string> args, int timeout_s = 240,
               std::vector<std::string> env = {});

// The vehicle of a finished one-ECU ota-sim run ("bcm"), started again with the state it persisted:
// a fresh broker, its agent, and ota-client on `campaign_json` (a SignedCampaign as JSON). Waits
// for the client to end (REQUIREs it within 60 s), then stops the agent and the broker. Logs and
// the report are in `dir`, named after `tag`.
struct Rerun {
  int client_exit = -1;
  std::string client_log;  // the client's log (read after it ended)
  std::string agent_log;
  std::string report_json;  // empty when the client wrote none
};
Rerun rerun_vehicle(const SimRun& first, const ota::sim::TempDir& dir, const std::string& campaign_json,
                    const std::string& tag);

// The boot bank recorded by an ota-sim ECU ("A" or "B").
std::string boot_bank(const SimRun& run, const std::string& ecu);

}  // namespace ota::test
