// The campaign's pre-conditions (docs/CLIENT.md section 3): checked before consent, and again after
// every postponement. Pure: the caller reads the vehicle state and the agents.
#pragma once

#include <map>
#include <string>

#include "agent_directory.hpp"
#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

// OK when the campaign may start. Otherwise the reason, in the message:
// - kUnavailable: the vehicle state could not be read ("vehicle state unavailable: ...");
// - kRejected: a condition does not hold ("vehicle is not parked", "ignition is on", the battery
//   level, an image larger than its ECU's bank, a delta larger than a delta-capable ECU's free space).
// ECUs missing from `agents` are not checked.
Status check_preconditions(const v1::Campaign& campaign, const Result<v1::VehicleConditions>& conditions,
                           const std::map<std::string, AgentView>& agents);

}  // namespace ota::client
