// Agreement between the unsigned wire messages and the signed metadata (see trust_wire.hpp).
#include <algorithm>
#include <map>

#include "internal.hpp"
#include "ota/core/trust_wire.hpp"

namespace ota::trust {

using namespace detail;  // NOLINT(google-build-using-namespace)

namespace {

std::string bytes_of(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

Status field_mismatch(const std::string& who, const std::string& field, const std::string& wire,
                      const std::string& sig) {
  return make_error(Code::kRejected, who + ": " + field + " on the wire (" + wire +
                                         ") differs from the signed " + field + " (" + sig + ")");
}

std::string hex_of(const std::string& bytes) {
  return hex(reinterpret_cast<const uint8_t*>(bytes.data()), std::min<size_t>(bytes.size(), 32));
}

bool matches_delta(const ImageInfo& img, const std::string& base_sha, const std::string& sha, uint64_t size) {
  return std::any_of(img.deltas.begin(), img.deltas.end(), [&](const DeltaInfo& d) {
    return bytes_of(d.base_sha256) == base_sha && bytes_of(d.payload.sha256) == sha && d.payload.size == size;
  });
}

Status check_common(const std::string& who, const std::string& version, uint64_t size,
                    const std::string& sha256, bool allow_downgrade, const CampaignTarget& t) {
  if (version != t.version) return field_mismatch(who, "version", version.substr(0, 64), t.version);
  if (size != t.size) return field_mismatch(who, "size", std::to_string(size), std::to_string(t.size));
  if (sha256 != bytes_of(t.sha256)) return field_mismatch(who, "sha256", hex_of(sha256), hex(t.sha256));
  if (allow_downgrade && !t.allow_downgrade)
    return make_error(Code::kRejected,
                      who + ": allow_downgrade is set on the wire but not in the signed campaign");
  return Status::ok();
}

Status out_of_bounds(const char* field, uint32_t value, uint32_t lo, uint32_t hi) {
  return make_error(Code::kRejected, std::string("campaign ") + field + " " + std::to_string(value) +
                                         " is outside " + std::to_string(lo) + ".." + std::to_string(hi) +
                                         " (0 for the default); it is not signed, so it is bounded");
}

// The fields no signature covers change how the campaign runs: bounded, so that none can fail the
// campaign on its own (a health check of 1 ms rolls every ECU back).
Status check_unsigned_fields(const ota::v1::Campaign& wire) {
  const uint32_t health = wire.health_timeout_ms();
  if (health != 0 && (health < kMinHealthTimeoutMs || health > kMaxHealthTimeoutMs))
    return out_of_bounds("health_timeout_ms", health, kMinHealthTimeoutMs, kMaxHealthTimeoutMs);
  if (wire.chunk_size() != 0 && (wire.chunk_size() < kMinChunkSize || wire.chunk_size() > kMaxChunkSize))
    return out_of_bounds("chunk_size", wire.chunk_size(), kMinChunkSize, kMaxChunkSize);
  if (wire.window() > kMaxWindow) return out_of_bounds("window", wire.window(), 1, kMaxWindow);
  const Limits limits;
  if (static_cast<size_t>(wire.root_updates_size()) > limits.max_root_updates)
    return make_error(Code::kRejected, "campaign carries " + std::to_string(wire.root_updates_size()) +
                                           " root updates, more than the limit of " +
                                           std::to_string(limits.max_root_updates));
  return Status::ok();
}

// The owner's consent is signed (DirectorMetadata.require_consent): a relay that clears the flag
// must not skip it. Metadata signed before the field existed does not say; the caller then asks
// (the client's trust gate sets require_consent).
Status check_consent(const ota::v1::Campaign& wire, const VerifiedCampaign& sc) {
  if (!sc.require_consent) return Status::ok();
  if (wire.require_consent() != *sc.require_consent)
    return field_mismatch("campaign", "require_consent", wire.require_consent() ? "true" : "false",
                          *sc.require_consent ? "true" : "false");
  return Status::ok();
}

}  // namespace

Status check_campaign_matches(const ota::v1::Campaign& wire, const VerifiedCampaign& sc) {
  if (wire.vin() != sc.vin)
    return make_error(Code::kRejected, "campaign is for VIN " + wire.vin().substr(0, 64) +
                                           " on the wire, the signed campaign is for VIN " + sc.vin);
  if (wire.campaign_id() != sc.campaign_id)
    return field_mismatch("campaign", "campaign id", wire.campaign_id().substr(0, 128), sc.campaign_id);
  std::map<std::string, const CampaignTarget*> by_ecu;
  for (const auto& t : sc.targets) by_ecu[t.ecu_id] = &t;
  if (static_cast<size_t>(wire.targets_size()) != sc.targets.size())
    return make_error(Code::kRejected, "campaign has " + std::to_string(wire.targets_size()) +
                                           " targets on the wire, the signed campaign has " +
                                           std::to_string(sc.targets.size()));
  std::map<std::string, int> seen;
  for (const auto& wt : wire.targets()) {
    const std::string who = "ECU " + wt.ecu_id().substr(0, 128);
    auto it = by_ecu.find(wt.ecu_id());
    if (it == by_ecu.end()) return make_error(Code::kRejected, who + " is not in the signed campaign");
    if (++seen[wt.ecu_id()] > 1) return make_error(Code::kRejected, who + " is listed twice on the wire");
    const CampaignTarget& t = *it->second;
    OTA_RETURN_IF_ERROR(check_common(who, wt.version(), wt.size(), wt.sha256(), wt.allow_downgrade(), t));
    if (wt.hardware_id() != t.hardware_id)
      return field_mismatch(who, "hardware id", wt.hardware_id().substr(0, 128), t.hardware_id);
    if (wt.group() != t.group)
      return field_mismatch(who, "group", std::to_string(wt.group()), std::to_string(t.group));
    if (wt.has_full() && t.image.has_full) {
      if (wt.full().size() != t.image.full.size)
        return field_mismatch(who, "full payload size", std::to_string(wt.full().size()),
                              std::to_string(t.image.full.size));
      if (wt.full().sha256() != bytes_of(t.image.full.sha256))
        return field_mismatch(who, "full payload sha256", hex_of(wt.full().sha256()),
                              hex(t.image.full.sha256));
    }
    if (wt.has_delta() &&
        !matches_delta(t.image, wt.delta().base_sha256(), wt.delta().sha256(), wt.delta().size()))
      return make_error(Code::kRejected, who + ": the delta payload on the wire matches no signed delta of " +
                                             t.image_name + " " + t.version);
    for (uint32_t dtc : wt.resolves_dtcs())
      if (std::find(t.clear_dtcs.begin(), t.clear_dtcs.end(), dtc) == t.clear_dtcs.end())
        return make_error(Code::kRejected,
                          who + ": DTC " + std::to_string(dtc) + " to clear is not in the signed campaign");
  }
  for (const auto& g : sc.groups) {
    if (!g.atomic) continue;
    bool atomic_on_wire =
        std::any_of(wire.groups().begin(), wire.groups().end(),
                    [&](const ota::v1::GroupPolicy& p) { return p.group() == g.id && p.atomic(); });
    if (!atomic_on_wire)
      return make_error(Code::kRejected, "group " + std::to_string(g.id) +
                                             " is atomic in the signed campaign, not on the wire");
  }
  OTA_RETURN_IF_ERROR(check_unsigned_fields(wire));
  OTA_RETURN_IF_ERROR(check_consent(wire, sc));
  const auto& wp = wire.preconditions();
  const Preconditions& sp = sc.preconditions;
  if ((sp.require_parked && !wp.require_parked()) ||
      (sp.require_ignition_off && !wp.require_ignition_off()) ||
      wp.min_battery_soc_percent() < sp.min_battery_percent)
    return make_error(Code::kRejected, "campaign pre-conditions on the wire are weaker than the signed ones");
  return Status::ok();
}

Status check_target_matches(const ota::v1::Target& wire, const AgentTarget& st) {
  const CampaignTarget& t = st.target;
  const std::string who = "ECU " + t.ecu_id;
  OTA_RETURN_IF_ERROR(
      check_common(who, wire.version(), wire.size(), wire.sha256(), wire.allow_downgrade(), t));
  if (!wire.hardware_id().empty() && wire.hardware_id() != t.hardware_id)
    return field_mismatch(who, "hardware id", wire.hardware_id().substr(0, 128), t.hardware_id);
  if (!st.image_verified) return Status::ok();
  if (wire.encoding() == ota::v1::PAYLOAD_ENCODING_DELTA) {
    if (!matches_delta(t.image, wire.base_sha256(), wire.payload_sha256(), wire.payload_size()))
      return make_error(Code::kRejected, who + ": the delta payload (" + std::to_string(wire.payload_size()) +
                                             " bytes, SHA-256 " + hex_of(wire.payload_sha256()) +
                                             ") matches no signed delta of " + t.image_name + " " +
                                             t.version);
  } else if (wire.payload_size() != t.size || wire.payload_sha256() != bytes_of(t.sha256)) {
    return make_error(Code::kRejected,
                      who + ": the raw payload is not the signed image " + t.image_name + " " + t.version);
  }
  return Status::ok();
}

}  // namespace ota::trust
