#include "rejection_report.hpp"

#include <google/protobuf/util/json_util.h>

#include "cloud_link.hpp"
#include "ota/core/codec.hpp"

namespace ota::client {

v1::VehicleReport rejection_report(const std::string& vin, const std::string& campaign_id, const Status& why,
                                   const std::map<std::string, AgentView>& agents) {
  v1::VehicleReport rejected;
  codec::set_protocol(rejected.mutable_protocol());
  rejected.set_vin(vin);
  rejected.set_campaign_id(campaign_id);
  rejected.set_result(v1::CAMPAIGN_REJECTED);
  rejected.set_reason(why.to_string());
  rejected.set_started_ms(codec::now_ms());
  for (const auto& [id, view] : agents) {
    auto* e = rejected.add_ecus();
    e->set_ecu_id(id);
    e->set_result(v1::REJECTED);
    e->set_version_before(active_bank(view).version());
    e->set_version_after(e->version_before());
    codec::to_wire(why, v1::PHASE_UNSPECIFIED, e->mutable_error());
  }
  return rejected;
}

std::string claimed_campaign_id(const CampaignInput& input) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  v1::SignedCampaign signed_campaign;
  if (google::protobuf::util::JsonStringToMessage(input.json, &signed_campaign, opts).ok() &&
      !signed_campaign.signed_director().empty())
    return claimed_campaign_id(signed_campaign);
  v1::Campaign campaign;
  if (google::protobuf::util::JsonStringToMessage(input.json, &campaign, opts).ok())
    return campaign.campaign_id();
  return {};
}

}  // namespace ota::client
