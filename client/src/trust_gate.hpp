// The trust gate: nothing reaches an agent that the platform did not sign for this vehicle.
// Verifies a SignedCampaign (director + image metadata, ota/v1/trust.proto) with the TrustStore and
// turns it into the Campaign the runner executes. See docs/SECURITY.md.
#pragma once

#include <map>
#include <string>

#include "agent_directory.hpp"
#include "ota/core/status.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

struct GateResult {
  v1::Campaign campaign;
  uint64_t director_version = 0;
  bool resumed = false;  // the same campaign, accepted before and not finished
};

// Applies the campaign's root updates (trust::apply_root_updates, as the agents do), then checks
// signatures and thresholds, VIN, hardware ids, counters (rollback/replay), expiry, size caps and
// mix-and-match, all through `store`; maps every payload named by the signed image metadata to its
// location in `signed_campaign.payloads`; and holds the campaign built to the signed one
// (trust::check_campaign_matches, which also bounds the fields no signature covers:
// health_timeout_ms, chunk_size, window, the number of root updates). Errors name the reason
// (kSignatureInvalid, kRejected, kCorrupt, kNotFound for a payload without a location).
Result<GateResult> verify_signed_campaign(trust::TrustStore& store, const v1::SignedCampaign& signed_campaign,
                                          const std::string& vin,
                                          const std::map<std::string, AgentView>& agents);

// Checks a payload file against its signed size and SHA-256 before a byte of it is sent
// (trust::check_payload): a truncated, padded or corrupted download is refused here (kHashMismatch
// naming both values).
Status check_payload_file(const std::string& path, const v1::PayloadRef& ref);

}  // namespace ota::client
