// What the client tells the vehicle and the platform: the inventory, every status, the final
// report (also written to a file).
#pragma once

#include <functional>
#include <map>
#include <string>

#include "agent_directory.hpp"
#include "cloud_link.hpp"
#include "ota/core/transport.hpp"

namespace ota::client {

// Publishes the inventory of the agents seen so far to the platform. A failure is logged only: the
// campaign does not depend on it.
void publish_inventory(CloudLink& cloud, const std::string& vin,
                       const std::map<std::string, AgentView>& agents);

// A RunnerOptions::on_status that publishes each status in the vehicle (retained) and, when `cloud`
// is not null, to the platform. Both must outlive the returned function.
std::function<void(const v1::CampaignStatus&)> status_publisher(Transport& vehicle, CloudLink* cloud);

// Publishes the report in the vehicle (retained, flushed for up to 5 s), queues it for the platform
// when `cloud` is not null (CloudLink::queue_report: durable, resent until acknowledged; a failure
// there is logged), and writes it as JSON to `file` when that is not empty and
// may_replace_report_file() allows it.
// Every copy is the report cut by cap_report() to AgentFieldLimits::kMaxReportBytes, so that no
// broker refuses it; what was cut is logged as an error.
// Returns the outcome of the file write, the one copy a caller may depend on.
Status deliver_report(const v1::VehicleReport& report, Transport& vehicle, CloudLink* cloud,
                      const std::string& file);

// Whether `report` may replace what `file` holds: always, but for a CAMPAIGN_REJECTED report, which
// never replaces the report of another campaign nor a report that is not a rejection (a refused
// campaign changed nothing on the vehicle; the file keeps saying what did). A refusal is logged.
bool may_replace_report_file(const std::string& file, const v1::VehicleReport& report);

}  // namespace ota::client
