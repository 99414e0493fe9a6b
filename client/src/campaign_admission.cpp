#include "campaign_admission.hpp"

#include "ota/core/log.hpp"
#include "strict_json.hpp"
#include "trust_gate.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "client";

Result<Admission> admit_signed(const ClientConfig& config, const CampaignInput& input,
                               const std::map<std::string, AgentView>& agents) {
  static const trust::SystemClock clock;  // outlives every store
  auto opened = trust::TrustStore::open(config.trust.root, config.trust_dir(), clock);
  if (!opened) return opened.status().with_context("trust");
  Admission out;
  out.store = std::move(*opened);
  v1::SignedCampaign signed_campaign;
  Status st = parse_strict_json(input.json, &signed_campaign, input.source);
  if (st.is_ok()) {
    auto gate = verify_signed_campaign(*out.store, signed_campaign, config.vehicle.vin, agents);
    if (gate) {
      out.campaign = std::move(gate->campaign);
      out.director_version = gate->director_version;
      OTA_LOGI(kLog, "campaign %s verified (director metadata version %llu%s)",
               out.campaign.campaign_id().c_str(), static_cast<unsigned long long>(out.director_version),
               gate->resumed ? ", resumed" : "");
    } else {
      st = gate.status().with_context("campaign refused");
    }
  }
  out.refusal = st;
  return out;
}

Result<Admission> admit_unsigned(const ClientConfig& config, const CampaignInput& input) {
  OTA_LOGW(kLog, "trust.allow_unsigned is set: the campaign's signatures are NOT checked");
  Admission out;
  OTA_RETURN_IF_ERROR(parse_strict_json(input.json, &out.campaign, input.source));
  const std::string& vin = config.vehicle.vin;
  if (!vin.empty() && out.campaign.vin() != vin) {
    return Status(Code::kRejected,
                  "campaign is for VIN '" + out.campaign.vin() + "', this vehicle is '" + vin + "'");
  }
  return out;
}

}  // namespace

Result<Admission> admit_campaign(const ClientConfig& config, const CampaignInput& input,
                                 const std::map<std::string, AgentView>& agents) {
  if (!config.trust.root.empty()) return admit_signed(config, input, agents);
  if (config.trust.allow_unsigned) return admit_unsigned(config, input);
  return Status(Code::kInvalidArgument, "no [trust] root configured and trust.allow_unsigned is not set");
}

Admission readmit_journaled(const ClientConfig& config, const v1::Campaign& campaign) {
  Admission out;
  out.campaign = campaign;
  if (config.trust.root.empty()) return out;
  static const trust::SystemClock clock;  // outlives every store
  auto opened = trust::TrustStore::open(config.trust.root, config.trust_dir(), clock);
  if (!opened) {
    OTA_LOGW(kLog, "trust: %s; the end of campaign %s is not recorded", opened.status().to_string().c_str(),
             campaign.campaign_id().c_str());
    return out;
  }
  const std::string signed_director = campaign.targets_size() > 0 ? campaign.targets(0).signed_target() : "";
  auto version = (*opened)->unfinished_campaign(signed_director);
  if (!version) {
    OTA_LOGW(kLog, "trust: journaled campaign %s: %s; its end is not recorded",
             campaign.campaign_id().c_str(), version.status().to_string().c_str());
    return out;
  }
  out.store = std::move(*opened);
  out.director_version = *version;
  return out;
}

void record_campaign_end(Admission& admission, const v1::VehicleReport& report) {
  if (!admission.store || report.result() == v1::CAMPAIGN_POSTPONED) return;
  if (Status m = admission.store->mark_campaign_finished(admission.director_version); !m.is_ok()) {
    OTA_LOGW(kLog, "trust: %s", m.to_string().c_str());
  }
}

}  // namespace ota::client
