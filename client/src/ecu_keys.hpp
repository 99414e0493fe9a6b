// The ECUs' public keys ([trust] ecu_keys): an ECU listed there must sign its commit results.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/core/trust.hpp"

namespace ota::client {

// Loads DIR/<ecu_id>.pub for every ECU of `ecus`. An empty `dir` loads nothing. The first key that
// cannot be loaded is the error ("ECU key of ID: ...").
Result<std::map<std::string, trust::PublicKey>> load_ecu_keys(const std::string& dir,
                                                              const std::vector<std::string>& ecus);

}  // namespace ota::client
