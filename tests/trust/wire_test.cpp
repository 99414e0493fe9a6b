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

TEST_CASE("under full verification the payload sent is bound to the signed image",
          "[unit][trust][agent][attack]") {
  auto agent =
      ota::trust::AgentVerifier::from_root(signed_by(root_body(default_root()), {K().root1, K().root2}))
          .value();
  ota::trust::AgentIdentity me;
  me.ecu_id = "ecu-brake";
  me.hardware_id = "hw-brake-a";
  auto st = agent.verify_target(signed_by(director_body(1, default_targets()), {K().director1}),
                                signed_by(image_body(1, default_images()), {K().image1}), me);
  REQUIRE(st.is_ok());
  REQUIRE(st->image_verified);
  ota::v1::Target t;
  t.set_version("2.0.0");
  t.set_size(4096);
  t.set_sha256(bytes('B'));
  t.set_encoding(ota::v1::PAYLOAD_ENCODING_RAW);
  t.set_payload_size(4096);
  t.set_payload_sha256(bytes('B'));
  CHECK(ota::trust::check_target_matches(t, *st).is_ok());
  SECTION("a raw payload that is not the image") {
    t.set_payload_sha256(bytes('X'));
    auto s = ota::trust::check_target_matches(t, *st);
    CHECK(s.code() == Code::kRejected);
    CHECK_THAT(s.message(), Contains("the raw payload is not the signed image"));
  }
  SECTION("a delta: its base, size and hash must be a signed delta's") {
    t.set_encoding(ota::v1::PAYLOAD_ENCODING_DELTA);
    t.set_base_sha256(bytes('b'));
    t.set_payload_size(64);
    t.set_payload_sha256(bytes('d'));
    CHECK(ota::trust::check_target_matches(t, *st).is_ok());
    t.set_payload_sha256(bytes('e'));
    auto s = ota::trust::check_target_matches(t, *st);
    CHECK(s.code() == Code::kRejected);
    CHECK_THAT(s.message(), Contains("matches no signed delta of brake-fw 2.0.0"));
    t.set_payload_sha256(bytes('d'));
    t.set_payload_size(65);
    CHECK(ota::trust::check_target_matches(t, *st).code() == Code::kRejected);
    t.set_payload_size(64);
    t.set_base_sha256(bytes('c'));
    CHECK(ota::trust::check_target_matches(t, *st).code() == Code::kRejected);
  }
}

TEST_CASE("the unsigned fields of a campaign are bounded", "[unit][trust][attack]") {
  auto sc = verified();
  auto w = wire_campaign();
  w.set_campaign_id(sc.campaign_id);
  REQUIRE(ota::trust::check_campaign_matches(w, sc).is_ok());
  auto refused = [&](const ota::v1::Campaign& c, const std::string& expect) {
    auto s = ota::trust::check_campaign_matches(c, sc);
    CHECK(s.code() == Code::kRejected);
    CHECK_THAT(s.message(), Contains(expect));
  };
  auto c = w;
  c.set_health_timeout_ms(1);
  refused(c, "health_timeout_ms 1 is outside 1000..600000");
  c.set_health_timeout_ms(ota::trust::kMaxHealthTimeoutMs + 1);
  refused(c, "health_timeout_ms");
  c.set_health_timeout_ms(ota::trust::kMinHealthTimeoutMs);
  CHECK(ota::trust::check_campaign_matches(c, sc).is_ok());
  c = w;
  c.set_chunk_size(16);
  refused(c, "chunk_size 16");
  c.set_chunk_size(ota::trust::kMaxChunkSize + 1);
  refused(c, "chunk_size");
  c = w;
  c.set_window(ota::trust::kMaxWindow + 1);
  refused(c, "window");
  c = w;
  for (size_t i = 0; i <= ota::trust::Limits{}.max_root_updates; ++i) c.add_root_updates("padding");
  refused(c, "root updates, more than the limit of 16");
}

TEST_CASE("a root rotation chain is walked one way by the store and by agents", "[unit][trust][root]") {
  auto agent =
      ota::trust::AgentVerifier::from_root(signed_by(root_body(default_root()), {K().root1, K().root2}))
          .value();
  RootDef r2 = default_root();
  r2.version = 2;
  r2.director = {{K().director2}, 1};
  const std::string v1_root = signed_by(root_body(default_root()), {K().root1, K().root2});
  const std::string v2_root = signed_by(root_body(r2), {K().root1, K().root2});
  google::protobuf::RepeatedPtrField<std::string> chain;
  SECTION("padding is refused before any root is verified") {
    for (size_t i = 0; i <= ota::trust::Limits{}.max_root_updates; ++i) *chain.Add() = v1_root;
    *chain.Add() = v2_root;
    auto s = ota::trust::apply_root_updates(chain, agent);
    CHECK(s.code() == Code::kRejected);
    CHECK_THAT(s.message(), Contains("more than the limit of 16"));
    CHECK(agent.root_version() == 1);
  }
  SECTION("versions must increase") {
    *chain.Add() = v2_root;
    *chain.Add() = v1_root;
    auto s = ota::trust::apply_root_updates(chain, agent);
    CHECK(s.code() == Code::kRejected);
    CHECK_THAT(s.message(), Contains("versions must increase"));
    CHECK(agent.root_version() == 1);
  }
  SECTION("roots in force are skipped, newer ones applied in order") {
    *chain.Add() = v1_root;
    *chain.Add() = v2_root;
    REQUIRE(ota::trust::apply_root_updates(chain, agent).is_ok());
    CHECK(agent.root_version() == 2);
    Vehicle v;
    auto store = v.open();
    REQUIRE(ota::trust::apply_root_updates(chain, *store).is_ok());
    CHECK(store->root_version() == 2);
  }
  SECTION("a bad root stops the walk with its reason; the ones before it stay") {
    RootDef r3 = r2;
    r3.version = 3;
    *chain.Add() = v2_root;
    *chain.Add() = signed_by(root_body(r3), {K().attacker});
    auto s = ota::trust::apply_root_updates(chain, agent);
    CHECK(s.code() == Code::kSignatureInvalid);
    CHECK_THAT(s.message(), Contains("root update: "));
    CHECK(agent.root_version() == 2);
  }
}
