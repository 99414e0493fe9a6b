// TrustStore: the vehicle's trusted root, root rotation, and full verification of image and director
// metadata with persisted counters.
#include <sstream>

#include "internal.hpp"
#include "ota/core/file.hpp"

namespace ota::trust {

using namespace detail;  // NOLINT(google-build-using-namespace): this file is the detail's user

namespace {

constexpr size_t kStateFileCap = 64 * 1024;

struct Counter {
  uint64_t version = 0;
  Digest sha{};
  bool done = false;
};

std::string counter_text(const Counter& c) {
  return std::to_string(c.version) + " " + hex(c.sha) + " " + (c.done ? "1" : "0") + "\n";
}

// A counter file that exists but does not parse is an error: failing closed is the only safe answer
// when the rollback state is damaged.
Result<Counter> load_counter(const std::string& path) {
  auto text = read_state_file(path, kStateFileCap);
  if (!text) {
    if (text.status().code() == Code::kNotFound) return Counter{};
    return text.status();
  }
  Counter c;
  if (!parse_counter(*text, &c.version, &c.sha, &c.done))
    return make_error(Code::kCorrupt, "trust state " + path + " is damaged");
  return c;
}

}  // namespace

struct TrustStore::Impl {
  const Clock* clock = nullptr;
  Limits limits;
  std::string state_dir;
  std::string signed_root;
  RootInfo root;
  std::map<std::string, std::set<std::string>> revoked;  // role -> key ids
  Counter image, director;

  std::string path(const char* name) const { return state_dir + "/" + name; }

  void apply_revoked() {
    root.root.revoked = revoked["root"];
    root.image.revoked = revoked["image"];
    root.director.revoked = revoked["director"];
  }

  Status save_revoked() const {
    std::string text;
    for (const auto& [role, ids] : revoked)
      for (const auto& id : ids) text += role + " " + id + "\n";
    return atomic_write_file(path("revoked"), text);
  }

  Status load_revoked() {
    auto text = read_state_file(path("revoked"), kStateFileCap);
    if (!text) return text.status().code() == Code::kNotFound ? Status::ok() : text.status();
    std::istringstream in(*text);
    std::string role, id;
    while (in >> role >> id) revoked[role].insert(id);
    return Status::ok();
  }

  Status check_root_fresh() const {
    return check_expiry(root.expires, clock->now(), "root metadata v" + std::to_string(root.version));
  }

