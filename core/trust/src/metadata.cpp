// Decoding and structural checks of signed metadata, signature thresholds, and the image/target
// matching rules. Everything here takes untrusted bytes.
#include <algorithm>
#include <cstdint>
#include <set>

#include "internal.hpp"
#include "ota/core/topics.hpp"

namespace ota::trust {

namespace v1 = ::ota::v1;

const ImageInfo* VerifiedImages::find(const std::string& name, uint64_t version_number) const {
  for (const auto& img : images)
    if (img.name == name && img.version_number == version_number) return &img;
  return nullptr;
}

namespace detail {

namespace {

// Strings from untrusted metadata are echoed into messages: bound them.
std::string quote(const std::string& s) {
  if (s.size() <= 64) return "\"" + s + "\"";
  return "\"" + s.substr(0, 64) + "...\"";
}

Status decode_role(const v1::RoleKeys& rk, const std::map<std::string, PublicKey>& all,
                   const std::string& name, RoleSpec* out) {
  out->name = name;
  if (rk.key_ids_size() == 0)
    return make_error(Code::kCorrupt, "root metadata: role " + name + " has no keys");
  for (const auto& id : rk.key_ids()) {
    auto it = all.find(id);
    if (it == all.end())
      return make_error(Code::kCorrupt, "root metadata: role " + name + " names unknown key " + short_id(id));
    if (!out->keys.emplace(id, it->second).second)
      return make_error(Code::kCorrupt,
                        "root metadata: role " + name + " lists key " + short_id(id) + " twice");
  }
  if (rk.threshold() == 0 || rk.threshold() > out->keys.size())
    return make_error(Code::kCorrupt, "root metadata: role " + name + " threshold " +
                                          std::to_string(rk.threshold()) + " is not within 1.." +
                                          std::to_string(out->keys.size()));
  out->threshold = rk.threshold();
  return Status::ok();
}

Status decode_payload(const v1::Payload& p, const Limits& limits, const std::string& what, PayloadInfo* out) {
  if (!to_digest(p.sha256(), &out->sha256))
    return make_error(Code::kCorrupt, what + ": sha256 is not 32 bytes");
  if (p.size() > limits.max_image_size)
    return make_error(Code::kRejected, what + ": size " + std::to_string(p.size()) + " is above the cap " +
                                           std::to_string(limits.max_image_size) + " (endless data)");
  if (p.encoding().size() > 64) return make_error(Code::kCorrupt, what + ": encoding name too long");
  out->size = p.size();
  out->encoding = p.encoding();
  return Status::ok();
}

}  // namespace

Result<v1::SignedMetadata> parse_envelope(std::string_view bytes, size_t cap, const Limits& limits,
                                          const std::string& what) {
  if (bytes.size() > cap)
    return make_error(Code::kRejected, what + " is " + std::to_string(bytes.size()) +
                                           " bytes, above the cap of " + std::to_string(cap) +
                                           " (endless data)");
  if (bytes.empty()) return make_error(Code::kCorrupt, what + " is empty");
  v1::SignedMetadata env;
  if (!env.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error(Code::kCorrupt, what + ": cannot decode SignedMetadata");
  if (static_cast<size_t>(env.signatures_size()) > limits.max_signatures)
    return make_error(Code::kRejected, what + ": " + std::to_string(env.signatures_size()) +
                                           " signatures, at most " + std::to_string(limits.max_signatures) +
                                           " accepted");
  if (env.signatures_size() == 0) return make_error(Code::kSignatureInvalid, what + ": unsigned");
  return env;
}

Status check_threshold(const v1::SignedMetadata& env, const RoleSpec& role, const std::string& what) {
  // A role without a threshold would accept anything: never let that happen silently.
  if (role.threshold == 0 || role.keys.empty())
    return make_error(Code::kInternal, what + ": no " + role.name + " keys configured");
  std::set<std::string> valid;
  std::vector<std::string> reasons;
  for (const auto& s : env.signatures()) {
    if (valid.size() >= role.threshold) break;  // enough: spare the CPU
    const std::string& id = s.key_id();
    if (valid.count(id)) {
      reasons.push_back("duplicate signature by key " + short_id(id) + " counted once");
      continue;
    }
    if (role.revoked.count(id) && !role.keys.count(id)) {
      reasons.push_back("key " + short_id(id) + " is revoked");
      continue;
    }
    auto it = role.keys.find(id);
    if (it == role.keys.end()) {
      reasons.push_back("key " + short_id(id) + " is not a " + role.name + " key");
      continue;
    }
    if (!it->second.verify(env.body(), s.sig())) {
      reasons.push_back("signature by key " + short_id(id) + " is invalid");
      continue;
    }
    valid.insert(id);
  }
  if (valid.size() >= role.threshold) return Status::ok();
  std::string msg = what + ": signature threshold not met (" + std::to_string(valid.size()) + " of " +
                    std::to_string(role.threshold) + " valid)";
  // Bounded by max_signatures, so the message stays small.
  for (const auto& r : reasons) msg += "; " + r;
  return make_error(Code::kSignatureInvalid, msg);
}

bool parse_counter(std::string_view text, uint64_t* version, Digest* sha, bool* done) {
  // Exactly "<decimal> <64 hex> <0|1>" with an optional trailing newline.
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  size_t sp1 = text.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp1 > 20) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < sp1; ++i) {
    char c = text[i];
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  std::string_view rest = text.substr(sp1 + 1);
  if (rest.size() != 64 + 2 || rest[64] != ' ' || (rest[65] != '0' && rest[65] != '1')) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    int hi = nib(rest[2 * i]), lo = nib(rest[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*sha)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *version = v;
  *done = rest[65] == '1';
  return true;
}

Status check_expiry(int64_t expires, int64_t now, const std::string& what) {
  if (expires <= now)
    return make_error(Code::kRejected, what + " expired at " + format_time(expires) + " (trusted time is " +
                                           format_time(now) + ")");
  return Status::ok();
}

Result<RootInfo> decode_root(std::string_view body, const Limits& limits) {
  v1::RootMetadata m;
  if (!m.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return make_error(Code::kCorrupt, "root metadata: cannot decode body");
  if (m.type() != v1::METADATA_TYPE_ROOT)
    return make_error(Code::kCorrupt, "root metadata: body is not a root");
  if (m.version() == 0) return make_error(Code::kCorrupt, "root metadata: version 0");
  if (static_cast<size_t>(m.keys_size()) > limits.max_keys)
    return make_error(Code::kRejected, "root metadata: " + std::to_string(m.keys_size()) + " keys, at most " +
                                           std::to_string(limits.max_keys));
  std::map<std::string, PublicKey> all;
  for (const auto& k : m.keys()) {
    auto pk = PublicKey::from_pem(k.public_pem());
    if (!pk) return pk.status().with_context("root metadata: key " + short_id(k.key_id()));
    // The id is recomputed, never trusted: a root cannot alias one key under two ids.
    if (pk->key_id() != k.key_id())
      return make_error(Code::kCorrupt, "root metadata: key id " + short_id(k.key_id()) +
                                            " does not match its public key (" + short_id(pk->key_id()) +
                                            ")");
    if (!all.emplace(k.key_id(), *pk).second)
      return make_error(Code::kCorrupt, "root metadata: key " + short_id(k.key_id()) + " listed twice");
  }
  RootInfo r;
  r.version = m.version();
  r.expires = m.expires();
  OTA_RETURN_IF_ERROR(decode_role(m.root(), all, "root", &r.root));
  OTA_RETURN_IF_ERROR(decode_role(m.image(), all, "image", &r.image));
  OTA_RETURN_IF_ERROR(decode_role(m.director(), all, "director", &r.director));
  return r;
}

Result<RootInfo> verify_self_signed_root(std::string_view signed_root, const Limits& limits) {
  auto env = parse_envelope(signed_root, limits.max_root_bytes, limits, "root metadata");
  if (!env) return env.status();
  auto root = decode_root(env->body(), limits);
  if (!root) return root.status();
  OTA_RETURN_IF_ERROR(check_threshold(
      *env, root->root, "root metadata v" + std::to_string(root->version) + " (own root keys)"));
  return root;
}

Result<RootInfo> verify_root_rotation(const RootInfo& current, std::string_view signed_root,
                                      const Limits& limits) {
  auto env = parse_envelope(signed_root, limits.max_root_bytes, limits, "root metadata");
  if (!env) return env.status();
  auto next = decode_root(env->body(), limits);
  if (!next) return next.status();
  const std::string what = "root metadata v" + std::to_string(next->version);
  if (next->version <= current.version)
    return make_error(Code::kRejected, what + ": version counter " + std::to_string(next->version) +
                                           " is not above " + std::to_string(current.version) +
                                           " (rollback or replay)");
  if (next->version != current.version + 1)
    return make_error(Code::kRejected, what + " does not follow v" + std::to_string(current.version) +
                                           ": apply each root version in order");
  OTA_RETURN_IF_ERROR(check_threshold(*env, current.root, what + " (previous root keys)"));
  OTA_RETURN_IF_ERROR(check_threshold(*env, next->root, what + " (new root keys)"));
  return next;
}

Result<VerifiedImages> decode_image(std::string_view body, const Limits& limits) {
  v1::ImageMetadata m;
  if (!m.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return make_error(Code::kCorrupt, "image metadata: cannot decode body");
  if (m.type() != v1::METADATA_TYPE_IMAGE)
    return make_error(Code::kCorrupt, "image metadata: body is not image metadata");
  if (m.version() == 0) return make_error(Code::kCorrupt, "image metadata: version 0");
  if (static_cast<size_t>(m.images_size()) > limits.max_targets)
    return make_error(Code::kRejected, "image metadata: " + std::to_string(m.images_size()) +
                                           " images, at most " + std::to_string(limits.max_targets));
  VerifiedImages out;
  out.version = m.version();
  out.expires = m.expires();
  out.images.reserve(static_cast<size_t>(m.images_size()));
  std::set<std::pair<std::string, uint64_t>> seen;
  for (const auto& t : m.images()) {
    const std::string what =
        "image metadata: image " + quote(t.name()) + " v" + std::to_string(t.version_number());
    if (t.name().empty() || t.name().size() > 256) return make_error(Code::kCorrupt, what + ": bad name");
    if (t.version().size() > 256) return make_error(Code::kCorrupt, what + ": version string too long");
    if (!seen.emplace(t.name(), t.version_number()).second)
      return make_error(Code::kCorrupt, what + ": listed twice");
    ImageInfo img;
    img.name = t.name();
    img.version = t.version();
    img.version_number = t.version_number();
    if (!to_digest(t.sha256(), &img.sha256))
      return make_error(Code::kCorrupt, what + ": sha256 is not 32 bytes");
    if (t.size() > limits.max_image_size)
      return make_error(Code::kRejected, what + ": size " + std::to_string(t.size()) + " is above the cap " +
                                             std::to_string(limits.max_image_size) + " (endless data)");
    img.size = t.size();
    if (t.hardware_ids_size() == 0) return make_error(Code::kCorrupt, what + ": no hardware ids");
    if (static_cast<size_t>(t.hardware_ids_size()) > limits.max_targets)
      return make_error(Code::kRejected, what + ": too many hardware ids");
    img.hardware_ids.assign(t.hardware_ids().begin(), t.hardware_ids().end());
    if (t.has_full()) {
      img.has_full = true;
      OTA_RETURN_IF_ERROR(decode_payload(t.full(), limits, what + ": full payload", &img.full));
    }
    if (static_cast<size_t>(t.deltas_size()) > limits.max_targets)
      return make_error(Code::kRejected, what + ": too many deltas");
    for (const auto& d : t.deltas()) {
      DeltaInfo di;
      const std::string dw = what + ": delta from v" + std::to_string(d.base_version_number());
      di.base_version = d.base_version().substr(0, 256);
      di.base_version_number = d.base_version_number();
      if (!to_digest(d.base_sha256(), &di.base_sha256))
        return make_error(Code::kCorrupt, dw + ": base sha256 is not 32 bytes");
      if (d.base_size() > limits.max_image_size)
        return make_error(Code::kRejected, dw + ": base size above the cap");
      di.base_size = d.base_size();
      OTA_RETURN_IF_ERROR(decode_payload(d.payload(), limits, dw, &di.payload));
      img.deltas.push_back(std::move(di));
    }
    out.images.push_back(std::move(img));
  }
  return out;
}

Result<DirectorInfo> decode_director(std::string_view body, const Limits& limits) {
  v1::DirectorMetadata m;
  if (!m.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return make_error(Code::kCorrupt, "director metadata: cannot decode body");
  if (m.type() != v1::METADATA_TYPE_DIRECTOR)
    return make_error(Code::kCorrupt, "director metadata: body is not director metadata");
  if (m.version() == 0) return make_error(Code::kCorrupt, "director metadata: version 0");
  if (m.vin().empty() || m.vin().size() > 64) return make_error(Code::kCorrupt, "director metadata: bad VIN");
  if (m.campaign_id().size() > 256)
    return make_error(Code::kCorrupt, "director metadata: campaign id too long");
  if (m.targets_size() == 0) return make_error(Code::kCorrupt, "director metadata: no targets");
  if (static_cast<size_t>(m.targets_size()) > limits.max_targets ||
      static_cast<size_t>(m.groups_size()) > limits.max_targets)
    return make_error(Code::kRejected, "director metadata: " + std::to_string(m.targets_size()) +
                                           " targets / " + std::to_string(m.groups_size()) +
                                           " groups, at most " + std::to_string(limits.max_targets));
  DirectorInfo out;
  VerifiedCampaign& c = out.campaign;
  c.vin = m.vin();
  c.campaign_id = m.campaign_id();
  c.version = m.version();
  c.expires = m.expires();
  c.preconditions.require_parked = m.preconditions().require_parked();
  c.preconditions.require_ignition_off = m.preconditions().require_ignition_off();
  c.preconditions.min_battery_percent = m.preconditions().min_battery_percent();
  if (m.has_require_consent()) c.require_consent = m.require_consent();
  if (c.preconditions.min_battery_percent > 100)
    return make_error(Code::kCorrupt, "director metadata: battery threshold above 100%");

  std::map<uint32_t, CampaignGroup> groups;
  for (const auto& g : m.groups()) {
    CampaignGroup cg{g.id(), g.order(), g.atomic()};
    if (!groups.emplace(g.id(), cg).second)
      return make_error(Code::kCorrupt,
                        "director metadata: group " + std::to_string(g.id()) + " listed twice");
  }
  std::set<std::string> ecus;
  std::set<uint32_t> used_groups;
  c.targets.reserve(static_cast<size_t>(m.targets_size()));
  for (const auto& t : m.targets()) {
    const std::string what = "director metadata: target for ECU " + quote(t.ecu_id());
    if (!topics::valid_ecu_id(t.ecu_id()))
      return make_error(Code::kCorrupt, what + ": not an ECU id (" + topics::kEcuIdRule + ")");
    // One target per ECU: two would let an attacker choose which one the agent sees.
    if (!ecus.insert(t.ecu_id()).second) return make_error(Code::kCorrupt, what + ": ECU listed twice");
    if (t.hardware_id().empty() || t.hardware_id().size() > 128)
      return make_error(Code::kCorrupt, what + ": bad hardware id");
    if (t.image_name().empty() || t.image_name().size() > 256)
      return make_error(Code::kCorrupt, what + ": bad image name");
    if (t.version().size() > 256) return make_error(Code::kCorrupt, what + ": version string too long");
    if (static_cast<size_t>(t.clear_dtcs_size()) > limits.max_targets)
      return make_error(Code::kRejected, what + ": too many DTCs");
    CampaignTarget ct;
    ct.ecu_id = t.ecu_id();
    ct.hardware_id = t.hardware_id();
    ct.image_name = t.image_name();
    ct.version = t.version();
    ct.version_number = t.version_number();
    if (!to_digest(t.sha256(), &ct.sha256))
      return make_error(Code::kCorrupt, what + ": sha256 is not 32 bytes");
    if (t.size() > limits.max_image_size)
      return make_error(Code::kRejected, what + ": size " + std::to_string(t.size()) + " is above the cap " +
                                             std::to_string(limits.max_image_size) + " (endless data)");
    ct.size = t.size();
    ct.allow_downgrade = t.allow_downgrade();
    ct.group = t.group();
    ct.clear_dtcs.assign(t.clear_dtcs().begin(), t.clear_dtcs().end());
    used_groups.insert(ct.group);
    c.targets.push_back(std::move(ct));
  }
  for (uint32_t id : used_groups) {
    auto it = groups.find(id);
    // Unlisted group: non-atomic, ordered by its id (documented in trust.proto).
    c.groups.push_back(it != groups.end() ? it->second : CampaignGroup{id, id, false});
  }
  std::sort(c.groups.begin(), c.groups.end(), [](const CampaignGroup& a, const CampaignGroup& b) {
    return a.order != b.order ? a.order < b.order : a.id < b.id;
  });
  return out;
}

Status match_image(CampaignTarget* t, const VerifiedImages& images) {
  const std::string what = "ECU " + quote(t->ecu_id) + ": image " + quote(t->image_name) + " v" +
                           std::to_string(t->version_number);
  const ImageInfo* img = images.find(t->image_name, t->version_number);
  if (img == nullptr)
    return make_error(Code::kRejected,
                      what + " is not in the image metadata (v" + std::to_string(images.version) + ")");
  if (std::find(img->hardware_ids.begin(), img->hardware_ids.end(), t->hardware_id) ==
      img->hardware_ids.end())
    return make_error(Code::kRejected, what + " is not allowed on hardware id " + quote(t->hardware_id));
  // Mix-and-match: the director may only pick images the image role vouches for, byte for byte.
  if (img->sha256 != t->sha256)
    return make_error(Code::kRejected, what + ": director sha256 " + hex(t->sha256) +
                                           " differs from image metadata sha256 " + hex(img->sha256) +
                                           " (mix-and-match)");
  if (img->size != t->size)
    return make_error(Code::kRejected, what + ": director size " + std::to_string(t->size) +
                                           " differs from image metadata size " + std::to_string(img->size) +
                                           " (mix-and-match)");
  if (!t->version.empty() && t->version != img->version)
    return make_error(Code::kRejected, what + ": director version " + quote(t->version) +
                                           " differs from image metadata version " + quote(img->version) +
                                           " (mix-and-match)");
  t->image = *img;
  return Status::ok();
}

}  // namespace detail

Result<uint64_t> claimed_root_version(std::string_view signed_root, const Limits& limits) {
  auto env = detail::parse_envelope(signed_root, limits.max_root_bytes, limits, "root metadata");
  if (!env) return env.status();
  auto root = detail::decode_root(env->body(), limits);
  if (!root) return root.status();
  return root->version;
}

}  // namespace ota::trust
