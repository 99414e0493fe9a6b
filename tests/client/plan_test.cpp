// The pure parts of a campaign's start: the pre-conditions and each ECU's transfer plan.
#include <catch2/catch.hpp>

#include "campaign/plan.hpp"
#include "campaign/preconditions.hpp"
#include "campaign/report.hpp"
#include "campaign/status.hpp"

using ota::Code;
using ota::client::AgentView;
namespace v1 = ota::v1;

namespace {

const std::string kBase(32, 'b');
const std::string kOther(32, 'o');

v1::Campaign campaign_with_delta() {
  v1::Campaign c;
  c.set_campaign_id("c1");
  auto* t = c.add_targets();
  t->set_ecu_id("bcm");
  t->set_version("2.0");
  t->set_size(1000);
  t->set_sha256(std::string(32, 'i'));
  t->set_group(1);
  t->mutable_full()->set_uri("/payloads/full.bin");
  t->mutable_full()->set_size(1000);
  t->mutable_delta()->set_uri("/payloads/delta.bin");
  t->mutable_delta()->set_size(100);
  t->mutable_delta()->set_sha256(std::string(32, 'd'));
  t->mutable_delta()->set_base_sha256(kBase);
  t->mutable_delta()->set_base_version("1.0");
  auto* other = c.add_targets();
  other->set_ecu_id("tcu");
  other->set_group(1);
  return c;
}

AgentView agent(bool delta_capable, const std::string& active_sha) {
  AgentView view;
  auto* inv = view.hello.mutable_inventory();
  inv->set_ecu_id("bcm");
  inv->set_active_bank(v1::BANK_A);
  auto* bank = inv->add_banks();
  bank->set_bank(v1::BANK_A);
  bank->set_version("1.0");
  bank->set_sha256(active_sha);
  inv->mutable_capabilities()->set_delta(delta_capable);
  inv->set_bank_size(4096);
  inv->set_free_space(4096);
  return view;
}

v1::VehicleConditions parked() {
  v1::VehicleConditions c;
  c.set_parked(true);
  c.set_ignition_off(true);
  c.set_battery_soc_percent(80);
  return c;
}

}  // namespace

TEST_CASE("the plan sends the delta only to an agent that can rebuild it from the image it runs",
          "[unit][campaign]") {
  const v1::Campaign c = campaign_with_delta();
  const auto& t = c.targets(0);
  auto plan =
      ota::client::make_transfer_plan(c, t, "c1/bcm/2.0", agent(true, kBase), 2, std::chrono::seconds(5));
  CHECK(plan.target.encoding() == v1::PAYLOAD_ENCODING_DELTA);
  CHECK(plan.target.payload_size() == 100);
  CHECK(plan.target.base_sha256() == kBase);
  CHECK(plan.payload_path == "/payloads/delta.bin");
  CHECK(&ota::client::planned_payload(plan, t) == &t.delta());

  for (const auto& view : {agent(false, kBase), agent(true, kOther)}) {
    auto full = ota::client::make_transfer_plan(c, t, "c1/bcm/2.0", view, 2, std::chrono::seconds(5));
    CHECK(full.target.encoding() == v1::PAYLOAD_ENCODING_RAW);
    CHECK(full.target.payload_size() == 1000);
    CHECK(full.payload_path == "/payloads/full.bin");
    CHECK(full.source == ota::client::PayloadSource::kFile);
    CHECK(&ota::client::planned_payload(full, t) == &t.full());
  }
}

TEST_CASE("the plan's chunk size and window: the campaign's, bounded by the agent", "[unit][campaign]") {
  v1::Campaign c = campaign_with_delta();
  AgentView view = agent(false, kBase);
  auto plan = ota::client::make_transfer_plan(c, c.targets(0), "x", view, 2, std::chrono::seconds(5));
  CHECK(plan.chunk_size == 256 * 1024);
  CHECK(plan.window == ota::client::kInFlightBudget / 2);
  c.set_chunk_size(1024);
  c.set_window(8);
  view.hello.mutable_inventory()->mutable_capabilities()->set_max_chunk_size(512);
  view.hello.mutable_inventory()->mutable_capabilities()->set_max_window(3);
  plan = ota::client::make_transfer_plan(c, c.targets(0), "x", view, 2, std::chrono::seconds(5));
  CHECK(plan.chunk_size == 512);
  CHECK(plan.window == 3);
}

