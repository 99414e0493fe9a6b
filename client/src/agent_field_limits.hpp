// Bounds on what the client copies from an agent into its own messages (inventory, status, the
// vehicle report). An agent is untrusted input: each of its messages is at most
// codec::kMaxControlMessage, but copied into one report per ECU, twice for DTCs, a few inflating
// agents would push the report over the broker's message_size_limit (1 MiB) and it would not be
// delivered at all. Every cap is here, in one place; whatever is cut is logged as an error naming
// the ECU and the field.
#pragma once

#include <cstddef>
#include <string>

#include "ota/v1/ota.pb.h"

namespace ota::client {

struct AgentFieldLimits {
  // Version strings, hardware ids, serials, software names, DTC descriptions, delta method names.
  static constexpr size_t kMaxText = 128;
  // An error text (Error.message) from an agent, or built by the client around one.
  static constexpr size_t kMaxErrorText = 1024;
  // DTCs kept of one list (a vehicle ECU reports a few dozen at most).
  static constexpr size_t kMaxDtcs = 64;
  // Banks and delta methods listed in one inventory.
  static constexpr size_t kMaxBanks = 4;
  static constexpr size_t kMaxDeltaMethods = 8;
  // An ECU-signed Result kept in the report as received (a genuine one is a few hundred bytes;
  // it cannot be cut without breaking its signature, so a larger one is left out).
  static constexpr size_t kMaxSignedResult = 4096;
  // The whole report: under the vehicle broker's message_size_limit (1 MiB) with room to spare,
  // and under the cloud link's limit. deliver_report() keeps every report below it.
  static constexpr size_t kMaxReportBytes = 512 * 1024;
};

// Each cuts its message in place to AgentFieldLimits and returns what it cut ("" if nothing), for
// the caller to log with the ECU's name.
std::string cap_inventory(v1::Inventory* inv);
std::string cap_dtcs(google::protobuf::RepeatedPtrField<v1::Dtc>* dtcs);
std::string cap_error(v1::Error* error);
std::string cap_state(v1::AgentState* state);

// Cuts the per-ECU fields of a report to AgentFieldLimits, then, while the report is still above
// `max_bytes`, drops the DTC lists, then the phase timings, then the signed results, then the
// error texts beyond 128 bytes, of every ECU. Returns what it cut ("" if nothing). The result is
// at most max_bytes unless the fields the client itself writes exceed it (not with max_targets
// ECUs and kMaxReportBytes).
std::string cap_report(v1::VehicleReport* report, size_t max_bytes = AgentFieldLimits::kMaxReportBytes);

}  // namespace ota::client
