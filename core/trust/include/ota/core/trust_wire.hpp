// Binding the wire protocol (ota.v1.Campaign from the cloud, ota.v1.Target in StartTransfer) to the
// verified, signed metadata. The wire messages are convenient to execute, but they are not signed:
// every field that decides what gets flashed must agree with the signed campaign, or the update is
// refused. Internal to the project, like codec.hpp (exposes protobuf types).
#pragma once

#include "ota/core/status.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::trust {

// Client side, after TrustStore::verify_campaign: kRejected, naming the ECU and field, unless
//  - VIN and campaign id are the signed ones;
//  - the wire campaign has exactly the signed set of ECUs;
//  - per ECU: version, size and sha256 equal the signed target; the full payload's size and sha256
//    equal the signed image's full payload (when the image metadata lists one); a delta payload
//    matches one of the signed deltas (base sha256, payload size and sha256); group equals the
//    signed group; allow_downgrade is not set unless signed; resolves_dtcs are among the signed ones;
//  - every group that is atomic in the signed campaign is atomic on the wire;
//  - wire pre-conditions are at least as strict as the signed ones.
Status check_campaign_matches(const ota::v1::Campaign& wire, const VerifiedCampaign& signed_campaign);

// Agent side, after AgentVerifier::verify_target on Target.signed_target: kRejected unless the
// wire Target's version, size, sha256 (and hardware id if set) equal the signed target, and
// allow_downgrade is not set unless signed. When the image metadata was verified too
// (image_verified), a DELTA payload must match one of its signed deltas and a RAW one the image.
Status check_target_matches(const ota::v1::Target& wire, const AgentTarget& signed_target);

}  // namespace ota::trust
