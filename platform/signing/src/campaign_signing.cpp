#include "ota/platform/campaign_signing.hpp"

#include <google/protobuf/util/json_util.h>

#include <ctime>
#include <map>

#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::sim {
namespace {

const std::map<std::string, Attack>& attack_table() {
  static const std::map<std::string, Attack> table = {
      {"bad-signature", Attack::kBadSignature},
      {"untrusted-key", Attack::kUntrustedKey},
      {"threshold", Attack::kThresholdNotMet},
      {"revoked-key", Attack::kRevokedKey},
      {"expired", Attack::kExpired},
      {"wrong-vin", Attack::kWrongVin},
      {"wrong-hardware", Attack::kWrongHardware},
      {"mix-and-match", Attack::kMixAndMatch},
      {"rollback", Attack::kRollback},
      {"oversized", Attack::kOversized},
      {"corrupt-payload", Attack::kCorruptPayload},
      {"truncated-payload", Attack::kTruncatedPayload},
      {"rotation-unsigned-by-old", Attack::kRotationUnsignedByOld},
      {"rotation-withheld", Attack::kRotationWithheld},
  };
  return table;
}

Digest digest_of(const std::string& raw) {
  Digest d{};
  digest_from_bytes(raw, &d);
  return d;
}

// "1.1.0" -> 10100: a comparable number for the image role.
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

Result<trust::PrivateKey> make_key(const std::string& dir, const std::string& name) {
  auto key = trust::PrivateKey::generate();
  if (!key) return key.status();
  OTA_RETURN_IF_ERROR(key->save(dir + "/" + name + ".key"));
  OTA_RETURN_IF_ERROR(key->save_public(dir + "/" + name + ".pub"));
  return *key;
}

}  // namespace

bool parse_attack(const std::string& name, Attack* out) {
  if (name.empty() || name == "none") {
    *out = Attack::kNone;
    return true;
  }
  auto it = attack_table().find(name);
  if (it == attack_table().end()) return false;
  *out = it->second;
  return true;
}

std::vector<std::string> attack_names() {
  std::vector<std::string> names;
  for (const auto& [name, attack] : attack_table()) names.push_back(name);
  return names;
}