TEST_CASE("pre-conditions name the first one that does not hold", "[unit][campaign]") {
  v1::Campaign c = campaign_with_delta();
  c.mutable_preconditions()->set_require_parked(true);
  c.mutable_preconditions()->set_require_ignition_off(true);
  c.mutable_preconditions()->set_min_battery_soc_percent(50);
  std::map<std::string, AgentView> agents{{"bcm", agent(true, kBase)}};
  CHECK(ota::client::check_preconditions(c, parked(), agents).is_ok());

  auto cond = parked();
  cond.set_parked(false);
  auto st = ota::client::check_preconditions(c, cond, agents);
  CHECK(st.code() == Code::kRejected);
  CHECK(st.message() == "vehicle is not parked");

  cond = parked();
  cond.set_ignition_off(false);
  CHECK(ota::client::check_preconditions(c, cond, agents).message() == "ignition is on");

  cond = parked();
  cond.set_battery_soc_percent(20);
  CHECK(ota::client::check_preconditions(c, cond, agents).message() ==
        "battery at 20 %, below the required 50 %");

  st = ota::client::check_preconditions(c, ota::Status(Code::kIoError, "no CAN"), agents);
  CHECK(st.code() == Code::kUnavailable);
  CHECK(st.message() == "vehicle state unavailable: no CAN");

  agents["bcm"].hello.mutable_inventory()->set_bank_size(999);
  CHECK(ota::client::check_preconditions(c, parked(), agents).message() ==
        "bcm: image of 1000 bytes exceeds its bank of 999");
  agents["bcm"].hello.mutable_inventory()->set_bank_size(4096);
  agents["bcm"].hello.mutable_inventory()->set_free_space(99);
  CHECK(ota::client::check_preconditions(c, parked(), agents).message() ==
        "bcm: 99 bytes free, the delta needs 100");
  // An agent that cannot apply deltas gets the full image: its free space for a delta does not matter.
  agents["bcm"].hello.mutable_inventory()->mutable_capabilities()->set_delta(false);
  CHECK(ota::client::check_preconditions(c, parked(), agents).is_ok());
}

TEST_CASE("the campaign state has one display text per value", "[unit][campaign]") {
  std::set<std::string> texts;
  const auto* desc = v1::CampaignStatus::CampaignState_descriptor();
  for (int i = 0; i < desc->value_count(); ++i) {
    auto state = static_cast<ota::client::CampaignState>(desc->value(i)->number());
    const std::string text = ota::client::campaign_state_text(state);
    if (state == v1::CampaignStatus::CAMPAIGN_STATE_UNSPECIFIED) {
      CHECK(text.empty());
    } else {
      CHECK_FALSE(text.empty());
      CHECK(texts.insert(text).second);
    }
  }
  CHECK(std::string(ota::client::campaign_state_text(v1::CampaignStatus::CAMPAIGN_STATE_ROLLING_BACK)) ==
        "rolling back");
}

TEST_CASE("the campaign result follows the ECUs' results and the groups' decisions", "[unit][campaign]") {
  v1::CampaignJournal j;
  auto* a = j.add_ecus();
  a->set_ecu_id("bcm");
  a->mutable_report()->set_result(v1::SUCCESS);
  auto* b = j.add_ecus();
  b->set_ecu_id("tcu");
  b->mutable_report()->set_result(v1::SKIPPED);
  j.add_groups()->set_group(1);
  CHECK(ota::client::campaign_result(j) == v1::CAMPAIGN_SUCCESS);
  CHECK(ota::client::first_failure(j).empty());
  b->mutable_report()->set_result(v1::FAILED);
  b->mutable_report()->mutable_error()->set_phase(v1::PHASE_HEALTH);
  b->mutable_report()->mutable_error()->set_message("unhealthy");
  CHECK(ota::client::campaign_result(j) == v1::CAMPAIGN_FAILED);
  CHECK(ota::client::first_failure(j) == "tcu failed in health: unhealthy");
  j.mutable_groups(0)->set_decision("cancel");  // an earlier client's journal
  CHECK(ota::client::campaign_result(j) == v1::CAMPAIGN_CANCELLED);
}
