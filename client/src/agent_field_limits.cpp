#include "agent_field_limits.hpp"

namespace ota::client {

namespace {

using Limits = AgentFieldLimits;

// Cuts `s` to `max` bytes (at a UTF-8 character boundary, so the result stays a valid proto3
// string) and notes `what` in `cut`.
void cap_text(std::string* s, size_t max, const char* what, std::string* cut) {
  if (s->size() <= max) return;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>((*s)[n]) & 0xC0) == 0x80) --n;
  *cut += std::string(cut->empty() ? "" : ", ") + what + " (" + std::to_string(s->size()) + " bytes)";
  s->resize(n);
}

template <typename T>
void cap_count(google::protobuf::RepeatedPtrField<T>* list, size_t max, const char* what, std::string* cut) {
  if (static_cast<size_t>(list->size()) <= max) return;
  *cut += std::string(cut->empty() ? "" : ", ") + what + " (" + std::to_string(list->size()) + ")";
  list->DeleteSubrange(static_cast<int>(max), list->size() - static_cast<int>(max));
}

void append(std::string* all, const std::string& part, const std::string& where) {
  if (part.empty()) return;
  *all += std::string(all->empty() ? "" : "; ") + where + ": " + part;
}

}  // namespace

std::string cap_inventory(v1::Inventory* inv) {
  std::string cut;
  cap_text(inv->mutable_hardware_id(), Limits::kMaxText, "hardware_id", &cut);
  cap_text(inv->mutable_serial(), Limits::kMaxText, "serial", &cut);
  cap_text(inv->mutable_agent_software(), Limits::kMaxText, "agent_software", &cut);
  cap_count(inv->mutable_banks(), Limits::kMaxBanks, "banks", &cut);
  for (auto& b : *inv->mutable_banks()) cap_text(b.mutable_version(), Limits::kMaxText, "bank version", &cut);
  auto* methods = inv->mutable_capabilities()->mutable_delta_methods();
  cap_count(methods, Limits::kMaxDeltaMethods, "delta_methods", &cut);
  for (auto& m : *methods) cap_text(&m, Limits::kMaxText, "delta method", &cut);
  return cut;
}

std::string cap_dtcs(google::protobuf::RepeatedPtrField<v1::Dtc>* dtcs) {
  std::string cut;
  cap_count(dtcs, Limits::kMaxDtcs, "DTCs", &cut);
  for (auto& d : *dtcs) cap_text(d.mutable_description(), Limits::kMaxText, "DTC description", &cut);
  return cut;
}

std::string cap_error(v1::Error* error) {
  std::string cut;
  cap_text(error->mutable_message(), Limits::kMaxErrorText, "error text", &cut);
  return cut;
}

std::string cap_state(v1::AgentState* state) {
  std::string cut;
  cap_text(state->mutable_campaign_id(), Limits::kMaxText, "campaign_id", &cut);
  cap_text(state->mutable_correlation_id(), Limits::kMaxText, "correlation_id", &cut);
  cap_text(state->mutable_last_error()->mutable_message(), Limits::kMaxErrorText, "error text", &cut);
  return cut;
}

namespace {

std::string cap_ecu_report(v1::EcuReport* e) {
  std::string cut;
  cap_text(e->mutable_version_before(), Limits::kMaxText, "version_before", &cut);
  cap_text(e->mutable_version_after(), Limits::kMaxText, "version_after", &cut);
  cap_text(e->mutable_error()->mutable_message(), Limits::kMaxErrorText, "error text", &cut);
  cap_count(e->mutable_dtcs_before(), Limits::kMaxDtcs, "dtcs_before", &cut);
  cap_count(e->mutable_dtcs_after(), Limits::kMaxDtcs, "dtcs_after", &cut);
  for (auto& d : *e->mutable_dtcs_before())
    cap_text(d.mutable_description(), Limits::kMaxText, "DTC description", &cut);
  for (auto& d : *e->mutable_dtcs_after())
    cap_text(d.mutable_description(), Limits::kMaxText, "DTC description", &cut);
  if (e->ecu_signed_result().size() > Limits::kMaxSignedResult) {
    cut += std::string(cut.empty() ? "" : ", ") + "signed result left out (" +
           std::to_string(e->ecu_signed_result().size()) + " bytes)";
    e->clear_ecu_signed_result();
  }
  return cut;
}

}  // namespace

std::string cap_report(v1::VehicleReport* report, size_t max_bytes) {
  std::string all;
  std::string cut;
  cap_text(report->mutable_reason(), Limits::kMaxErrorText, "reason", &cut);
  append(&all, cut, "report");
  for (auto& e : *report->mutable_ecus()) append(&all, cap_ecu_report(&e), e.ecu_id());
  // Still too large (many ECUs): drop what matters least first, for every ECU at once.
  const struct {
    const char* what;
    void (*drop)(v1::EcuReport*);
  } steps[] = {
      {"DTC lists",
       [](v1::EcuReport* e) {
         e->clear_dtcs_before();
         e->clear_dtcs_after();
       }},
      {"phase timings", [](v1::EcuReport* e) { e->clear_phases(); }},
      {"signed results", [](v1::EcuReport* e) { e->clear_ecu_signed_result(); }},
      {"error texts beyond 128 bytes",
       [](v1::EcuReport* e) {
         if (e->error().message().size() > 128) e->mutable_error()->mutable_message()->resize(128);
       }},
  };
  for (const auto& step : steps) {
    if (report->ByteSizeLong() <= max_bytes) break;
    for (auto& e : *report->mutable_ecus()) step.drop(&e);
    append(&all, std::string(step.what) + " of every ECU dropped",
           "report over " + std::to_string(max_bytes) + " bytes");
  }
  return all;
}

}  // namespace ota::client
