#include "campaign/status.hpp"

namespace ota::client {

const char* campaign_state_text(CampaignState state) {
  switch (state) {
    case v1::CampaignStatus::CAMPAIGN_STATE_AWAITING_CONSENT:
      return "awaiting consent";
    case v1::CampaignStatus::CAMPAIGN_STATE_POSTPONED:
      return "postponed";
    case v1::CampaignStatus::CAMPAIGN_STATE_TRANSFERRING:
      return "transferring";
    case v1::CampaignStatus::CAMPAIGN_STATE_ACTIVATING:
      return "activating";
    case v1::CampaignStatus::CAMPAIGN_STATE_COMMITTING:
      return "committing";
    case v1::CampaignStatus::CAMPAIGN_STATE_ROLLING_BACK:
      return "rolling back";
    case v1::CampaignStatus::CAMPAIGN_STATE_CANCELLING:
      return "cancelling";
    case v1::CampaignStatus::CAMPAIGN_STATE_SUCCEEDED:
      return "succeeded";
    case v1::CampaignStatus::CAMPAIGN_STATE_FINISHED:
      return "finished";
    default:
      return "";
  }
}

}  // namespace ota::client
