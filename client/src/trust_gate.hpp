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

// Applies the root rotations the campaign carries (SignedCampaign.root_updates, oldest first): those
// at or below the store's root version are skipped, each other goes through TrustStore::update_root
// (both thresholds, version + 1, persisted). The first that fails is returned ("root update: ...").
Status apply_root_updates(trust::TrustStore& store, const v1::SignedCampaign& signed_campaign);

// Applies the campaign's root updates (apply_root_updates), then checks signatures and thresholds,
// VIN, hardware ids, counters (rollback/replay), expiry, size caps and mix-and-match, all through
// `store`; then maps every payload named by the signed image metadata to its location in
// `signed_campaign.payloads`. Errors name the reason (kSignatureInvalid,
// kRejected, kCorrupt, kNotFound for a payload without a location).
Result<GateResult> verify_signed_campaign(trust::TrustStore& store, const v1::SignedCampaign& signed_campaign,
                                          const std::string& vin,
                                          const std::map<std::string, AgentView>& agents);

// Checks a payload file against its signed size and SHA-256 before a byte of it is sent: a truncated,
// padded or corrupted download is refused here (kHashMismatch / kCorrupt naming both values).
Status check_payload_file(const std::string& path, const v1::PayloadRef& ref);

}  // namespace ota::client
