// Helpers for the integration tests: run ota-sim and read its report, start simulated agents.
#pragma once

#include <string>
#include <vector>

#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::test {

std::string bin(const std::string& name);

struct SimRun {
  int exit_code = -1;
  v1::VehicleReport report;
  bool has_report = false;
  std::string work;     // the run's work directory (kept until the SimRun is destroyed)
  std::string output;   // ota-sim's stdout and stderr
  std::string client_log() const;
  const v1::EcuReport* ecu(const std::string& id) const;
};

// Runs ota-sim with the given arguments (plus --work-dir and --report in a temporary directory)
// and waits for it (REQUIREs it to end within `timeout_s`).
SimRun run_sim(const ota::sim::TempDir& dir, std::vector<std::string> args, int timeout_s = 240);

// The boot bank recorded by an ota-sim ECU ("A" or "B").
std::string boot_bank(const SimRun& run, const std::string& ecu);

}  // namespace ota::test
