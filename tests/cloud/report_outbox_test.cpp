// ReportOutbox on a real directory: what survives a restart (reopening the directory), what an
// acknowledgement changes, what a rejection may not replace, and the bound on its size.
#include <catch2/catch.hpp>

#include <filesystem>

#include "ota/core/file.hpp"
#include "ota/sim/tempdir.hpp"
#include "report_outbox.hpp"

namespace {

using ota::client::ReportOutbox;

ota::v1::VehicleReport report(const std::string& id, ota::v1::CampaignResult result) {
  ota::v1::VehicleReport r;
  r.set_vin("VIN1");
  r.set_campaign_id(id);
  r.set_result(result);
  r.add_ecus()->set_ecu_id("bcm");
  return r;
}

std::unique_ptr<ReportOutbox> open_box(const std::string& dir) {
  auto box = ReportOutbox::open(dir);
  INFO(box.status().to_string());
  REQUIRE(box.is_ok());
  return std::move(box.value());
}

struct OutboxDir {
  OutboxDir() {
    auto t = ota::sim::TempDir::create("ota-outbox-test-");
    REQUIRE(t.is_ok());
    tmp.emplace(std::move(t.value()));
    dir = tmp->file("reports");
  }
  std::optional<ota::sim::TempDir> tmp;
  std::string dir;
};

}  // namespace

TEST_CASE_METHOD(OutboxDir, "A queued report stays pending across restarts until acknowledged",
                 "[unit][cloud][fault]") {
  {
    auto box = open_box(dir);
    REQUIRE(box->put(report("camp-1", ota::v1::CAMPAIGN_SUCCESS)).is_ok());
    REQUIRE(box->pending().size() == 1);
  }  // the client dies here
  auto box = open_box(dir);
  REQUIRE(box->pending().size() == 1);
  CHECK(box->pending()[0].campaign_id() == "camp-1");
  CHECK(box->acknowledge("other") == 0);
  CHECK(box->acknowledge("camp-1") == 1);
  CHECK(box->acknowledge("camp-1") == 0);  // a duplicate ack changes nothing
  CHECK(box->pending().empty());

  auto again = open_box(dir);
  CHECK(again->pending().empty());
  auto stored = again->find("camp-1");
  REQUIRE(stored.has_value());
  CHECK(stored->result() == ota::v1::CAMPAIGN_SUCCESS);
  CHECK_FALSE(again->find("").has_value());

  SECTION("requeue makes a stored report pending again, durably") {
    REQUIRE(again->requeue("camp-1"));
    CHECK_FALSE(again->requeue("camp-unknown"));
    CHECK(open_box(dir)->pending().size() == 1);
  }
}

TEST_CASE_METHOD(OutboxDir, "A rejection never replaces another report", "[unit][cloud][security]") {
  auto box = open_box(dir);
  REQUIRE(box->put(report("camp-1", ota::v1::CAMPAIGN_SUCCESS)).is_ok());
  REQUIRE(box->acknowledge("camp-1") == 1);

  SECTION("a rejection of the same campaign keeps the stored SUCCESS") {
    REQUIRE(box->put(report("camp-1", ota::v1::CAMPAIGN_REJECTED)).is_ok());
    CHECK(open_box(dir)->find("camp-1")->result() == ota::v1::CAMPAIGN_SUCCESS);
    CHECK(box->pending().empty());
  }
  SECTION("a rejection without a campaign id is stored beside it") {
    REQUIRE(box->put(report("", ota::v1::CAMPAIGN_REJECTED)).is_ok());
    auto reopened = open_box(dir);
    CHECK(reopened->size() == 2);
    CHECK(reopened->find("camp-1")->result() == ota::v1::CAMPAIGN_SUCCESS);
    REQUIRE(reopened->pending().size() == 1);
    CHECK(reopened->pending()[0].result() == ota::v1::CAMPAIGN_REJECTED);
  }
  SECTION("an id that is not a file name does not escape the directory") {
    REQUIRE(box->put(report("../../etc/x", ota::v1::CAMPAIGN_REJECTED)).is_ok());
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      CHECK(e.path().filename().string().rfind("..", 0) != 0);
    }
    CHECK(open_box(dir)->find("../../etc/x").has_value());
  }
  SECTION("a later result of the same campaign replaces a rejection") {
    REQUIRE(box->put(report("camp-2", ota::v1::CAMPAIGN_REJECTED)).is_ok());
    REQUIRE(box->put(report("camp-2", ota::v1::CAMPAIGN_FAILED)).is_ok());
    CHECK(open_box(dir)->find("camp-2")->result() == ota::v1::CAMPAIGN_FAILED);
  }
}

TEST_CASE_METHOD(OutboxDir, "The outbox is bounded: the oldest acknowledged report goes first",
                 "[unit][cloud][fault]") {
  auto box = open_box(dir);
  REQUIRE(box->put(report("pending-oldest", ota::v1::CAMPAIGN_FAILED)).is_ok());
  for (size_t i = 1; i < ReportOutbox::kMaxReports; ++i) {
    const std::string id = "camp-" + std::to_string(i);
    REQUIRE(box->put(report(id, ota::v1::CAMPAIGN_SUCCESS)).is_ok());
    REQUIRE(box->acknowledge(id) == 1);
  }
  REQUIRE(box->size() == ReportOutbox::kMaxReports);
  REQUIRE(box->put(report("newest", ota::v1::CAMPAIGN_SUCCESS)).is_ok());
  auto reopened = open_box(dir);
  CHECK(reopened->size() == ReportOutbox::kMaxReports);
  CHECK(reopened->find("pending-oldest").has_value());  // unacknowledged: kept while others can go
  CHECK_FALSE(reopened->find("camp-1").has_value());
  CHECK(reopened->find("newest").has_value());
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.path().extension() == ".report";
  CHECK(files == ReportOutbox::kMaxReports);
}

TEST_CASE_METHOD(OutboxDir, "A stored report that does not parse is dropped at start",
                 "[unit][cloud][fault]") {
  REQUIRE(ota::make_dirs(dir).is_ok());
  REQUIRE(ota::atomic_write_file(dir + "/camp-x.report", std::string(64, '\xff')).is_ok());
  REQUIRE(ota::atomic_write_file(dir + "/camp-y.report.tmp", "half").is_ok());
  auto box = open_box(dir);
  CHECK(box->size() == 0);
  CHECK_FALSE(std::filesystem::exists(dir + "/camp-x.report"));
  CHECK_FALSE(std::filesystem::exists(dir + "/camp-y.report.tmp"));
}
