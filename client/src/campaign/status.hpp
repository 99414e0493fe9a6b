// The campaign's state as the client publishes it (v1::CampaignStatus on ota/v1/vehicle/status):
// the enum, and the display text that goes beside it.
#pragma once

#include "ota/v1/ota.pb.h"

namespace ota::client {

using CampaignState = v1::CampaignStatus::CampaignState;

// "awaiting consent", "postponed", "transferring", "activating", "committing", "rolling back",
// "cancelling", "succeeded", "finished"; "" for CAMPAIGN_STATE_UNSPECIFIED.
const char* campaign_state_text(CampaignState state);

}  // namespace ota::client
