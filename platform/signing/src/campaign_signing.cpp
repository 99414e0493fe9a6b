// The simulated platform's campaign signing: fresh role keys, the provisioned root (and a rotation),
// image and director metadata for the campaign, and the SignedCampaign the cloud ships. An attack
// is a row of attacks.cpp applied to the honest draft built here.
#include "ota/platform/campaign_signing.hpp"

#include <google/protobuf/util/json_util.h>

#include <ctime>
#include <map>

#include "campaign_draft.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::sim {
namespace detail {

uint64_t version_number(const std::string& v) {
  uint64_t parts[3] = {0, 0, 0};
  size_t i = 0, pos = 0;
  while (i < 3 && pos < v.size()) {
    size_t dot = v.find('.', pos);
    parts[i++] = std::stoull(v.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos));
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return parts[0] * 10000 + parts[1] * 100 + parts[2];
}

}  // namespace detail

namespace {

using detail::Draft;
using detail::Keys;
using detail::version_number;

constexpr int64_t kDay = 24 * 3600;

Digest digest_of(const std::string& raw) {
  Digest d{};
  digest_from_bytes(raw, &d);
  return d;
}

Result<trust::PrivateKey> make_key(const std::string& dir, const std::string& name) {
  auto key = trust::PrivateKey::generate();
  if (!key) return key.status();
  OTA_RETURN_IF_ERROR(key->save(dir + "/" + name + ".key"));
  OTA_RETURN_IF_ERROR(key->save_public(dir + "/" + name + ".pub"));
  return *key;
}

Result<Keys> make_keys(const std::string& key_dir) {
  OTA_RETURN_IF_ERROR(make_dirs(key_dir));
  auto root = make_key(key_dir, "root");
  auto image = make_key(key_dir, "image");
  auto director = make_key(key_dir, "director");
  auto director2 = make_key(key_dir, "director-2");
  for (const auto* k : {&root, &image, &director, &director2}) {
    if (!*k) return k->status();
  }
  return Keys{*root, *image, *director, *director2};
}

// The image role's entry for a target: its full payload and, if any, its delta.
trust::ImageInfo image_of(const v1::CampaignTarget& t) {
  trust::ImageInfo img;
  img.name = t.ecu_id() + "-fw";
  img.version = t.version();
  img.version_number = version_number(t.version());
  img.size = t.size();
  img.sha256 = digest_of(t.sha256());
  img.hardware_ids = {t.hardware_id()};
  img.has_full = true;
  img.full.sha256 = digest_of(t.full().sha256());
  img.full.size = t.full().size();
  img.full.encoding = t.full().encoding() == v1::PAYLOAD_ENCODING_RAW ? "raw" : "zstd";
  if (t.has_delta()) {
    trust::DeltaInfo d;
    d.base_version = t.delta().base_version();
    d.base_version_number = version_number(t.delta().base_version());
    d.base_sha256 = digest_of(t.delta().base_sha256());
    d.payload.sha256 = digest_of(t.delta().sha256());
    d.payload.size = t.delta().size();
    d.payload.encoding = "ota-delta";
    img.deltas.push_back(d);
  }
  return img;
}

// The director role's entry for a target, naming its image.
trust::CampaignTarget target_of(const v1::CampaignTarget& t, const trust::ImageInfo& img) {
  trust::CampaignTarget dt;
  dt.ecu_id = t.ecu_id();
  dt.hardware_id = t.hardware_id();
  dt.image_name = img.name;
  dt.version = img.version;
  dt.version_number = img.version_number;
  dt.sha256 = img.sha256;
  dt.size = img.size;
  dt.allow_downgrade = t.allow_downgrade();
  dt.group = t.group();
  dt.clear_dtcs.assign(t.resolves_dtcs().begin(), t.resolves_dtcs().end());
  return dt;
}

// The honest campaign: root v1 naming the three role keys, one image per target, and the director
// metadata for this vehicle, valid for a week.
Draft honest_draft(const v1::Campaign& campaign, Keys keys, uint64_t director_version) {
  Draft d(std::move(keys));
  d.now = static_cast<int64_t>(std::time(nullptr));
  d.root.version = 1;
  d.root.expires = d.now + 365 * kDay;
  d.root.root.public_pems = {d.keys.root.public_pem()};
  d.root.image.public_pems = {d.keys.image.public_pem()};
  d.root.director.public_pems = {d.keys.director.public_pem()};
  trust::VerifiedCampaign& director = d.director;
  director.vin = campaign.vin();
  director.campaign_id = campaign.campaign_id();
  director.version = director_version;
  director.expires = d.now + 7 * kDay;
  director.preconditions.require_parked = campaign.preconditions().require_parked();
  director.preconditions.require_ignition_off = campaign.preconditions().require_ignition_off();
  director.preconditions.min_battery_percent = campaign.preconditions().min_battery_soc_percent();
  director.require_consent = campaign.require_consent();
  for (const auto& g : campaign.groups()) {
    trust::CampaignGroup group;
    group.id = g.group();
    group.order = g.group();
    group.atomic = g.atomic();
    director.groups.push_back(group);
  }
  for (const auto& t : campaign.targets()) {
    d.images.push_back(image_of(t));
    director.targets.push_back(target_of(t, d.images.back()));
  }
  return d;
}

Result<std::string> sign_root(const trust::RootSpec& spec, const std::vector<trust::PrivateKey>& signers) {
  auto body = trust::make_root_body(spec);
  if (!body) return body.status();
  return trust::sign(*body, signers);
}

// The roots as signed: the one the vehicle is provisioned with, the rotation it is sent, and the
// director key the campaign is then signed with.
struct SignedRoots {
  std::string provisioned;
  std::vector<std::string> updates;
  trust::PrivateKey director;
};

Result<SignedRoots> sign_roots(const Draft& d, const std::string& key_dir) {
  auto v1_root = sign_root(d.root, {d.keys.root});
  if (!v1_root) return v1_root.status();
  SignedRoots out{*v1_root, {}, d.keys.director};
  if (d.provision_rotated_director) {
    trust::RootSpec v2 = d.root;
    v2.version = 2;
    v2.director.public_pems = {d.keys.director2.public_pem()};
    auto signed2 = sign_root(v2, {d.keys.root});
    if (!signed2) return signed2.status();
    out.provisioned = *signed2;  // a vehicle that has taken the rotation
    // The rotation must verify against v1 too: both roots are written for the record.
    OTA_RETURN_IF_ERROR(atomic_write_file(key_dir + "/root-v1.signed", *v1_root));
  }
  if (d.rotate_root) {
    // Over the air: root v2 names a new root key and a new director key, which signs the campaign.
    auto root2 = make_key(key_dir, "root-2");
    if (!root2) return root2.status();
    trust::RootSpec v2 = d.root;
    v2.version = 2;
    v2.root.public_pems = {root2->public_pem()};
    v2.director = trust::RoleKeysSpec{{d.keys.director2.public_pem()}, 1};
    std::vector<trust::PrivateKey> signers = {d.keys.root, *root2};
    if (!d.rotation_signed_by_old) signers = {*root2};
    auto signed2 = sign_root(v2, signers);
    if (!signed2) return signed2.status();
    OTA_RETURN_IF_ERROR(atomic_write_file(key_dir + "/root-v2.signed", *signed2));
    if (d.ship_rotation) out.updates.push_back(*signed2);
    out.director = d.keys.director2;
  }
  return out;
}

// The image and director metadata, signed, and where each payload is (full, then delta, per target).
Result<v1::SignedCampaign> sign_metadata(const v1::Campaign& campaign, const Draft& d,
                                         const SignedRoots& roots) {
  v1::SignedCampaign sc;
  for (const auto& t : campaign.targets()) {
    auto* loc = sc.add_payloads();
    loc->set_sha256(t.full().sha256());
    loc->set_uri(t.full().uri());
    if (t.has_delta()) {
      auto* dloc = sc.add_payloads();
      dloc->set_sha256(t.delta().sha256());
      dloc->set_uri(t.delta().uri());
    }
  }
  auto signed_image = trust::sign(trust::make_image_body(1, d.now + 7 * kDay, d.images), {d.keys.image});
  if (!signed_image) return signed_image.status();
  const trust::PrivateKey& director_key = d.director_signer ? *d.director_signer : roots.director;
  auto signed_director = trust::sign(trust::make_director_body(d.director), {director_key});
  if (!signed_director) return signed_director.status();
  sc.set_signed_director(*signed_director);
  sc.set_signed_image(*signed_image);
  sc.set_require_consent(campaign.require_consent());
  sc.set_health_timeout_ms(campaign.health_timeout_ms());
  sc.set_chunk_size(campaign.chunk_size());
  sc.set_window(campaign.window());
  for (const auto& r : roots.updates) sc.add_root_updates(r);
  return sc;
}

Result<std::string> to_json(v1::SignedCampaign& sc, const std::map<std::string, std::string>& locations) {
  for (auto& loc : *sc.mutable_payloads()) {
    auto it = locations.find(loc.uri());
    if (it != locations.end()) loc.set_uri(it->second);
  }
  google::protobuf::util::JsonPrintOptions jo;
  jo.add_whitespace = true;
  jo.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(sc, &json, jo).ok()) {
    return Status(Code::kInternal, "cannot write the signed campaign as JSON");
  }
  return json;
}

}  // namespace