  // Signature, expiry, structure and counter checks of image metadata; no persistence.
  Result<VerifiedImages> check_image(std::string_view signed_image, Digest* body_sha) const {
    auto env = parse_envelope(signed_image, limits.max_image_bytes, limits, "image metadata");
    if (!env) return env.status();
    OTA_RETURN_IF_ERROR(check_threshold(*env, root.image, "image metadata"));
    auto img = decode_image(env->body(), limits);
    if (!img) return img.status();
    OTA_RETURN_IF_ERROR(
        check_expiry(img->expires, clock->now(), "image metadata v" + std::to_string(img->version)));
    *body_sha = sha256(env->body());
    if (img->version < image.version)
      return make_error(Code::kRejected, "image metadata: version counter " + std::to_string(img->version) +
                                             " is below " + std::to_string(image.version) + " (rollback)");
    // The same image metadata may serve several campaigns; the same version with other content may not.
    if (img->version == image.version && *body_sha != image.sha)
      return make_error(Code::kRejected, "image metadata: version " + std::to_string(img->version) +
                                             " was already accepted with different content (replay)");
    return img;
  }
};

TrustStore::TrustStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrustStore::~TrustStore() = default;

Result<std::unique_ptr<TrustStore>> TrustStore::open(const std::string& root_file,
                                                     const std::string& state_dir, const Clock& clock,
                                                     Limits limits) {
  auto impl = std::make_unique<Impl>();
  impl->clock = &clock;
  impl->limits = limits;
  impl->state_dir = state_dir;
  OTA_RETURN_IF_ERROR(make_private_dir(state_dir));

  auto provisioned = read_small_file(root_file, limits.max_root_bytes);
  if (!provisioned) return provisioned.status().with_context("trusted root " + root_file);
  auto root = verify_self_signed_root(*provisioned, limits);
  if (!root) return root.status().with_context("trusted root " + root_file);
  impl->root = std::move(*root);
  impl->signed_root = std::move(*provisioned);

  // A root accepted by an earlier update_root replaces the provisioned one if newer. It was verified
  // against its predecessor before it was written; re-check that it is at least self-consistent.
  auto saved = read_state_file(impl->path("root.signed"), limits.max_root_bytes);
  if (saved) {
    auto sroot = verify_self_signed_root(*saved, limits);
    if (!sroot) return sroot.status().with_context("trust state root.signed");
    if (sroot->version > impl->root.version) {
      impl->root = std::move(*sroot);
      impl->signed_root = std::move(*saved);
    }
  } else if (saved.status().code() != Code::kNotFound) {
    return saved.status();
  }
  OTA_RETURN_IF_ERROR(impl->load_revoked());
  impl->apply_revoked();
  auto ic = load_counter(impl->path("image.counter"));
  if (!ic) return ic.status();
  impl->image = *ic;
  auto dc = load_counter(impl->path("director.counter"));
  if (!dc) return dc.status();
  impl->director = *dc;
  return std::unique_ptr<TrustStore>(new TrustStore(std::move(impl)));
}

Status TrustStore::update_root(std::string_view signed_root) {
  Impl& s = *impl_;
  auto next = verify_root_rotation(s.root, signed_root, s.limits);
  if (!next) return next.status();

  // Revocation: a key that held a role and no longer does is remembered as revoked for that role.
  auto revoke = [&](const RoleSpec& old_role, const RoleSpec& new_role) {
    auto& set = s.revoked[new_role.name];
    for (const auto& kv : old_role.keys)
      if (!new_role.keys.count(kv.first)) set.insert(kv.first);
    for (const auto& kv : new_role.keys) set.erase(kv.first);
  };
  auto saved_revoked = s.revoked;
  revoke(s.root.root, next->root);
  revoke(s.root.image, next->image);
  revoke(s.root.director, next->director);

  // Persist the root first: if the revoked list is lost to a crash, the keys are still out of the
  // role, they only lose the "revoked" wording.
  Status st = atomic_write_file(s.path("root.signed"), signed_root);
  if (st.is_ok()) st = s.save_revoked();
  if (!st.is_ok()) {
    s.revoked = std::move(saved_revoked);
    return st;
  }
  s.root = std::move(*next);
  s.signed_root = std::string(signed_root);
  s.apply_revoked();
  return Status::ok();
}

Result<VerifiedImages> TrustStore::verify_image_metadata(std::string_view signed_image) {
  Impl& s = *impl_;
  OTA_RETURN_IF_ERROR(s.check_root_fresh());
  Digest sha{};
  auto img = s.check_image(signed_image, &sha);
  if (!img) return img.status();
  if (img->version != s.image.version || sha != s.image.sha) {
    Counter c{img->version, sha, false};
    OTA_RETURN_IF_ERROR(atomic_write_file(s.path("image.counter"), counter_text(c)));
    s.image = c;
  }
  return img;
}

Result<VerifiedCampaign> TrustStore::verify_campaign(std::string_view signed_director,
                                                     std::string_view signed_image,
                                                     const VehicleInfo& vehicle) {
  Impl& s = *impl_;
  OTA_RETURN_IF_ERROR(s.check_root_fresh());
  Digest image_sha{};
  auto images = s.check_image(signed_image, &image_sha);
  if (!images) return images.status();

  auto env = parse_envelope(signed_director, s.limits.max_director_bytes, s.limits, "director metadata");
  if (!env) return env.status();
  OTA_RETURN_IF_ERROR(check_threshold(*env, s.root.director, "director metadata"));
  auto dir = decode_director(env->body(), s.limits);
  if (!dir) return dir.status();
  VerifiedCampaign& c = dir->campaign;
  if (c.vin != vehicle.vin)
    return make_error(Code::kRejected, "campaign is for VIN " + c.vin + ", this vehicle is " + vehicle.vin);
  OTA_RETURN_IF_ERROR(
      check_expiry(c.expires, s.clock->now(), "director metadata v" + std::to_string(c.version)));
  c.director_sha256 = sha256(env->body());
  if (c.version == s.director.version && c.director_sha256 == s.director.sha && !s.director.done) {
    c.resumed = true;  // the same campaign, accepted before a restart and not finished
  } else if (c.version == s.director.version && c.director_sha256 == s.director.sha) {
    return make_error(Code::kRejected, "director metadata: campaign version " + std::to_string(c.version) +
                                           " was already finished (replay)");
  } else if (c.version <= s.director.version) {
    return make_error(Code::kRejected, "director metadata: version counter " + std::to_string(c.version) +
                                           " is not above " + std::to_string(s.director.version) +
                                           " (rollback or replay)");
  }
  for (auto& t : c.targets) {
    auto it = vehicle.ecu_hardware_ids.find(t.ecu_id);
    if (it == vehicle.ecu_hardware_ids.end())
      return make_error(Code::kRejected,
                        "campaign targets ECU " + t.ecu_id + ", which this vehicle does not have");
    if (it->second != t.hardware_id)
      return make_error(Code::kRejected, "ECU " + t.ecu_id + " reports hardware id " + it->second +
                                             ", the campaign targets hardware id " + t.hardware_id);
    OTA_RETURN_IF_ERROR(match_image(&t, *images));
    auto av = vehicle.ecu_active_versions.find(t.ecu_id);
    if (av != vehicle.ecu_active_versions.end()) OTA_RETURN_IF_ERROR(check_downgrade(t, 0, av->second));
  }

  // Everything holds: advance both counters (image first: it never blocks a later campaign).
  if (images->version != s.image.version || image_sha != s.image.sha) {
    Counter ic{images->version, image_sha, false};
    OTA_RETURN_IF_ERROR(atomic_write_file(s.path("image.counter"), counter_text(ic)));
    s.image = ic;
  }
  if (!c.resumed) {
    Counter dc{c.version, c.director_sha256, false};
    OTA_RETURN_IF_ERROR(atomic_write_file(s.path("director.counter"), counter_text(dc)));
    s.director = dc;
  }
  return std::move(dir->campaign);
}

Status TrustStore::mark_campaign_finished(uint64_t director_version) {
  Impl& s = *impl_;
  if (director_version != s.director.version)
    return make_error(Code::kInvalidArgument, "campaign version " + std::to_string(director_version) +
                                                  " is not the current one (" +
                                                  std::to_string(s.director.version) + ")");
  if (s.director.done) return Status::ok();
  Counter c = s.director;
  c.done = true;
  OTA_RETURN_IF_ERROR(atomic_write_file(s.path("director.counter"), counter_text(c)));
  s.director = c;
  return Status::ok();
}

Result<uint64_t> TrustStore::unfinished_campaign(std::string_view signed_director) const {
  const Impl& s = *impl_;
  auto env = parse_envelope(signed_director, s.limits.max_director_bytes, s.limits, "director metadata");
  if (!env) return env.status();
  if (s.director.version == 0 || s.director.done || sha256(env->body()) != s.director.sha)
    return make_error(Code::kNotFound, "the director metadata is not the accepted, unfinished campaign (v" +
                                           std::to_string(s.director.version) +
                                           (s.director.done ? ", finished)" : ")"));
  return s.director.version;
}

uint64_t TrustStore::root_version() const { return impl_->root.version; }
uint64_t TrustStore::director_version() const { return impl_->director.version; }
uint64_t TrustStore::image_version() const { return impl_->image.version; }
const std::string& TrustStore::signed_root() const { return impl_->signed_root; }

}  // namespace ota::trust
