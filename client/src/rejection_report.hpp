// The report of a campaign refused before anything was sent (untrusted, or its download failed):
// it records why, for the platform and the owner, and names the campaign it refuses.
#pragma once

#include <map>
#include <string>

#include "agent_directory.hpp"
#include "campaign_intake.hpp"
#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

// CAMPAIGN_REJECTED for `campaign_id` with `why` as the reason, and every agent seen REJECTED on
// its active version.
v1::VehicleReport rejection_report(const std::string& vin, const std::string& campaign_id, const Status& why,
                                   const std::map<std::string, AgentView>& agents);

// The campaign id a received campaign claims, read WITHOUT verification (a SignedCampaign's
// director metadata, or a Campaign's id): only to name a rejection and to find a stored report.
// Empty when the input does not parse.
std::string claimed_campaign_id(const CampaignInput& input);

}  // namespace ota::client
