// The campaign journal's typed API: decisions of earlier clients' journals, the completed step, the
// checks on a journal read back, and when open() resumes or starts afresh.
#include <catch2/catch.hpp>

#include "campaign/journal.hpp"
#include "ota/core/file.hpp"
#include "ota/sim/tempdir.hpp"

using ota::Code;
using ota::Status;
using ota::client::EcuStep;
using ota::client::Journal;
namespace v1 = ota::v1;

namespace {

v1::Campaign two_ecu_campaign(const std::string& id) {
  v1::Campaign c;
  c.set_campaign_id(id);
  c.set_vin("VIN1");
  for (const char* ecu : {"bcm", "tcu"}) {
    auto* t = c.add_targets();
    t->set_ecu_id(ecu);
    t->set_version("2.0");
    t->set_group(1);
  }
  return c;
}

ota::sim::TempDir temp() {
  auto t = ota::sim::TempDir::create("ota-journal-test-");
  REQUIRE(t.is_ok());
  return std::move(*t);
}

v1::CampaignJournal read_back(const std::string& path) {
  auto bytes = ota::read_small_file(path, ota::client::kMaxJournalBytes);
  REQUIRE(bytes.is_ok());
  v1::CampaignJournal j;
  REQUIRE(j.ParseFromString(*bytes));
  return j;
}

}  // namespace

TEST_CASE("a decision journaled as a string by an earlier client reads as the enum", "[unit][campaign]") {
  v1::GroupJournal g;
  CHECK(ota::client::recorded_decision(g) == v1::GROUP_DECISION_UNDECIDED);
  g.set_decision("commit");
  CHECK(ota::client::recorded_decision(g) == v1::GROUP_DECISION_COMMIT);
  g.set_decision("rollback");
  CHECK(ota::client::recorded_decision(g) == v1::GROUP_DECISION_ROLLBACK);
  g.set_decision("cancel");
  CHECK(ota::client::recorded_decision(g) == v1::GROUP_DECISION_CANCEL);
  // The enum, once set, is what counts.
  g.set_group_decision(v1::GROUP_DECISION_COMMIT);
  CHECK(ota::client::recorded_decision(g) == v1::GROUP_DECISION_COMMIT);
}

TEST_CASE("a decision is recorded as the enum and as the earlier string", "[unit][campaign]") {
  v1::GroupJournal g;
  ota::client::record_decision(&g, v1::GROUP_DECISION_ROLLBACK);
  CHECK(g.group_decision() == v1::GROUP_DECISION_ROLLBACK);
  CHECK(g.decision() == "rollback");
  ota::client::record_decision(&g, v1::GROUP_DECISION_CANCEL);
  CHECK(g.decision() == "cancel");
}

TEST_CASE("the completed step is kept apart from the agent's phase", "[unit][campaign]") {
  v1::EcuJournal e;
  CHECK(ota::client::completed_step(e) == EcuStep::kNone);
  for (auto step : {EcuStep::kStaged, EcuStep::kTrial, EcuStep::kDone, EcuStep::kNone}) {
    ota::client::set_completed_step(&e, step);
    CHECK(ota::client::completed_step(e) == step);
  }
  // Agent phases that are no step of the journal (TRANSFER in earlier clients' journals) read as none.
  for (auto phase :
       {v1::PHASE_TRANSFER, v1::PHASE_INSTALL, v1::PHASE_ACTIVATE, v1::PHASE_HEALTH, v1::PHASE_IDLE}) {
    e.set_phase(phase);
    CHECK(ota::client::completed_step(e) == EcuStep::kNone);
  }
}

TEST_CASE("a journal read back is checked", "[unit][campaign]") {
  v1::CampaignJournal j;
  *j.mutable_campaign() = two_ecu_campaign("c1");
  j.add_ecus()->set_ecu_id("bcm");
  j.add_ecus()->set_ecu_id("tcu");
  j.add_groups()->set_group(1);
  REQUIRE(ota::client::check_journal(j).is_ok());

  SECTION("an unknown decision string") {
    j.mutable_groups(0)->set_decision("maybe");
    Status st = ota::client::check_journal(j);
    CHECK(st.code() == Code::kCorrupt);
    CHECK(st.message() == "group 1 has an unknown decision 'maybe'");
  }
  SECTION("an unknown decision value") {
    j.mutable_groups(0)->set_group_decision(static_cast<v1::GroupDecision>(42));
    CHECK(ota::client::check_journal(j).message() == "group 1 has an unknown decision 42");
  }
  SECTION("an ECU the campaign does not target") {
    j.mutable_ecus(1)->set_ecu_id("abs");
    CHECK(ota::client::check_journal(j).message() == "ECU 'abs' is not a target of the campaign");
  }
  SECTION("a missing ECU") {
    j.mutable_ecus()->RemoveLast();
    CHECK(ota::client::check_journal(j).code() == Code::kCorrupt);
  }
  SECTION("a group the campaign does not have") {
    j.mutable_groups(0)->set_group(7);
    CHECK(ota::client::check_journal(j).message() == "group 7 is not in the campaign");
  }
}

