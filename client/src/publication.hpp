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

// Publishes the report in the vehicle (retained, flushed for up to 5 s), to the platform when `cloud`
// is not null (a failure there is logged), and writes it as JSON to `file` when that is not empty.
// Every copy is the report cut by cap_report() to AgentFieldLimits::kMaxReportBytes, so that no
// broker refuses it; what was cut is logged as an error.
// Returns the outcome of the file write, the one copy a caller may depend on.
Status deliver_report(const v1::VehicleReport& report, Transport& vehicle, CloudLink* cloud,
                      const std::string& file);

}  // namespace ota::client