Result<TrustMaterial> sign_campaign(const v1::Campaign& campaign, const std::string& key_dir,
                                    uint64_t director_version, Attack attack,
                                    const std::map<std::string, std::string>& locations, bool rotate_root) {
  OTA_RETURN_IF_ERROR(make_dirs(key_dir));
  auto root_key = make_key(key_dir, "root");
  auto image_key = make_key(key_dir, "image");
  auto director_key = make_key(key_dir, "director");
  auto director_key2 = make_key(key_dir, "director-2");
  for (const auto* k : {&root_key, &image_key, &director_key, &director_key2}) {
    if (!*k) return k->status();
  }
  const int64_t now = static_cast<int64_t>(std::time(nullptr));

  // Root v1 names the role keys; the threshold attack asks for two director signatures.
  trust::RootSpec root;
  root.version = 1;
  root.expires = now + 365 * 24 * 3600;
  root.root.public_pems = {root_key->public_pem()};
  root.image.public_pems = {image_key->public_pem()};
  root.director.public_pems = {director_key->public_pem()};
  if (attack == Attack::kThresholdNotMet) {
    root.director.public_pems.push_back(director_key2->public_pem());
    root.director.threshold = 2;
  }
  auto root_body = trust::make_root_body(root);
  if (!root_body) return root_body.status();
  auto signed_root = trust::sign(*root_body, {*root_key});
  if (!signed_root) return signed_root.status();
  std::string provisioned = *signed_root;
  if (attack == Attack::kRevokedKey) {
    // Root v2 rotates the director key: the old one is revoked, yet signs the campaign below.
    trust::RootSpec v2 = root;
    v2.version = 2;
    v2.director.public_pems = {director_key2->public_pem()};
    auto body2 = trust::make_root_body(v2);
    if (!body2) return body2.status();
    auto signed2 = trust::sign(*body2, {*root_key});
    if (!signed2) return signed2.status();
    provisioned = *signed2;  // a vehicle that has taken the rotation
    // The rotation must verify against v1 too: both roots are written for the record.
    OTA_RETURN_IF_ERROR(atomic_write_file(key_dir + "/root-v1.signed", *signed_root));
  }
  // Over-the-air rotation: root v2 names a new root key and a new director key; the campaign below is
  // signed by the new director key, and the vehicle (provisioned with v1) gets v2 in root_updates.
  trust::PrivateKey campaign_director = *director_key;
  std::vector<std::string> root_updates;
  if (rotate_root || attack == Attack::kRotationUnsignedByOld || attack == Attack::kRotationWithheld) {
    auto root_key2 = make_key(key_dir, "root-2");
    if (!root_key2) return root_key2.status();
    trust::RootSpec v2 = root;
    v2.version = 2;
    v2.root.public_pems = {root_key2->public_pem()};
    v2.director = trust::RoleKeysSpec{{director_key2->public_pem()}, 1};
    auto body2 = trust::make_root_body(v2);
    if (!body2) return body2.status();
    // Honest: a threshold of the v1 root keys and of the v2 root keys. The attack: only the new key.
    std::vector<trust::PrivateKey> signers = {*root_key, *root_key2};
    if (attack == Attack::kRotationUnsignedByOld) signers = {*root_key2};
    auto signed2 = trust::sign(*body2, signers);
    if (!signed2) return signed2.status();
    OTA_RETURN_IF_ERROR(atomic_write_file(key_dir + "/root-v2.signed", *signed2));
    if (attack != Attack::kRotationWithheld) root_updates.push_back(*signed2);
    campaign_director = *director_key2;
  }
  TrustMaterial out;
  out.root_path = key_dir + "/root.signed";
  OTA_RETURN_IF_ERROR(atomic_write_file(out.root_path, provisioned));

  // Image metadata: one image per target, with its full payload and delta.
  std::vector<trust::ImageInfo> images;
  trust::VerifiedCampaign director;
  director.vin = attack == Attack::kWrongVin ? "OTHERVIN000000000" : campaign.vin();
  director.campaign_id = campaign.campaign_id();
  director.version = director_version;
  director.expires = attack == Attack::kExpired ? now - 3600 : now + 7 * 24 * 3600;
  director.preconditions.require_parked = campaign.preconditions().require_parked();
  director.preconditions.require_ignition_off = campaign.preconditions().require_ignition_off();
  director.preconditions.min_battery_percent = campaign.preconditions().min_battery_soc_percent();
  for (const auto& g : campaign.groups()) {
    trust::CampaignGroup group;
    group.id = g.group();
    group.order = g.group();
    group.atomic = g.atomic();
    director.groups.push_back(group);
  }
  v1::SignedCampaign sc;
  for (const auto& t : campaign.targets()) {
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
    auto* loc = sc.add_payloads();
    loc->set_sha256(t.full().sha256());
    loc->set_uri(t.full().uri());
    if (t.has_delta()) {
      trust::DeltaInfo d;
      d.base_version = t.delta().base_version();
      d.base_version_number = version_number(t.delta().base_version());
      d.base_sha256 = digest_of(t.delta().base_sha256());
      d.payload.sha256 = digest_of(t.delta().sha256());
      d.payload.size = t.delta().size();
      d.payload.encoding = "ota-delta";
      img.deltas.push_back(d);
      auto* dloc = sc.add_payloads();
      dloc->set_sha256(t.delta().sha256());
      dloc->set_uri(t.delta().uri());
    }
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
    const bool first = director.targets.empty();
    if (first && attack == Attack::kRollback) {
      // An older image, properly signed, offered without allow_downgrade.
      img.version = dt.version = "0.9.0";
      img.version_number = dt.version_number = version_number("0.9.0");
    }
    if (first && attack == Attack::kWrongHardware) {
      img.hardware_ids = {"other-hw"};
      dt.hardware_id = "other-hw";
    }
    if (first && attack == Attack::kMixAndMatch) dt.sha256[0] ^= 0xff;  // an image from another campaign
    images.push_back(img);
    director.targets.push_back(dt);
  }
  if (attack == Attack::kOversized) {
    // Endless data: thousands of bogus images push the metadata past its size cap.
    for (int i = 0; i < 20000; ++i) {
      trust::ImageInfo junk = images.front();
      junk.name = "padding-" + std::to_string(i) + std::string(64, 'x');
      junk.hardware_ids.assign(4, std::string(48, 'h'));
      images.push_back(junk);
    }
  }
  std::string image_body = trust::make_image_body(1, now + 7 * 24 * 3600, images);
  auto signed_image = trust::sign(image_body, {*image_key});
  if (!signed_image) return signed_image.status();
  std::string director_body = trust::make_director_body(director);
  Result<std::string> signed_director = Status();
  switch (attack) {
    case Attack::kUntrustedKey: {
      auto stranger = trust::PrivateKey::generate();
      if (!stranger) return stranger.status();
      signed_director = trust::sign(director_body, {*stranger});
      break;
    }
    case Attack::kRevokedKey:
      signed_director = trust::sign(director_body, {*director_key});  // the revoked one
      break;
    default:
      signed_director = trust::sign(director_body, {campaign_director});
  }
  if (!signed_director) return signed_director.status();
  std::string director_bytes = *signed_director;
  if (attack == Attack::kBadSignature) {
    v1::SignedMetadata m;
    if (!m.ParseFromString(director_bytes) || m.signatures_size() == 0) {
      return Status(Code::kInternal, "cannot tamper with the director signature");
    }
    std::string sig = m.signatures(0).sig();
    sig[sig.size() / 2] ^= 0x5a;
    m.mutable_signatures(0)->set_sig(sig);
    director_bytes = m.SerializeAsString();
  }
  sc.set_signed_director(director_bytes);
  sc.set_signed_image(*signed_image);
  sc.set_require_consent(campaign.require_consent());
  sc.set_health_timeout_ms(campaign.health_timeout_ms());
  sc.set_chunk_size(campaign.chunk_size());
  sc.set_window(campaign.window());
  for (const auto& r : root_updates) sc.add_root_updates(r);

  // Payload tampering after signing: the bytes on the "download server" no longer match.
  if (attack == Attack::kCorruptPayload || attack == Attack::kTruncatedPayload) {
    const std::string path = campaign.targets(0).full().uri();
    auto content = read_small_file(path, SIZE_MAX);
    if (!content) return content.status();
    std::string bytes = *content;
    if (attack == Attack::kCorruptPayload) {
      bytes[bytes.size() / 3] ^= 0x01;
    } else {
      bytes.resize(bytes.size() / 2);
    }
    OTA_RETURN_IF_ERROR(atomic_write_file(path, bytes));
  }

  for (auto& loc : *sc.mutable_payloads()) {
    auto it = locations.find(loc.uri());
    if (it != locations.end()) loc.set_uri(it->second);
  }
  google::protobuf::util::JsonPrintOptions jo;
  jo.add_whitespace = true;
  jo.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(sc, &out.signed_campaign_json, jo).ok()) {
    return Status(Code::kInternal, "cannot write the signed campaign as JSON");
  }
  return out;
}

}  // namespace ota::sim