TEST_CASE("open() resumes the same unfinished campaign, even from an earlier client's journal",
          "[unit][campaign]") {
  auto dir = temp();
  const std::string path = dir.file("journal.pb");
  {
    Journal first(path, nullptr);
    REQUIRE(first.open(two_ecu_campaign("c1")).is_ok());
    CHECK(first.data().resumes() == 0);
    CHECK(first.data().ecus_size() == 2);
    CHECK(first.data().ecus(0).transfer_id() == "c1/bcm/2.0");
    CHECK(first.members(1).size() == 2);
    // What an earlier client wrote: the decision as a string only.
    first.data().set_started(true);
    first.data().mutable_groups(0)->set_decision("rollback");
    REQUIRE(first.save().is_ok());
  }
  Journal again(path, nullptr);
  REQUIRE(again.open(two_ecu_campaign("c1")).is_ok());
  CHECK(again.data().resumes() == 1);
  CHECK(again.data().started());
  CHECK(ota::client::recorded_decision(again.data().groups(0)) == v1::GROUP_DECISION_ROLLBACK);
  CHECK(read_back(path).resumes() == 1);  // the resume itself is journaled

  SECTION("another campaign starts afresh") {
    Journal other(path, nullptr);
    REQUIRE(other.open(two_ecu_campaign("c2")).is_ok());
    CHECK(other.data().resumes() == 0);
    CHECK_FALSE(other.data().started());
    CHECK(read_back(path).campaign().campaign_id() == "c2");
  }
  SECTION("a finished campaign starts afresh") {
    again.data().set_finished(true);
    REQUIRE(again.save().is_ok());
    Journal rerun(path, nullptr);
    REQUIRE(rerun.open(two_ecu_campaign("c1")).is_ok());
    CHECK_FALSE(rerun.data().started());
    CHECK(rerun.data().resumes() == 0);
  }
  SECTION("an unreadable journal starts afresh") {
    REQUIRE(ota::atomic_write_file(path, std::string("\xff\xff\xff garbage", 11)).is_ok());
    Journal fresh(path, nullptr);
    REQUIRE(fresh.open(two_ecu_campaign("c1")).is_ok());
    CHECK_FALSE(fresh.data().started());
  }
}

TEST_CASE("the write hook sees every write and can refuse it", "[unit][campaign]") {
  auto dir = temp();
  const std::string path = dir.file("journal.pb");
  int writes = 0;
  bool refuse = false;
  Journal j(path, [&](const v1::CampaignJournal& next) {
    ++writes;
    CHECK(next.campaign().campaign_id() == "c1");
    return refuse ? Status(Code::kIoError, "refused") : Status::ok();
  });
  REQUIRE(j.open(two_ecu_campaign("c1")).is_ok());
  CHECK(writes == 1);
  refuse = true;
  j.data().set_started(true);
  Status st = j.save();
  CHECK(st.code() == Code::kIoError);
  CHECK(writes == 2);
  CHECK_FALSE(read_back(path).started());  // the refused write did not happen
}

TEST_CASE("the campaign a client resumes at start: only an unfinished journal's", "[unit][campaign]") {
  auto dir = temp();
  const std::string path = dir.path() + "/campaign-journal.pb";
  CHECK_FALSE(ota::client::unfinished_campaign(path).has_value());  // no journal
  Journal j(path, nullptr);
  REQUIRE(j.open(two_ecu_campaign("c1")).is_ok());
  auto pending = ota::client::unfinished_campaign(path);
  REQUIRE(pending.has_value());
  CHECK(pending->campaign_id() == "c1");
  CHECK(pending->targets_size() == 2);
  j.data().set_finished(true);
  REQUIRE(j.save().is_ok());
  CHECK_FALSE(ota::client::unfinished_campaign(path).has_value());
  REQUIRE(ota::atomic_write_file(path, "not a journal").is_ok());
  CHECK_FALSE(ota::client::unfinished_campaign(path).has_value());
}
