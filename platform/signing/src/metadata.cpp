// Builders of role bodies from plain structs (platform side: ota-pack, the simulated platform, tests).
#include <string>
#include <vector>

#include "ota/core/trust.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::trust {

namespace v1 = ::ota::v1;

namespace {

void set_payload(const PayloadInfo& p, v1::Payload* out) {
  out->set_sha256(digest_to_bytes(p.sha256));
  out->set_size(p.size);
  out->set_encoding(p.encoding);
}

Status add_role(const RoleKeysSpec& spec, const char* name, v1::RootMetadata* m, v1::RoleKeys* rk) {
  for (const auto& pem : spec.public_pems) {
    auto key = PublicKey::from_pem(pem);
    if (!key) return key.status().with_context(std::string(name) + " key");
    rk->add_key_ids(key->key_id());
    bool known = false;
    for (const auto& e : m->keys()) known = known || e.key_id() == key->key_id();
    if (!known) {
      auto* e = m->add_keys();
      e->set_key_id(key->key_id());
      e->set_public_pem(key->pem());
    }
  }
  if (spec.threshold == 0 || spec.threshold > static_cast<uint32_t>(rk->key_ids_size()))
    return make_error(Code::kInvalidArgument, std::string(name) + " threshold " +
                                                  std::to_string(spec.threshold) + " is not within 1.." +
                                                  std::to_string(rk->key_ids_size()));
  rk->set_threshold(spec.threshold);
  return Status::ok();
}

}  // namespace

Result<std::string> make_root_body(const RootSpec& spec) {
  v1::RootMetadata m;
  m.set_type(v1::METADATA_TYPE_ROOT);
  m.set_version(spec.version);
  m.set_expires(spec.expires);
  OTA_RETURN_IF_ERROR(add_role(spec.root, "root", &m, m.mutable_root()));
  OTA_RETURN_IF_ERROR(add_role(spec.image, "image", &m, m.mutable_image()));
  OTA_RETURN_IF_ERROR(add_role(spec.director, "director", &m, m.mutable_director()));
  return m.SerializeAsString();
}

std::string make_image_body(uint64_t version, int64_t expires, const std::vector<ImageInfo>& images) {
  v1::ImageMetadata m;
  m.set_type(v1::METADATA_TYPE_IMAGE);
  m.set_version(version);
  m.set_expires(expires);
  for (const auto& img : images) {
    auto* t = m.add_images();
    t->set_name(img.name);
    t->set_version(img.version);
    t->set_version_number(img.version_number);
    t->set_size(img.size);
    t->set_sha256(digest_to_bytes(img.sha256));
    for (const auto& h : img.hardware_ids) t->add_hardware_ids(h);
    if (img.has_full) set_payload(img.full, t->mutable_full());
    for (const auto& d : img.deltas) {
      auto* dp = t->add_deltas();
      dp->set_base_version(d.base_version);
      dp->set_base_version_number(d.base_version_number);
      dp->set_base_sha256(digest_to_bytes(d.base_sha256));
      dp->set_base_size(d.base_size);
      set_payload(d.payload, dp->mutable_payload());
    }
  }
  return m.SerializeAsString();
}

std::string make_director_body(const VerifiedCampaign& c) {
  v1::DirectorMetadata m;
  m.set_type(v1::METADATA_TYPE_DIRECTOR);
  m.set_vin(c.vin);
  m.set_campaign_id(c.campaign_id);
  m.set_version(c.version);
  m.set_expires(c.expires);
  for (const auto& t : c.targets) {
    auto* d = m.add_targets();
    d->set_ecu_id(t.ecu_id);
    d->set_hardware_id(t.hardware_id);
    d->set_image_name(t.image_name);
    d->set_version(t.version);
    d->set_version_number(t.version_number);
    d->set_sha256(digest_to_bytes(t.sha256));
    d->set_size(t.size);
    d->set_allow_downgrade(t.allow_downgrade);
    d->set_group(t.group);
    for (const auto& dtc : t.clear_dtcs) d->add_clear_dtcs(dtc);
  }
  for (const auto& g : c.groups) {
    auto* gp = m.add_groups();
    gp->set_id(g.id);
    gp->set_order(g.order);
    gp->set_atomic(g.atomic);
  }
  m.mutable_preconditions()->set_require_parked(c.preconditions.require_parked);
  m.mutable_preconditions()->set_require_ignition_off(c.preconditions.require_ignition_off);
  m.mutable_preconditions()->set_min_battery_percent(c.preconditions.min_battery_percent);
  if (c.require_consent) m.set_require_consent(*c.require_consent);
  return m.SerializeAsString();
}

}  // namespace ota::trust
