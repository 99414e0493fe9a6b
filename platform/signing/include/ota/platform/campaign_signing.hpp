// The simulated OTA platform's signing, for ota-sim and the attack suite: keys for the root, image
// and director roles, the root the vehicle is provisioned with, and a SignedCampaign for a plain
// campaign description. Attacks (docs/SECURITY.md) tamper with what is signed or how, so that tests
// can show each is refused; each is one row of a table of changes to the honest campaign
// (platform/signing/src/attacks.cpp). Namespace ota::sim: it signs as the simulated platform does,
// with keys made afresh for every campaign.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::sim {

// What the attack changes. kNone signs honestly.
enum class Attack {
  kNone,
  kBadSignature,           // director signature bytes altered (arbitrary software)
  kUntrustedKey,           // director metadata signed by a key the root does not name
  kThresholdNotMet,        // the root wants 2 director signatures; only 1 is given
  kRevokedKey,             // director key rotated out by root v2; the campaign is signed by the old key
  kExpired,                // director metadata expired an hour ago
  kWrongVin,               // campaign for another vehicle
  kWrongHardware,          // a target for a hardware id the ECU does not have
  kMixAndMatch,            // director names an image hash the image metadata does not have
  kRollback,               // target version older than the active one, downgrade not allowed
  kOversized,              // image metadata padded beyond the size cap (endless data)
  kCorruptPayload,         // a payload file altered after signing
  kTruncatedPayload,       // a payload file cut short after signing
  kRotationUnsignedByOld,  // root v2 shipped in root_updates is signed only by its own (new) root key
  kRotationWithheld,       // the campaign is signed with the keys of root v2, which is not shipped
  kConsentCleared,         // consent required in the signed metadata, the unsigned flag cleared after
};

// Parses "bad-signature", "untrusted-key", "threshold", "revoked-key", "expired", "wrong-vin",
// "wrong-hardware", "mix-and-match", "rollback", "oversized", "corrupt-payload", "truncated-payload",
// "rotation-unsigned-by-old", "rotation-withheld", "consent-cleared".
bool parse_attack(const std::string& name, Attack* out);
std::vector<std::string> attack_names();

struct TrustMaterial {
  std::string root_path;  // provisioned root (v1, or v2 after a rotation) for client and agents
  std::string signed_campaign_json;
};

// Makes keys in key_dir, the root, and signs `campaign` (its targets, payload locations, groups and
// pre-conditions) into a SignedCampaign, applying `attack`. director_version is the campaign counter.
// `locations` renames payload uris in the SignedCampaign (e.g. a local path to cloud://name); payloads
// not in it keep their uri.
// rotate_root (also implied by the rotation attacks): the platform rotates its root to version 2 (a new
// root key, root-2, and a new director key, director-2; signed by the root keys of v1 and v2), signs
// the campaign with the new director key and ships root v2 in SignedCampaign.root_updates
// (key_dir/root-v2.signed). The vehicle and the ECUs are still provisioned with root v1.
// Errors: those of key generation, signing and file writing; kInvalidArgument for an attack on a
// target or payload asked of a campaign without targets.
Result<TrustMaterial> sign_campaign(const v1::Campaign& campaign, const std::string& key_dir,
                                    uint64_t director_version, Attack attack,
                                    const std::map<std::string, std::string>& locations = {},
                                    bool rotate_root = false);

}  // namespace ota::sim
