// Agent-side verification: the per-ECU target, installed image checks and the downgrade rule.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace trust_test;
using Catch::Contains;
using ota::Code;
using ota::trust::AgentIdentity;
using ota::trust::AgentVerifier;

namespace {

const Keys& K() { return Keys::get(); }

AgentVerifier agent_from_root() {
  return AgentVerifier::from_root(signed_by(root_body(default_root()), {K().root1, K().root2})).value();
}

AgentIdentity brake() {
  AgentIdentity me;
  me.ecu_id = "ecu-brake";
  me.hardware_id = "hw-brake-a";
  me.vin = "VIN0000000000001";
  me.active_version_number = 100;
  return me;
}

std::string director(uint64_t version, std::vector<TargetDef> t = default_targets(),
                     const ota::trust::PrivateKey& key = Keys::get().director1) {
  return signed_by(director_body(version, t), {key});
}

}  // namespace

TEST_CASE("an agent verifies its own target with the provisioned keys", "[unit][trust][agent]") {
  AgentVerifier agent = agent_from_root();
  ota::trust::FixedClock clock(kNow);
  auto t = agent.verify_target(director(4), "", brake(), &clock);
  REQUIRE(t.is_ok());
  CHECK(t->director_version == 4);
  CHECK(t->target.ecu_id == "ecu-brake");
  CHECK(t->target.size == 4096);
  CHECK_FALSE(t->image_verified);

  SECTION("with image metadata too (full verification)") {
    auto full = agent.verify_target(director(4), signed_by(image_body(1, default_images()), {K().image1}),
                                    brake(), &clock);
    REQUIRE(full.is_ok());
    CHECK(full->image_verified);
    CHECK(full->target.image.has_full);
  }
  SECTION("installed image checks") {
    ota::Digest good{};
    good.fill('B');
    CHECK(ota::trust::check_installed(t->target, good, 4096).is_ok());
    ota::Digest bad = good;
    bad[0] ^= 1;
    auto s = ota::trust::check_installed(t->target, bad, 4096);
    CHECK(s.code() == Code::kHashMismatch);
    CHECK_THAT(s.message(), Contains("differs from the signed target"));
    auto s2 = ota::trust::check_installed(t->target, good, 4095);  // truncated
    CHECK(s2.code() == Code::kHashMismatch);
    CHECK_THAT(s2.message(), Contains("4095 bytes, the signed target says 4096"));
  }
}

