// The campaign ota-cloud-sim offers: read from --campaign (a Campaign in protobuf JSON, whose
// cloud:// payload sizes and digests are filled in from the package files) or --signed-campaign
// (a SignedCampaign in protobuf JSON, offered as signed).
#pragma once

#include "ota/core/status.hpp"
#include "ota/v1/cloud.pb.h"
#include "sim_common.hpp"

namespace ota::cloudsim {

// The offer of cfg.campaign or cfg.signed_campaign, with CampaignOffer.campaign_id set (for a
// signed campaign, the id its director metadata claims). An offer with neither campaign nor
// signed_campaign when no campaign is configured. Errors name the file and what was wrong: not
// JSON of the message (kCorrupt), a package missing (kNotFound) or not matching the size/SHA-256
// the campaign gives (kHashMismatch), a bad package name (kInvalidArgument).
Result<v1::CampaignOffer> load_offer(const Config& cfg);

}  // namespace ota::cloudsim
