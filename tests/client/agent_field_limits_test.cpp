// The caps on what the client copies from agents (AgentFieldLimits): each field, each list, and the
// whole report.
#include <catch2/catch.hpp>

#include <string>

#include "agent_field_limits.hpp"

namespace v1 = ota::v1;
using ota::client::AgentFieldLimits;

TEST_CASE("cap_report keeps a report of many inflated ECUs under its limit and says what it cut", "[unit]") {
  v1::VehicleReport r;
  r.set_reason(std::string(10000, 'r'));
  for (int i = 0; i < 512; ++i) {
    auto* e = r.add_ecus();
    e->set_ecu_id("ecu-" + std::to_string(i));
    e->set_version_after(std::string(5000, 'v'));
    e->mutable_error()->set_message(std::string(5000, 'e'));
    e->set_ecu_signed_result(std::string(5000, 's'));
    for (int d = 0; d < 100; ++d) e->add_dtcs_before()->set_description(std::string(500, 'd'));
    e->add_phases();
  }
  const std::string cut = ota::client::cap_report(&r);
  CHECK(r.ByteSizeLong() <= AgentFieldLimits::kMaxReportBytes);
  CHECK(r.ecus_size() == 512);
  CHECK(r.reason().size() == AgentFieldLimits::kMaxErrorText);
  CHECK(r.ecus(7).version_after().size() == AgentFieldLimits::kMaxText);
  CHECK(cut.find("ecu-7: version_after (5000 bytes)") != std::string::npos);
  CHECK(cut.find("DTC lists of every ECU dropped") != std::string::npos);

  v1::VehicleReport small;
  small.add_ecus()->set_version_after("1.0.0");
  CHECK(ota::client::cap_report(&small).empty());
  CHECK(small.ecus(0).version_after() == "1.0.0");
}

TEST_CASE("Agent messages are cut to the client's limits at a character boundary", "[unit]") {
  v1::Inventory inv;
  inv.set_hardware_id(std::string(AgentFieldLimits::kMaxText - 1, 'h') +
                      "\xc3\xa9");  // 'e' acute across the cap
  for (int i = 0; i < 10; ++i) inv.add_banks()->set_version("1.0." + std::to_string(i));
  const std::string cut = ota::client::cap_inventory(&inv);
  CHECK(inv.hardware_id().size() == AgentFieldLimits::kMaxText - 1);
  CHECK(inv.banks_size() == static_cast<int>(AgentFieldLimits::kMaxBanks));
  CHECK(cut == "hardware_id (129 bytes), banks (10)");

  v1::DtcList dtcs;
  for (int i = 0; i < 100; ++i) dtcs.add_dtcs()->set_description(std::string(i == 0 ? 300 : 10, 'd'));
  CHECK(ota::client::cap_dtcs(dtcs.mutable_dtcs()) == "DTCs (100), DTC description (300 bytes)");
  CHECK(dtcs.dtcs_size() == static_cast<int>(AgentFieldLimits::kMaxDtcs));
  CHECK(dtcs.dtcs(0).description().size() == AgentFieldLimits::kMaxText);

  v1::AgentState state;
  state.mutable_last_error()->set_message("short");
  CHECK(ota::client::cap_state(&state).empty());
  CHECK(state.last_error().message() == "short");
}
