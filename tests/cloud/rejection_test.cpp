// A rejection names the campaign it refuses, and never erases the record of what the vehicle
// runs: the report file keeps another campaign's report, or a report that is not a rejection.
#include <catch2/catch.hpp>

#include <google/protobuf/util/json_util.h>

#include "campaign/report.hpp"
#include "ota/core/file.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/v1/trust.pb.h"
#include "publication.hpp"
#include "rejection_report.hpp"

namespace {

ota::v1::VehicleReport report(const std::string& id, ota::v1::CampaignResult result) {
  ota::v1::VehicleReport r;
  r.set_campaign_id(id);
  r.set_result(result);
  return r;
}

std::string json_of(const google::protobuf::Message& m) {
  std::string out;
  REQUIRE(google::protobuf::util::MessageToJsonString(m, &out).ok());
  return out;
}

}  // namespace

TEST_CASE("A rejection report never replaces another campaign's report file", "[unit][cloud][security]") {
  auto t = ota::sim::TempDir::create("ota-rejection-test-");
  REQUIRE(t.is_ok());
  const std::string file = t->file("report.json");
  const auto rejected_b = report("camp-b", ota::v1::CAMPAIGN_REJECTED);
  CHECK(ota::client::may_replace_report_file(file, rejected_b));  // no file yet

  REQUIRE(
      ota::atomic_write_file(file, ota::client::report_to_json(report("camp-a", ota::v1::CAMPAIGN_SUCCESS)))
          .is_ok());
  CHECK_FALSE(ota::client::may_replace_report_file(file, rejected_b));
  CHECK_FALSE(ota::client::may_replace_report_file(file, report("", ota::v1::CAMPAIGN_REJECTED)));
  CHECK_FALSE(ota::client::may_replace_report_file(file, report("camp-a", ota::v1::CAMPAIGN_REJECTED)));
  CHECK(ota::client::may_replace_report_file(file, report("camp-b", ota::v1::CAMPAIGN_SUCCESS)));

  REQUIRE(
      ota::atomic_write_file(file, ota::client::report_to_json(report("camp-c", ota::v1::CAMPAIGN_REJECTED)))
          .is_ok());
  CHECK(ota::client::may_replace_report_file(file, report("camp-c", ota::v1::CAMPAIGN_REJECTED)));
  CHECK_FALSE(ota::client::may_replace_report_file(file, rejected_b));
}

TEST_CASE("A rejection names the campaign the refused input claims", "[unit][cloud][security]") {
  ota::v1::DirectorMetadata director;
  director.set_campaign_id("camp-signed");
  ota::v1::SignedMetadata envelope;
  envelope.set_body(director.SerializeAsString());
  envelope.add_signatures()->set_key_id("not-checked-here");
  ota::v1::SignedCampaign signed_campaign;
  signed_campaign.set_signed_director(envelope.SerializeAsString());
  CHECK(ota::client::claimed_campaign_id({json_of(signed_campaign), "test"}) == "camp-signed");

  ota::v1::Campaign plain;
  plain.set_campaign_id("camp-plain");
  CHECK(ota::client::claimed_campaign_id({json_of(plain), "test"}) == "camp-plain");

  CHECK(ota::client::claimed_campaign_id({"not json", "test"}).empty());
  signed_campaign.set_signed_director("\xff\xff garbage");
  CHECK(ota::client::claimed_campaign_id({json_of(signed_campaign), "test"}).empty());

  const auto r =
      ota::client::rejection_report("VIN1", "camp-signed", ota::Status(ota::Code::kRejected, "why"), {});
  CHECK(r.campaign_id() == "camp-signed");
  CHECK(r.result() == ota::v1::CAMPAIGN_REJECTED);
}
