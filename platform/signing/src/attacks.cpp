// The attacks of the simulated platform (docs/SECURITY.md), each a change to an honest campaign:
// what is signed (before_signing) or what reaches the vehicle after signing (after_signing).
#include <algorithm>

#include "campaign_draft.hpp"
#include "ota/core/file.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::sim::detail {
namespace {

// The first target's image and director entry, which the per-target attacks change.
Status first_target(Draft& d, trust::ImageInfo** image, trust::CampaignTarget** target) {
  if (d.images.empty() || d.director.targets.empty())
    return Status(Code::kInvalidArgument, "the attack needs a campaign with at least one target");
  *image = &d.images.front();
  *target = &d.director.targets.front();
  return Status::ok();
}

Status threshold_not_met(Draft& d) {
  // The root wants two director signatures; the campaign carries one.
  d.root.director.public_pems.push_back(d.keys.director2.public_pem());
  d.root.director.threshold = 2;
  return Status::ok();
}

Status revoked_key(Draft& d) {
  // The vehicle has taken root v2, which rotated the director key out; the old key signs anyway.
  d.provision_rotated_director = true;
  d.director_signer = d.keys.director;
  return Status::ok();
}

Status untrusted_key(Draft& d) {
  auto stranger = trust::PrivateKey::generate();
  if (!stranger) return stranger.status();
  d.director_signer = *stranger;
  return Status::ok();
}

Status expired(Draft& d) {
  d.director.expires = d.now - 3600;
  return Status::ok();
}

Status wrong_vin(Draft& d) {
  d.director.vin = "OTHERVIN000000000";
  return Status::ok();
}

Status wrong_hardware(Draft& d) {
  trust::ImageInfo* img;
  trust::CampaignTarget* target;
  OTA_RETURN_IF_ERROR(first_target(d, &img, &target));
  img->hardware_ids = {"other-hw"};
  target->hardware_id = "other-hw";
  return Status::ok();
}

Status mix_and_match(Draft& d) {
  trust::ImageInfo* img;
  trust::CampaignTarget* target;
  OTA_RETURN_IF_ERROR(first_target(d, &img, &target));
  target->sha256[0] ^= 0xff;  // an image from another campaign
  return Status::ok();
}

Status rollback(Draft& d) {
  // An older image, properly signed, offered without allow_downgrade.
  trust::ImageInfo* img;
  trust::CampaignTarget* target;
  OTA_RETURN_IF_ERROR(first_target(d, &img, &target));
  img->version = target->version = "0.9.0";
  img->version_number = target->version_number = version_number("0.9.0");
  return Status::ok();
}

Status oversized(Draft& d) {
  // Endless data: thousands of bogus images push the image metadata past its size cap.
  if (d.images.empty()) return Status(Code::kInvalidArgument, "the attack needs a campaign with a target");
  const trust::ImageInfo model = d.images.front();
  for (int i = 0; i < 20000; ++i) {
    trust::ImageInfo junk = model;
    junk.name = "padding-" + std::to_string(i) + std::string(64, 'x');
    junk.hardware_ids.assign(4, std::string(48, 'h'));
    d.images.push_back(std::move(junk));
  }
  return Status::ok();
}

Status rotation_unsigned_by_old(Draft& d) {
  d.rotate_root = true;
  d.rotation_signed_by_old = false;
  return Status::ok();
}

Status rotation_withheld(Draft& d) {
  d.rotate_root = true;
  d.ship_rotation = false;
  return Status::ok();
}

Status require_consent(Draft& d) {
  d.director.require_consent = true;
  return Status::ok();
}

// A relay skips the owner's consent by clearing the flag outside the signatures.
Status clear_consent(const v1::Campaign&, v1::SignedCampaign& sc) {
  sc.set_require_consent(false);
  return Status::ok();
}

Status bad_signature(const v1::Campaign&, v1::SignedCampaign& sc) {
  v1::SignedMetadata m;
  if (!m.ParseFromString(sc.signed_director()) || m.signatures_size() == 0) {
    return Status(Code::kInternal, "cannot tamper with the director signature");
  }
  std::string sig = m.signatures(0).sig();
  sig[sig.size() / 2] ^= 0x5a;
  m.mutable_signatures(0)->set_sig(sig);
  sc.set_signed_director(m.SerializeAsString());
  return Status::ok();
}

// Payload tampering after signing: the bytes on the "download server" no longer match.
Status alter_first_payload(const v1::Campaign& campaign, bool truncate) {
  if (campaign.targets_size() == 0) return Status(Code::kInvalidArgument, "the campaign has no payload");
  const std::string path = campaign.targets(0).full().uri();
  auto content = read_small_file(path, SIZE_MAX);
  if (!content) return content.status();
  std::string bytes = *content;
  if (truncate) {
    bytes.resize(bytes.size() / 2);
  } else {
    bytes[bytes.size() / 3] ^= 0x01;
  }
  return atomic_write_file(path, bytes);
}

Status corrupt_payload(const v1::Campaign& campaign, v1::SignedCampaign&) {
  return alter_first_payload(campaign, false);
}

Status truncated_payload(const v1::Campaign& campaign, v1::SignedCampaign&) {
  return alter_first_payload(campaign, true);
}

}  // namespace

const std::vector<Mutation>& mutations() {
  static const std::vector<Mutation> table = {
      {"bad-signature", Attack::kBadSignature, nullptr, bad_signature},
      {"untrusted-key", Attack::kUntrustedKey, untrusted_key, nullptr},
      {"threshold", Attack::kThresholdNotMet, threshold_not_met, nullptr},
      {"revoked-key", Attack::kRevokedKey, revoked_key, nullptr},
      {"expired", Attack::kExpired, expired, nullptr},
      {"wrong-vin", Attack::kWrongVin, wrong_vin, nullptr},
      {"wrong-hardware", Attack::kWrongHardware, wrong_hardware, nullptr},
      {"mix-and-match", Attack::kMixAndMatch, mix_and_match, nullptr},
      {"rollback", Attack::kRollback, rollback, nullptr},
      {"oversized", Attack::kOversized, oversized, nullptr},
      {"corrupt-payload", Attack::kCorruptPayload, nullptr, corrupt_payload},
      {"truncated-payload", Attack::kTruncatedPayload, nullptr, truncated_payload},
      {"rotation-unsigned-by-old", Attack::kRotationUnsignedByOld, rotation_unsigned_by_old, nullptr},
      {"rotation-withheld", Attack::kRotationWithheld, rotation_withheld, nullptr},
      {"consent-cleared", Attack::kConsentCleared, require_consent, clear_consent},
  };
  return table;
}

const Mutation* find_mutation(Attack attack) {
  for (const auto& m : mutations()) {
    if (m.attack == attack) return &m;
  }
  return nullptr;
}

}  // namespace ota::sim::detail

namespace ota::sim {

bool parse_attack(const std::string& name, Attack* out) {
  if (name.empty() || name == "none") {
    *out = Attack::kNone;
    return true;
  }
  for (const auto& m : detail::mutations()) {
    if (name == m.name) {
      *out = m.attack;
      return true;
    }
  }
  return false;
}

std::vector<std::string> attack_names() {
  std::vector<std::string> names;
  for (const auto& m : detail::mutations()) names.push_back(m.name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace ota::sim