TEST_CASE("an agent from bare keys works the same", "[unit][trust][agent]") {
  auto agent = AgentVerifier::from_keys({K().director1.public_pem(), K().director2.public_pem()}, 2, {}, 0);
  REQUIRE(agent.is_ok());
  auto r = agent->verify_target(director(1), "", brake());
  CHECK(r.status().code() == Code::kSignatureInvalid);
  CHECK_THAT(r.status().message(), Contains("(1 of 2 valid)"));
  CHECK(agent
            ->verify_target(signed_by(director_body(1, default_targets()), {K().director1, K().director2}),
                            "", brake())
            .is_ok());
  CHECK(AgentVerifier::from_keys({K().director1.public_pem()}, 2, {}, 0).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("agents refuse forged, foreign, stale and downgrading targets", "[unit][trust][agent][attack]") {
  AgentVerifier agent = agent_from_root();
  ota::trust::FixedClock clock(kNow);

  SECTION("forged by the client or anyone without a director key") {
    auto r = agent.verify_target(director(4, default_targets(), K().attacker), "", brake(), &clock);
    CHECK(r.status().code() == Code::kSignatureInvalid);
  }
  SECTION("target for another ECU only") {
    auto me = brake();
    me.ecu_id = "ecu-seat";
    auto r = agent.verify_target(director(4), "", me, &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("has no target for ECU ecu-seat"));
  }
  SECTION("wrong hardware id") {
    auto me = brake();
    me.hardware_id = "hw-brake-b";
    auto r = agent.verify_target(director(4), "", me, &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("the signed target is for hardware id hw-brake-a"));
  }
  SECTION("wrong VIN") {
    auto me = brake();
    me.vin = "OTHER";
    auto r = agent.verify_target(director(4), "", me, &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("campaign is for VIN VIN0000000000001, this vehicle is OTHER"));
  }
  SECTION("older campaign than the agent's counter") {
    auto me = brake();
    me.min_director_version = 7;
    auto r = agent.verify_target(director(4), "", me, &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("version counter 4 is below 7 (rollback or replay)"));
  }
  SECTION("expired") {
    clock.set(kFuture + 10);
    auto r = agent.verify_target(director(4), "", brake(), &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("expired at"));
  }
  SECTION("downgrade refused unless allowed") {
    auto me = brake();
    me.active_version_number = 300;
    auto r = agent.verify_target(director(4), "", me, &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("downgrade from version 300 to 200 refused"));
    auto t = default_targets();
    t[0].allow_downgrade = true;
    auto ok = agent.verify_target(director(5, t), "", me, &clock);
    REQUIRE(ok.is_ok());
    CHECK(ok->target.allow_downgrade);
  }
  SECTION("mix-and-match when image metadata is given") {
    auto t = default_targets();
    t[0].sha_fill = 'X';
    auto r = agent.verify_target(director(4, t), signed_by(image_body(1, default_images()), {K().image1}),
                                 brake(), &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("mix-and-match"));
  }
  SECTION("oversized") {
    auto r = agent.verify_target(std::string(1 << 20, 'x'), "", brake(), &clock);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("endless data"));
  }
}

TEST_CASE("an agent follows a root rotation and drops the old director key", "[unit][trust][agent][root]") {
  AgentVerifier agent = agent_from_root();
  RootDef r2 = default_root();
  r2.version = 2;
  r2.director = {{K().director2}, 1};
  CHECK(agent.update_root(signed_by(root_body(r2), {K().attacker})).code() == Code::kSignatureInvalid);
  REQUIRE(agent.update_root(signed_by(root_body(r2), {K().root1, K().root2})).is_ok());
  CHECK_FALSE(agent.signed_root().empty());
  auto r = agent.verify_target(director(4), "", brake());
  CHECK(r.status().code() == Code::kSignatureInvalid);
  CHECK(agent.verify_target(director(4, default_targets(), K().director2), "", brake()).is_ok());
  CHECK(agent.update_root(signed_by(root_body(r2), {K().root1, K().root2})).code() == Code::kRejected);
}

TEST_CASE("the version a root claims is read without trusting it", "[unit][trust][agent][root]") {
  AgentVerifier agent = agent_from_root();
  CHECK(agent.root_version() == 1);
  RootDef r2 = default_root();
  r2.version = 2;
  // Signed by a stranger: the claim is read, the rotation is still refused.
  const std::string forged = signed_by(root_body(r2), {K().attacker});
  auto claimed = ota::trust::claimed_root_version(forged);
  REQUIRE(claimed.is_ok());
  CHECK(*claimed == 2);
  CHECK_FALSE(agent.update_root(forged).is_ok());
  CHECK(agent.root_version() == 1);
  CHECK(ota::trust::claimed_root_version("not a root").status().code() == Code::kCorrupt);
  CHECK(ota::trust::claimed_root_version(std::string(1 << 20, 'x')).status().code() == Code::kRejected);
  REQUIRE(agent.update_root(signed_by(root_body(r2), {K().root1, K().root2})).is_ok());
  CHECK(agent.root_version() == 2);
}

TEST_CASE("version strings are ordered the semver way", "[unit][trust]") {
  using ota::trust::compare_versions;
  CHECK(compare_versions("1.10.0", "1.9.3") > 0);
  CHECK(compare_versions("1.2", "1.2.0") == 0);
  CHECK(compare_versions("v2.0.0", "2.0.0") == 0);
  CHECK(compare_versions("2.0.0-rc.1", "2.0.0") < 0);
  CHECK(compare_versions("2.0.0-rc.2", "2.0.0-rc.10") < 0);
  CHECK(compare_versions("2.0.0-alpha", "2.0.0-alpha.1") < 0);
  CHECK(compare_versions("1.0.0+build.5", "1.0.0+build.7") == 0);
  CHECK(compare_versions("99999999999999999999999.0", "1.0") > 0);  // no overflow
  CHECK(compare_versions("1.0.0", "1.0.0-0") > 0);
  CHECK(compare_versions("", "1") < 0);
}

TEST_CASE("downgrades by version string are refused by agent and client", "[unit][trust][attack]") {
  AgentVerifier agent = agent_from_root();
  auto me = brake();
  me.active_version_number = 0;  // the agent knows only its version string
  me.active_version = "2.1.0";
  auto r = agent.verify_target(director(4), "", me);
  CHECK(r.status().code() == Code::kRejected);
  CHECK_THAT(r.status().message(), Contains("downgrade from 2.1.0 to 2.0.0 refused"));
  me.active_version = "1.9.9";
  CHECK(agent.verify_target(director(4), "", me).is_ok());

  Vehicle v;
  auto store = v.open();
  auto vehicle = default_vehicle();
  vehicle.ecu_active_versions["ecu-gw"] = "5.2.0";
  auto c =
      store->verify_campaign(director(1), signed_by(image_body(1, default_images()), {K().image1}), vehicle);
  CHECK(c.status().code() == Code::kRejected);
  CHECK_THAT(c.status().message(), Contains("ECU ecu-gw: downgrade from 5.2.0 to 5.1.0 refused"));
}

TEST_CASE("a truncated or corrupted payload fails its signed hash and size", "[unit][trust][attack]") {
  ota::trust::PayloadInfo p;
  p.sha256.fill(1);
  p.size = 100;
  ota::Digest d = p.sha256;
  CHECK(ota::trust::check_payload(p, d, 100, "brake-fw full").is_ok());
  auto s = ota::trust::check_payload(p, d, 99, "brake-fw full");
  CHECK(s.code() == Code::kHashMismatch);
  CHECK_THAT(s.message(), Contains("brake-fw full: payload is 99 bytes, the signed metadata says 100"));
  d[5] = 9;
  CHECK(ota::trust::check_payload(p, d, 100, "brake-fw full").code() == Code::kHashMismatch);
}
