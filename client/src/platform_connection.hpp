// The client's link to the OTA platform ([cloud]): MQTT v5 over TLS, campaigns in, inventory,
// status and reports out (docs/PROTOCOL.md, "Cloud link"). Reports wait in the durable outbox
// STATE/reports until the platform acknowledges them (report_outbox.hpp).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "campaign_intake.hpp"
#include "cloud_link.hpp"
#include "config.hpp"

namespace ota::client {

// How long the client waits, once it delivered a report, for the platform's ReportAck before it
// exits (the report stays queued and is sent again at the next start).
inline constexpr std::chrono::seconds kReportAckWait{20};

// Connects when [cloud] uri is set; nullptr when it is not. The report outbox is
// `state_dir`/reports; the reports it holds unacknowledged are published at once.
// Errors: CloudLink::connect's.
Result<std::unique_ptr<CloudLink>> connect_platform(const ClientConfig::Cloud& cloud,
                                                    const std::string& state_dir);

// A campaign the platform offers again after it finished here (success, failure or cancel: its
// report was lost or late) is not run again nor refused as a replay: when `cloud` holds the stored
// report of the campaign id `input` claims (not a rejection, not postponed), that report is
// queued again and returned. nullopt otherwise (no link, no id, no such report).
std::optional<v1::VehicleReport> answer_finished_campaign(CloudLink* cloud, const CampaignInput& input);

// Waits up to kReportAckWait for the platform to acknowledge every queued report; a timeout is
// logged (the reports stay queued). Nothing to do without a link.
void await_report_acks(CloudLink* cloud);

}  // namespace ota::client
