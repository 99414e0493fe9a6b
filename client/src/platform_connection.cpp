#include "platform_connection.hpp"

#include "ota/core/log.hpp"
#include "rejection_report.hpp"

namespace ota::client {

Result<std::unique_ptr<CloudLink>> connect_platform(const ClientConfig::Cloud& cloud,
                                                    const std::string& state_dir) {
  if (cloud.uri.empty()) return std::unique_ptr<CloudLink>();
  CloudLinkOptions co;
  co.uri = cloud.uri;
  co.ca_file = cloud.ca;
  co.cert_file = cloud.cert;
  co.key_file = cloud.key;
  co.vehicle = cloud.vehicle;
  co.report_dir = state_dir + "/reports";
  auto link = CloudLink::connect(co);
  if (!link) return link.status();
  OTA_LOGI("client", "connected to the OTA platform at %s as %s", co.uri.c_str(), co.vehicle.c_str());
  return link;
}

std::optional<v1::VehicleReport> answer_finished_campaign(CloudLink* cloud, const CampaignInput& input) {
  if (cloud == nullptr) return std::nullopt;
  const std::string id = claimed_campaign_id(input);
  auto stored = cloud->outbox().find(id);
  if (!stored || stored->result() == v1::CAMPAIGN_REJECTED || stored->result() == v1::CAMPAIGN_POSTPONED)
    return std::nullopt;
  OTA_LOGI("client",
           "campaign %s was offered again but already ended %s here: sending its stored report again",
           id.c_str(), v1::CampaignResult_Name(stored->result()).c_str());
  cloud->resend_stored_report(id);
  return stored;
}

void await_report_acks(CloudLink* cloud) {
  if (cloud == nullptr) return;
  if (Status st = cloud->wait_reports_acknowledged(kReportAckWait); !st.is_ok())
    OTA_LOGW("client", "cloud: %s", st.to_string().c_str());
}

}  // namespace ota::client
