// The agent-side target verifier, the version and downgrade rules, and payload/installed-image checks.
#include <algorithm>
#include <string_view>
#include <vector>

#include "internal.hpp"

namespace ota::trust {

using namespace detail;  // NOLINT(google-build-using-namespace)

namespace {

// Splits on sep; empty input gives no parts.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Numeric identifiers compare by value (without overflow: by length once leading zeros are gone),
// numeric < alphanumeric, alphanumeric as text.
int compare_ident(std::string_view a, std::string_view b) {
  const bool na = all_digits(a), nb = all_digits(b);
  if (na && nb) {
    while (a.size() > 1 && a[0] == '0') a.remove_prefix(1);
    while (b.size() > 1 && b[0] == '0') b.remove_prefix(1);
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
  }
  if (na != nb) return na ? -1 : 1;
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace

int compare_versions(std::string_view a, std::string_view b) {
  auto strip = [](std::string_view v) {
    if (!v.empty() && (v[0] == 'v' || v[0] == 'V')) v.remove_prefix(1);
    size_t plus = v.find('+');
    return plus == std::string_view::npos ? v : v.substr(0, plus);
  };
  a = strip(a);
  b = strip(b);
  auto cut = [](std::string_view v, std::string_view* core, std::string_view* pre) {
    size_t dash = v.find('-');
    *core = v.substr(0, dash);
    *pre = dash == std::string_view::npos ? std::string_view() : v.substr(dash + 1);
  };
  std::string_view ca, pa, cb, pb;
  cut(a, &ca, &pa);
  cut(b, &cb, &pb);
  auto xa = split(ca, '.'), xb = split(cb, '.');
  for (size_t i = 0; i < std::max(xa.size(), xb.size()); ++i) {
    // Missing components count as 0: "1.2" == "1.2.0".
    std::string_view ia = i < xa.size() ? xa[i] : "0", ib = i < xb.size() ? xb[i] : "0";
    if (int c = compare_ident(ia, ib)) return c;
  }
  // A pre-release sorts before its release.
  if (pa.empty() != pb.empty()) return pa.empty() ? 1 : -1;
  auto ya = split(pa, '.'), yb = split(pb, '.');
  for (size_t i = 0; i < std::min(ya.size(), yb.size()); ++i)
    if (int c = compare_ident(ya[i], yb[i])) return c;
  if (ya.size() != yb.size()) return ya.size() < yb.size() ? -1 : 1;
  return 0;
}

Status check_downgrade(const CampaignTarget& target, uint64_t active_version_number,
                       std::string_view active_version) {
  if (target.allow_downgrade) return Status::ok();
  if (active_version_number != 0) {
    if (target.version_number < active_version_number)
      return make_error(Code::kRejected, "ECU " + target.ecu_id + ": downgrade from version " +
                                             std::to_string(active_version_number) + " to " +
                                             std::to_string(target.version_number) +
                                             " refused (the campaign does not allow downgrade)");
    return Status::ok();
  }
  if (!active_version.empty() && !target.version.empty() &&
      compare_versions(target.version, active_version) < 0)
    return make_error(Code::kRejected, "ECU " + target.ecu_id + ": downgrade from " +
                                           std::string(active_version.substr(0, 64)) + " to " +
                                           target.version +
                                           " refused (the campaign does not allow downgrade)");
  return Status::ok();
}

Status check_payload(const PayloadInfo& payload, const Digest& sha256, uint64_t size,
                     const std::string& what) {
  if (size != payload.size)
    return make_error(Code::kHashMismatch, what + ": payload is " + std::to_string(size) +
                                               " bytes, the signed metadata says " +
                                               std::to_string(payload.size) + " (the signed size is " +
                                               std::to_string(payload.size) + " bytes)");
  if (sha256 != payload.sha256)
    return make_error(Code::kHashMismatch, what + ": payload SHA-256 " + hex(sha256) + " is not the signed " +
                                               hex(payload.sha256));
  return Status::ok();
}

Status check_installed(const CampaignTarget& target, const Digest& sha256, uint64_t size) {
  if (size != target.size)
    return make_error(Code::kHashMismatch, "ECU " + target.ecu_id + ": installed image is " +
                                               std::to_string(size) + " bytes, the signed target says " +
                                               std::to_string(target.size));
  if (sha256 != target.sha256)
    return make_error(Code::kHashMismatch, "ECU " + target.ecu_id + ": installed image sha256 " +
                                               hex(sha256) + " differs from the signed target " +
                                               hex(target.sha256));
  return Status::ok();
}

// ------------------------------------------------------------------------------------------------

struct AgentVerifier::Impl {
  Limits limits;
  RoleSpec director, image;
  bool has_root = false;
  RootInfo root;
  std::string signed_root;
};

AgentVerifier::AgentVerifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentVerifier::~AgentVerifier() = default;
AgentVerifier::AgentVerifier(AgentVerifier&&) noexcept = default;
AgentVerifier& AgentVerifier::operator=(AgentVerifier&&) noexcept = default;

Result<AgentVerifier> AgentVerifier::from_root(std::string_view signed_root, Limits limits) {
  auto root = verify_self_signed_root(signed_root, limits);
  if (!root) return root.status();
  auto impl = std::make_unique<Impl>();
  impl->limits = limits;
  impl->director = root->director;
  impl->image = root->image;
  impl->has_root = true;
  impl->root = std::move(*root);
  impl->signed_root = std::string(signed_root);
  return AgentVerifier(std::move(impl));
}

Status AgentVerifier::update_root(std::string_view signed_root) {
  Impl& s = *impl_;
  if (!s.has_root) return make_error(Code::kInvalidArgument, "this agent verifier was not made from a root");
  auto next = verify_root_rotation(s.root, signed_root, s.limits);
  if (!next) return next.status();
  // Keys dropped from a role simply stop counting: the agent holds only the current role keys.
  s.root = std::move(*next);
  s.director = s.root.director;
  s.image = s.root.image;
  s.signed_root = std::string(signed_root);
  return Status::ok();
}

const std::string& AgentVerifier::signed_root() const { return impl_->signed_root; }
uint64_t AgentVerifier::root_version() const { return impl_->has_root ? impl_->root.version : 0; }

namespace {

Status make_role(const std::vector<std::string>& pems, uint32_t threshold, const char* name, RoleSpec* out) {
  out->name = name;
  for (const auto& pem : pems) {
    auto k = PublicKey::from_pem(pem);
    if (!k) return k.status().with_context(std::string(name) + " key");
    out->keys.emplace(k->key_id(), *k);
  }
  if (threshold == 0 || threshold > out->keys.size())
    return make_error(Code::kInvalidArgument, std::string(name) + " threshold " + std::to_string(threshold) +
                                                  " is not within 1.." + std::to_string(out->keys.size()));
  out->threshold = threshold;
  return Status::ok();
}

}  // namespace

Result<AgentVerifier> AgentVerifier::from_keys(const std::vector<std::string>& director_pems,
                                               uint32_t director_threshold,
                                               const std::vector<std::string>& image_pems,
                                               uint32_t image_threshold, Limits limits) {
  auto impl = std::make_unique<Impl>();
  impl->limits = limits;
  OTA_RETURN_IF_ERROR(make_role(director_pems, director_threshold, "director", &impl->director));
  if (!image_pems.empty()) OTA_RETURN_IF_ERROR(make_role(image_pems, image_threshold, "image", &impl->image));
  return AgentVerifier(std::move(impl));
}

Result<AgentTarget> AgentVerifier::verify_target(std::string_view signed_director,
                                                 std::string_view signed_image, const AgentIdentity& me,
                                                 const Clock* clock) const {
  const Impl& s = *impl_;
  auto env = parse_envelope(signed_director, s.limits.max_director_bytes, s.limits, "director metadata");
  if (!env) return env.status();
  OTA_RETURN_IF_ERROR(check_threshold(*env, s.director, "director metadata"));
  auto dir = decode_director(env->body(), s.limits);
  if (!dir) return dir.status();
  VerifiedCampaign& c = dir->campaign;
  if (!me.vin.empty() && c.vin != me.vin)
    return make_error(Code::kRejected, "campaign is for VIN " + c.vin + ", this vehicle is " + me.vin);
  if (clock != nullptr)
    OTA_RETURN_IF_ERROR(
        check_expiry(c.expires, clock->now(), "director metadata v" + std::to_string(c.version)));
  if (c.version < me.min_director_version)
    return make_error(Code::kRejected, "director metadata: version counter " + std::to_string(c.version) +
                                           " is below " + std::to_string(me.min_director_version) +
                                           " (rollback or replay)");
  auto it = std::find_if(c.targets.begin(), c.targets.end(),
                         [&](const CampaignTarget& t) { return t.ecu_id == me.ecu_id; });
  if (it == c.targets.end())
    return make_error(Code::kRejected, "campaign " + c.campaign_id + " has no target for ECU " + me.ecu_id);
  if (it->hardware_id != me.hardware_id)
    return make_error(Code::kRejected, "ECU " + me.ecu_id + " has hardware id " + me.hardware_id +
                                           ", the signed target is for hardware id " + it->hardware_id);
  AgentTarget out;
  if (!signed_image.empty()) {
    if (s.image.keys.empty())
      return make_error(Code::kInvalidArgument, "image metadata given but this agent has no image keys");
    auto ienv = parse_envelope(signed_image, s.limits.max_image_bytes, s.limits, "image metadata");
    if (!ienv) return ienv.status();
    OTA_RETURN_IF_ERROR(check_threshold(*ienv, s.image, "image metadata"));
    auto images = decode_image(ienv->body(), s.limits);
    if (!images) return images.status();
    if (clock != nullptr)
      OTA_RETURN_IF_ERROR(
          check_expiry(images->expires, clock->now(), "image metadata v" + std::to_string(images->version)));
    OTA_RETURN_IF_ERROR(match_image(&*it, *images));
    out.image_verified = true;
  }
  OTA_RETURN_IF_ERROR(check_downgrade(*it, me.active_version_number, me.active_version));
  out.vin = c.vin;
  out.campaign_id = c.campaign_id;
  out.director_version = c.version;
  out.target = std::move(*it);
  return out;
}

}  // namespace ota::trust
