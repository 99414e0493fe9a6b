// The unsigned wire messages must agree with the signed metadata.
#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "ota/core/trust_wire.hpp"

using namespace trust_test;
using Catch::Contains;
using ota::Code;

namespace {

const Keys& K() { return Keys::get(); }

std::string bytes(char fill) { return digest_bytes(fill); }

// The wire campaign the cloud would send next to the default signed metadata.
ota::v1::Campaign wire_campaign() {
  ota::v1::Campaign c;
  c.set_vin("VIN0000000000001");
  c.set_campaign_id("campaign-1");
  for (const auto& d : default_targets()) {
    auto* t = c.add_targets();
    t->set_ecu_id(d.ecu_id);
    t->set_hardware_id(d.hardware_id);
    t->set_version(d.version);
    t->set_size(d.size);
    t->set_sha256(bytes(d.sha_fill));
    t->set_group(d.group);
    t->mutable_full()->set_size(d.size / 2);
    t->mutable_full()->set_sha256(bytes('z'));
    t->mutable_full()->set_uri("payloads/" + d.image_name);
  }
  auto* g = c.add_groups();
  g->set_group(1);
  g->set_atomic(true);
  c.mutable_preconditions()->set_require_parked(true);
  c.mutable_preconditions()->set_min_battery_soc_percent(50);
  return c;
}

ota::trust::VerifiedCampaign verified() {
  static Vehicle* v = new Vehicle();
  static auto* store = v->open().release();
  static uint64_t version = 0;
  return store
      ->verify_campaign(signed_by(director_body(++version, default_targets()), {K().director1}),
                        signed_by(image_body(1, default_images()), {K().image1}), default_vehicle())
      .value();
}

}  // namespace

TEST_CASE("a wire campaign that agrees with the signed one passes", "[unit][trust]") {
  auto sc = verified();
  auto w = wire_campaign();
  w.set_campaign_id(sc.campaign_id);
  REQUIRE(ota::trust::check_campaign_matches(w, sc).is_ok());

  SECTION("a delta payload that is signed") {
    auto* d = w.mutable_targets(0)->mutable_delta();
    d->set_base_sha256(bytes('b'));
    d->set_sha256(bytes('d'));
    d->set_size(64);
    CHECK(ota::trust::check_campaign_matches(w, sc).is_ok());
  }
}

TEST_CASE("a wire campaign that departs from the signed one is refused", "[unit][trust][attack]") {
  auto sc = verified();
  auto w = wire_campaign();
  w.set_campaign_id(sc.campaign_id);
  std::string expect;
  SECTION("other image hash") {
    w.mutable_targets(0)->set_sha256(bytes('Q'));
    expect = "ECU ecu-brake: sha256 on the wire";
  }
  SECTION("other version") {
    w.mutable_targets(1)->set_version("5.0.0");
    expect = "ECU ecu-gw: version on the wire (5.0.0) differs from the signed version (5.1.0)";
  }
  SECTION("an extra ECU") {
    auto* t = w.add_targets();
    *t = w.targets(0);
    t->set_ecu_id("ecu-other");
    expect = "3 targets on the wire, the signed campaign has 2";
  }
  SECTION("an ECU swapped for another") {
    w.mutable_targets(1)->set_ecu_id("ecu-other");
    expect = "ECU ecu-other is not in the signed campaign";
  }
  SECTION("downgrade allowed only on the wire") {
    w.mutable_targets(0)->set_allow_downgrade(true);
    expect = "allow_downgrade is set on the wire but not in the signed campaign";
  }
  SECTION("an unsigned full payload") {
    w.mutable_targets(0)->mutable_full()->set_size(1 << 30);
    expect = "full payload size on the wire";
  }
  SECTION("an unsigned delta payload") {
    auto* d = w.mutable_targets(0)->mutable_delta();
    d->set_base_sha256(bytes('b'));
    d->set_sha256(bytes('e'));
    d->set_size(64);
    expect = "matches no signed delta";
  }
  SECTION("atomic group made non-atomic") {
    w.mutable_groups(0)->set_atomic(false);
    expect = "group 1 is atomic in the signed campaign";
  }
  SECTION("weaker pre-conditions") {
    w.mutable_preconditions()->set_min_battery_soc_percent(10);
    expect = "weaker than the signed ones";
  }
  SECTION("other VIN") {
    w.set_vin("OTHER");
    expect = "campaign is for VIN OTHER on the wire";
  }
  auto s = ota::trust::check_campaign_matches(w, sc);
  CHECK(s.code() == Code::kRejected);
  CHECK_THAT(s.message(), Contains(expect));
}

TEST_CASE("an agent's wire target must be the signed one", "[unit][trust][agent][attack]") {
  auto agent =
      ota::trust::AgentVerifier::from_root(signed_by(root_body(default_root()), {K().root1, K().root2}))
          .value();
  ota::trust::AgentIdentity me;
  me.ecu_id = "ecu-brake";
  me.hardware_id = "hw-brake-a";
  auto st = agent.verify_target(signed_by(director_body(1, default_targets()), {K().director1}), "", me);
  REQUIRE(st.is_ok());
  ota::v1::Target t;
  t.set_version("2.0.0");
  t.set_size(4096);
  t.set_sha256(bytes('B'));
  t.set_hardware_id("hw-brake-a");
  CHECK(ota::trust::check_target_matches(t, *st).is_ok());
  t.set_sha256(bytes('C'));
  auto s = ota::trust::check_target_matches(t, *st);
  CHECK(s.code() == Code::kRejected);
  CHECK_THAT(s.message(), Contains("sha256 on the wire"));
  t.set_sha256(bytes('B'));
  t.set_allow_downgrade(true);
  CHECK(ota::trust::check_target_matches(t, *st).code() == Code::kRejected);
}
