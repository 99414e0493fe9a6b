#include "campaign/report.hpp"

#include <google/protobuf/util/json_util.h>

#include "campaign/journal.hpp"
#include "ota/core/codec.hpp"

namespace ota::client {

std::string report_to_json(const v1::VehicleReport& report) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(report, &out, opts);
  return out;
}

void add_phase_time(v1::EcuReport* report, v1::Phase phase, uint64_t ms) {
  for (auto& p : *report->mutable_phases()) {
    if (p.phase() == phase) {
      p.set_duration_ms(p.duration_ms() + ms);
      return;
    }
  }
  auto* p = report->add_phases();
  p->set_phase(phase);
  p->set_duration_ms(ms);
}

v1::CampaignResult campaign_result(const v1::CampaignJournal& journal) {
  for (const auto& g : journal.groups()) {
    if (recorded_decision(g) == v1::GROUP_DECISION_CANCEL) return v1::CAMPAIGN_CANCELLED;
  }
  for (const auto& e : journal.ecus()) {
    const auto result = e.report().result();
    if (result != v1::SUCCESS && result != v1::SKIPPED) return v1::CAMPAIGN_FAILED;
  }
  return v1::CAMPAIGN_SUCCESS;
}

std::string first_failure(const v1::CampaignJournal& journal) {
  for (const auto& e : journal.ecus()) {
    if (e.report().result() == v1::FAILED) {
      return e.ecu_id() + " failed in " + codec::phase_name(e.report().error().phase()) + ": " +
             e.report().error().message();
    }
  }
  return "";
}

}  // namespace ota::client
