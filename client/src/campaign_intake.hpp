// Where the campaign comes from: a file ([campaign] file or --campaign), or the platform's offer.
#pragma once

#include <string>

#include "cloud_link.hpp"
#include "ota/core/status.hpp"

namespace ota::client {

// A campaign as received, not yet trusted: protobuf JSON of a SignedCampaign or a Campaign.
struct CampaignInput {
  std::string json;
  std::string source;  // the file name, or "the platform's offer" (for error messages)
};

// Reads a campaign file (at most 16 MiB).
Result<CampaignInput> read_campaign_file(const std::string& path);

// Waits (indefinitely, in periods of one hour) for the platform's next offer and returns it as JSON,
// signed or not as it came. Errors: the link's, other than a timeout.
Result<CampaignInput> wait_campaign_offer(CloudLink& cloud);

// With no campaign to run and no platform to offer one: the client keeps its inventory view up to
// date (on the transport's thread) and waits until a signal stops it.
[[noreturn]] void serve_inventory_only();

}  // namespace ota::client
