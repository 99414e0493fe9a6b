// Internal to campaign signing: the honest campaign in the form it is signed in, and the attacks as
// changes to it. sign_campaign builds the honest Draft, lets the attack's mutation change it, signs
// it, then lets the mutation tamper with the signed result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ota/core/trust.hpp"
#include "ota/platform/campaign_signing.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::sim::detail {

// The platform's role keys, made afresh in key_dir for every campaign.
struct Keys {
  trust::PrivateKey root, image, director, director2;
};

// Everything sign_campaign signs, decided before the first signature.
struct Draft {
  explicit Draft(Keys k) : keys(std::move(k)) {}

  Keys keys;
  int64_t now = 0;
  trust::RootSpec root;  // root v1, which the vehicle and its ECUs are provisioned with
  // The vehicle is provisioned with root v2 instead, in which director-2 replaced the director key.
  bool provision_rotated_director = false;
  // Root v2 (root key root-2, director key director-2), signed by the root keys of v1 and v2, and
  // shipped in root_updates; the campaign is then signed by director-2.
  bool rotate_root = false;
  bool rotation_signed_by_old = true;  // false: root v2 carries only its own root key's signature
  bool ship_rotation = true;           // false: root v2 is signed but not shipped
  std::vector<trust::ImageInfo> images;
  trust::VerifiedCampaign director;
  // Signs the director metadata instead of the director key in force.
  std::optional<trust::PrivateKey> director_signer;
};

// An attack: a change to the honest draft before signing and/or to the signed campaign after it.
// Either may be null.
struct Mutation {
  const char* name;  // as parse_attack takes it
  Attack attack;
  Status (*before_signing)(Draft& draft);
  Status (*after_signing)(const v1::Campaign& campaign, v1::SignedCampaign& signed_campaign);
};

// "1.1.0" -> 10100: a comparable number for the image role.
uint64_t version_number(const std::string& v);

// Every attack, one row each.
const std::vector<Mutation>& mutations();
// The row of an attack; null for Attack::kNone.
const Mutation* find_mutation(Attack attack);

}  // namespace ota::sim::detail
