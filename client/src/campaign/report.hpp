// The vehicle report (v1::VehicleReport): its JSON form, and how the runner's journal turns into the
// campaign's result. docs/CLIENT.md section 6 describes the fields.
#pragma once

#include <cstdint>
#include <string>

#include "ota/v1/state.pb.h"

namespace ota::client {

// JSON of a report (protobuf JSON mapping, proto field names, enums as names, every scalar printed).
std::string report_to_json(const v1::VehicleReport& report);

// Adds `ms` to the report's timing of `phase` (one entry per phase, in the order first timed).
void add_phase_time(v1::EcuReport* report, v1::Phase phase, uint64_t ms);

// The result once every group is done: CANCELLED when a group was cancelled, SUCCESS when every ECU
// is SUCCESS or SKIPPED, FAILED otherwise.
v1::CampaignResult campaign_result(const v1::CampaignJournal& journal);

// "<ecu> failed in <phase>: <message>" for the first FAILED ECU in campaign order; empty if none.
std::string first_failure(const v1::CampaignJournal& journal);

}  // namespace ota::client
