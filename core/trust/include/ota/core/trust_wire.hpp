// Binding the wire protocol (ota.v1.Campaign from the cloud, ota.v1.Target in StartTransfer) to the
// verified, signed metadata. The wire messages are convenient to execute, but they are not signed:
// every field that decides what gets flashed must agree with the signed campaign, or the update is
// refused. Internal to the project, like codec.hpp (exposes protobuf types).
#pragma once

#include "ota/core/status.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::trust {

// The fields of a campaign no signature covers (SignedCampaign's own, copied into ota.v1.Campaign)
// are bounded instead: 0 is the default, anything else must lie within these.
inline constexpr uint32_t kMinHealthTimeoutMs = 1000;    // a shorter check fails every healthy ECU
inline constexpr uint32_t kMaxHealthTimeoutMs = 600000;  // 10 minutes
inline constexpr uint32_t kMinChunkSize = 1024;
inline constexpr uint32_t kMaxChunkSize = 512 * 1024;  // the protocol's limit (codec::kMaxChunkSize)
inline constexpr uint32_t kMaxWindow = 64;

// Client side, after TrustStore::verify_campaign: kRejected, naming the ECU and field, unless
//  - VIN and campaign id are the signed ones;
//  - the wire campaign has exactly the signed set of ECUs;
//  - per ECU: version, size and sha256 equal the signed target; the full payload's size and sha256
//    equal the signed image's full payload (when the image metadata lists one); a delta payload
//    matches one of the signed deltas (base sha256, payload size and sha256); group equals the
//    signed group; allow_downgrade is not set unless signed; resolves_dtcs are among the signed ones;
//  - every group that is atomic in the signed campaign is atomic on the wire;
//  - wire pre-conditions are at least as strict as the signed ones;
//  - require_consent equals the signed one when the director metadata carries it (not checked
//    when it does not: the caller decides, and the client's trust gate then asks for consent);
//  - the unsigned fields are bounded: health_timeout_ms, chunk_size and window 0 or within the
//    bounds above, at most Limits::max_root_updates root_updates.
Status check_campaign_matches(const ota::v1::Campaign& wire, const VerifiedCampaign& signed_campaign);

// Agent side, after AgentVerifier::verify_target on Target.signed_target: kRejected unless the
// wire Target's version, size, sha256 (and hardware id if set) equal the signed target, and
// allow_downgrade is not set unless signed. When the image metadata was verified too
// (image_verified), the payload is bound to it before a byte is applied: a DELTA payload's base
// SHA-256, size and SHA-256 must be those of one of the image's signed deltas, and a RAW payload
// must be the image itself (payload size and SHA-256 equal the signed target's).
Status check_target_matches(const ota::v1::Target& wire, const AgentTarget& signed_target);

// A root rotation chain (SignedCampaign.root_updates, StartTransfer.root_updates), oldest first,
// walked by the client's store and by each agent the same way: kRejected, before any is verified,
// when it holds more than limits.max_root_updates roots or its claimed versions do not strictly
// increase; then the roots at or below the version in force are skipped (nothing is trusted from
// them) and each other one goes through update_root (version + 1, thresholds of the old and the new
// root keys), in order. The first failure is returned, as "root update: ..."; the roots accepted
// before it stay accepted (the store persists each; an agent persists signed_root() when
// root_version() moved, whatever this returns).
Status apply_root_updates(const google::protobuf::RepeatedPtrField<std::string>& chain, TrustStore& store,
                          const Limits& limits = {});
Status apply_root_updates(const google::protobuf::RepeatedPtrField<std::string>& chain,
                          AgentVerifier& verifier, const Limits& limits = {});

}  // namespace ota::trust
