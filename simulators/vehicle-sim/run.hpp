// One ota-sim run: prepare the scenario, start the vehicle, let the client run the campaign while
// the triggers fire, stop everything, report.
#pragma once

#include "options.hpp"

namespace ota::sim {

// Returns ota-sim's exit status: 0 only if the campaign succeeded, 1 if it did not (or the client
// wrote no report), 2 for a setup error. Throws CLI::ValidationError for a malformed per-ECU option.
int run(const Options& opt);

}  // namespace ota::sim
