#include "publication.hpp"

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

Status deliver_report(const v1::VehicleReport& report, Transport& vehicle, CloudLink* cloud,
                      const std::string& file) {
  (void)vehicle.publish(topics::kVehicleReport, report.SerializeAsString(), 1, true);
  (void)vehicle.flush(std::chrono::seconds(5));
  if (cloud) {
    if (Status p = cloud->publish_report(report); !p.is_ok())
      OTA_LOGW("client", "cloud: %s", p.to_string().c_str());
  }
  if (file.empty()) return Status::ok();
  return atomic_write_file(file, report_to_json(report));
}

}  // namespace ota::client
