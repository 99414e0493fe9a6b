#include "publication.hpp"

#include <google/protobuf/util/json_util.h>

#include "agent_field_limits.hpp"
#include "campaign.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/topics.hpp"

namespace ota::client {

void publish_inventory(CloudLink& cloud, const std::string& vin,
                       const std::map<std::string, AgentView>& agents) {
  v1::VehicleInventory inv;
  codec::set_protocol(inv.mutable_protocol());
  inv.set_vin(vin);
  inv.set_timestamp_ms(codec::now_ms());
  for (const auto& [id, view] : agents) *inv.add_ecus() = view.hello.inventory();
  if (Status p = cloud.publish_inventory(inv); !p.is_ok())
    OTA_LOGW("client", "cloud: %s", p.to_string().c_str());
}

std::function<void(const v1::CampaignStatus&)> status_publisher(Transport& vehicle, CloudLink* cloud) {
  return [&vehicle, cloud](const v1::CampaignStatus& s) {
    (void)vehicle.publish(topics::kVehicleStatus, s.SerializeAsString(), 1, true);
    if (cloud) (void)cloud->publish_status(s);
  };
}

Status deliver_report(const v1::VehicleReport& full, Transport& vehicle, CloudLink* cloud,
                      const std::string& file) {
  // Fields copied from agents are bounded where they arrive, but a report over the broker's
  // message_size_limit would silently never be delivered: cut it here, whatever it holds.
  v1::VehicleReport report = full;
  if (std::string cut = cap_report(&report); !cut.empty()) {
    OTA_LOGE("client", "report of campaign %s cut to %zu bytes (limit %zu): %s", report.campaign_id().c_str(),
             report.ByteSizeLong(), AgentFieldLimits::kMaxReportBytes, cut.c_str());
  }
  if (Status p = vehicle.publish(topics::kVehicleReport, report.SerializeAsString(), 1, true); !p.is_ok())
    OTA_LOGE("client", "vehicle report not published: %s", p.to_string().c_str());
  else if (Status f = vehicle.flush(std::chrono::seconds(5)); !f.is_ok())
    OTA_LOGE("client", "vehicle report not confirmed by the broker: %s", f.to_string().c_str());
  if (cloud) {
    if (Status p = cloud->queue_report(report); !p.is_ok())
      OTA_LOGW("client", "cloud: %s", p.to_string().c_str());
  }
  if (file.empty() || !may_replace_report_file(file, report)) return Status::ok();
  return atomic_write_file(file, report_to_json(report));
}

bool may_replace_report_file(const std::string& file, const v1::VehicleReport& report) {
  if (report.result() != v1::CAMPAIGN_REJECTED) return true;
  auto json = read_small_file(file, 16u << 20);
  if (!json) return true;  // no report yet (or unreadable: replaced)
  v1::VehicleReport stored;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(*json, &stored, opts).ok()) return true;
  if (stored.result() == v1::CAMPAIGN_REJECTED && stored.campaign_id() == report.campaign_id()) return true;
  OTA_LOGW("client",
           "%s holds the %s report of campaign '%s': the rejection of campaign '%s' does not replace it",
           file.c_str(), v1::CampaignResult_Name(stored.result()).c_str(), stored.campaign_id().c_str(),
           report.campaign_id().c_str());
  return false;
}

}  // namespace ota::client