Result<TrustMaterial> sign_campaign(const v1::Campaign& campaign, const std::string& key_dir,
                                    uint64_t director_version, Attack attack,
                                    const std::map<std::string, std::string>& locations, bool rotate_root) {
  auto keys = make_keys(key_dir);
  if (!keys) return keys.status();
  Draft draft = honest_draft(campaign, std::move(*keys), director_version);
  draft.rotate_root = rotate_root;
  const detail::Mutation* mutation = detail::find_mutation(attack);
  if (mutation != nullptr && mutation->before_signing != nullptr) {
    OTA_RETURN_IF_ERROR(mutation->before_signing(draft));
  }
  auto roots = sign_roots(draft, key_dir);
  if (!roots) return roots.status();
  TrustMaterial out;
  out.root_path = key_dir + "/root.signed";
  OTA_RETURN_IF_ERROR(atomic_write_file(out.root_path, roots->provisioned));
  auto sc = sign_metadata(campaign, draft, *roots);
  if (!sc) return sc.status();
  if (mutation != nullptr && mutation->after_signing != nullptr) {
    OTA_RETURN_IF_ERROR(mutation->after_signing(campaign, *sc));
  }
  auto json = to_json(*sc, locations);
  if (!json) return json.status();
  out.signed_campaign_json = std::move(*json);
  return out;
}

}  // namespace ota::sim
