#include "trust_gate.hpp"

#include <algorithm>

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/trust_wire.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "trust";

std::string raw(const Digest& d) { return std::string(reinterpret_cast<const char*>(d.data()), d.size()); }

using Locations = std::map<std::string, std::string>;  // raw sha256 -> uri

Result<std::string> locate(const Locations& locations, const Digest& sha, const std::string& what) {
  auto it = locations.find(raw(sha));
  if (it == locations.end())
    return Status(Code::kNotFound, what + ": no location for payload " + to_hex(sha));
  return it->second;
}

// The payloads of one target: its full image and, for the base the ECU runs now (agent, when
// known), its delta.
Status add_payloads(const trust::CampaignTarget& t, const Locations& locations, const AgentView* agent,
                    const std::string& who, v1::CampaignTarget* ct) {
  if (!t.image.has_full) return Status(Code::kRejected, who + ": the image metadata has no full payload");
  auto full_uri = locate(locations, t.image.full.sha256, who);
  if (!full_uri) return full_uri.status();
  auto* full = ct->mutable_full();
  full->set_encoding(t.image.full.encoding == "raw" ? v1::PAYLOAD_ENCODING_RAW : v1::PAYLOAD_ENCODING_DELTA);
  full->set_uri(*full_uri);
  full->set_size(t.image.full.size);
  full->set_sha256(raw(t.image.full.sha256));
  if (agent == nullptr) return Status::ok();
  const std::string base = active_bank(*agent).sha256();
  for (const auto& d : t.image.deltas) {
    if (raw(d.base_sha256) != base) continue;
    auto uri = locate(locations, d.payload.sha256, who);
    if (!uri) return uri.status();
    auto* delta = ct->mutable_delta();
    delta->set_encoding(v1::PAYLOAD_ENCODING_DELTA);
    delta->set_uri(*uri);
    delta->set_size(d.payload.size);
    delta->set_sha256(raw(d.payload.sha256));
    delta->set_base_version(d.base_version);
    delta->set_base_sha256(raw(d.base_sha256));
    break;
  }
  return Status::ok();
}

// The runner orders groups by number: they are numbered 1.. in the director's (order, id) order,
// once the campaign has been held to the signed one (which names groups by their ids).
void number_groups_in_order(const trust::VerifiedCampaign& vc, v1::Campaign* c) {
  std::map<uint32_t, uint32_t> rank;
  for (size_t i = 0; i < vc.groups.size(); ++i) rank[vc.groups[i].id] = static_cast<uint32_t>(i + 1);
  for (auto& g : *c->mutable_groups()) g.set_group(rank[g.group()]);
  for (auto& t : *c->mutable_targets()) t.set_group(rank.count(t.group()) ? rank[t.group()] : 1);
}

}  // namespace

Result<GateResult> verify_signed_campaign(trust::TrustStore& store, const v1::SignedCampaign& sc,
                                          const std::string& vin,
                                          const std::map<std::string, AgentView>& agents) {
  // A rotation first: the campaign may be signed by keys only the newer root names.
  const uint64_t root_before = store.root_version();
  OTA_RETURN_IF_ERROR(trust::apply_root_updates(sc.root_updates(), store));
  if (store.root_version() != root_before)
    OTA_LOGI(kLog, "trust root rotated from version %llu to %llu",
             static_cast<unsigned long long>(root_before),
             static_cast<unsigned long long>(store.root_version()));
  trust::VehicleInfo vehicle;
  vehicle.vin = vin;
  for (const auto& [id, view] : agents) {
    if (!view.hello.online()) continue;
    vehicle.ecu_hardware_ids[id] = view.hello.inventory().hardware_id();
    vehicle.ecu_active_versions[id] = active_bank(view).version();
  }
  auto verified = store.verify_campaign(sc.signed_director(), sc.signed_image(), vehicle);
  if (!verified) return verified.status();
  const trust::VerifiedCampaign& vc = *verified;

  Locations locations;
  for (const auto& loc : sc.payloads()) locations[loc.sha256()] = loc.uri();

  GateResult out;
  out.director_version = vc.version;
  out.resumed = vc.resumed;
  v1::Campaign& c = out.campaign;
  codec::set_protocol(c.mutable_protocol());
  c.set_campaign_id(vc.campaign_id);
  c.set_vin(vc.vin);
  // The unsigned flag must equal the signed one (check_campaign_matches refuses it otherwise, so a
  // flag cleared in transit is seen); metadata that does not sign it runs with consent asked.
  c.set_require_consent(vc.require_consent ? sc.require_consent() : true);
  if (!vc.require_consent)
    OTA_LOGW(kLog, "campaign %s: the signed metadata does not say whether consent is required: asking",
             vc.campaign_id.c_str());
  c.set_health_timeout_ms(sc.health_timeout_ms());
  c.set_chunk_size(sc.chunk_size());
  c.set_window(sc.window());
  *c.mutable_root_updates() = sc.root_updates();  // for the agents, which hold their own root
  c.mutable_preconditions()->set_require_parked(vc.preconditions.require_parked);
  c.mutable_preconditions()->set_require_ignition_off(vc.preconditions.require_ignition_off);
  c.mutable_preconditions()->set_min_battery_soc_percent(vc.preconditions.min_battery_percent);
  for (size_t i = 0; i < vc.groups.size(); ++i) {
    auto* g = c.add_groups();
    g->set_group(vc.groups[i].id);
    g->set_atomic(vc.groups[i].atomic);
  }
  for (const auto& t : vc.targets) {
    const std::string who = "campaign " + vc.campaign_id + ", ECU " + t.ecu_id;
    auto* ct = c.add_targets();
    ct->set_ecu_id(t.ecu_id);
    ct->set_hardware_id(t.hardware_id);
    ct->set_version(t.version);
    ct->set_size(t.size);
    ct->set_sha256(raw(t.sha256));
    ct->set_group(t.group);
    ct->set_allow_downgrade(t.allow_downgrade);
    for (uint32_t code : t.clear_dtcs) ct->add_resolves_dtcs(code);
    ct->set_signed_target(sc.signed_director());
    ct->set_signed_image(sc.signed_image());
    auto agent = agents.find(t.ecu_id);
    OTA_RETURN_IF_ERROR(
        add_payloads(t, locations, agent == agents.end() ? nullptr : &agent->second, who, ct));
  }
  // The campaign the runner executes, held to the signed one and its unsigned fields to their bounds
  // by the trust layer's own check (check_campaign_matches, fuzzed).
  OTA_RETURN_IF_ERROR(trust::check_campaign_matches(c, vc));
  number_groups_in_order(vc, &c);
  return out;
}

Status check_payload_file(const std::string& path, const v1::PayloadRef& ref) {
  trust::PayloadInfo signed_payload;
  if (!digest_from_bytes(ref.sha256(), &signed_payload.sha256))
    return Status(Code::kCorrupt, path + ": the payload reference holds no 32-byte SHA-256");
  signed_payload.size = ref.size();
  auto reader = FileReader::open(path);
  if (!reader) return reader.status();
  // Hashes at most the signed size: a padded file is refused by its size without being read.
  const uint64_t size = (*reader)->size();
  Digest digest{};
  if (size == ref.size()) {
    auto got = sha256_reader(**reader, ref.size());
    if (!got) return got.status();
    digest = *got;
  }
  return trust::check_payload(signed_payload, digest, size, path);
}

}  // namespace ota::client
