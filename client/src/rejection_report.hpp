// The report of a campaign refused before anything was sent (untrusted, or its download failed):
// it records why, for the platform and the owner.
#pragma once

#include <map>
#include <string>

#include "fleet.hpp"
#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

// CAMPAIGN_REJECTED with `why` as the reason, and every agent seen REJECTED on its active version.
v1::VehicleReport rejection_report(const std::string& vin, const Status& why,
                                   const std::map<std::string, AgentView>& agents);

}  // namespace ota::client
