#include "campaign/preconditions.hpp"

namespace ota::client {
namespace {

Status check_vehicle(const v1::Preconditions& pre, const v1::VehicleConditions& cond) {
  if (pre.require_parked() && !cond.parked()) return Status(Code::kRejected, "vehicle is not parked");
  if (pre.require_ignition_off() && !cond.ignition_off()) return Status(Code::kRejected, "ignition is on");
  if (cond.battery_soc_percent() < pre.min_battery_soc_percent()) {
    return Status(Code::kRejected, "battery at " + std::to_string(cond.battery_soc_percent()) +
                                       " %, below the required " +
                                       std::to_string(pre.min_battery_soc_percent()) + " %");
  }
  return Status::ok();
}

// Free space: each ECU must hold the payload it will receive (delta staging) and the image.
Status check_space(const v1::CampaignTarget& t, const v1::Inventory& inv) {
  if (inv.bank_size() > 0 && t.size() > inv.bank_size()) {
    return Status(Code::kRejected, t.ecu_id() + ": image of " + std::to_string(t.size()) +
                                       " bytes exceeds its bank of " + std::to_string(inv.bank_size()));
  }
  if (t.has_delta() && inv.capabilities().delta() && inv.free_space() < t.delta().size()) {
    return Status(Code::kRejected, t.ecu_id() + ": " + std::to_string(inv.free_space()) +
                                       " bytes free, the delta needs " + std::to_string(t.delta().size()));
  }
  return Status::ok();
}

}  // namespace

Status check_preconditions(const v1::Campaign& campaign, const Result<v1::VehicleConditions>& conditions,
                           const std::map<std::string, AgentView>& agents) {
  if (!conditions)
    return Status(Code::kUnavailable, "vehicle state unavailable: " + conditions.status().message());
  OTA_RETURN_IF_ERROR(check_vehicle(campaign.preconditions(), conditions.value()));
  for (const auto& t : campaign.targets()) {
    auto view = agents.find(t.ecu_id());
    if (view != agents.end()) OTA_RETURN_IF_ERROR(check_space(t, view->second.hello.inventory()));
  }
  return Status::ok();
}

}  // namespace ota::client
