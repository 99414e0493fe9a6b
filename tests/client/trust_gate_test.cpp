// The trust gate (client/src/trust_gate.cpp): the campaign the runner executes is built from the
// verified metadata and held to it by trust::check_campaign_matches, with its unsigned settings
// bounded. Real keys and signatures (tests/trust/fixture.hpp), no broker.
#include <catch2/catch.hpp>

#include <optional>

#include "fixture.hpp"
#include "trust_gate.hpp"

using namespace trust_test;
namespace v1 = ota::v1;

namespace {

// The default release, with its groups renamed: ids 7 (order 10, atomic) and 3 (order 20), so that
// their ids are neither 1.. nor in the order they run.
// consent: the signed DirectorMetadata.require_consent; empty: not set (metadata signed before it
// existed).
v1::SignedCampaign signed_campaign(uint64_t version, std::optional<bool> consent = std::nullopt) {
  const Keys& k = Keys::get();
  v1::DirectorMetadata d;
  REQUIRE(d.ParseFromString(director_body(version, default_targets())));
  if (consent) d.set_require_consent(*consent);
  for (auto& t : *d.mutable_targets()) t.set_group(t.group() == 1 ? 7 : 3);
  d.mutable_groups(0)->set_id(7);
  d.mutable_groups(1)->set_id(3);
  v1::SignedCampaign sc;
  sc.set_signed_director(signed_by(d.SerializeAsString(), {k.director1}));
  sc.set_signed_image(signed_by(image_body(1, default_images()), {k.image1}));
  auto* loc = sc.add_payloads();
  loc->set_sha256(digest_bytes('z'));  // every default image's full payload
  loc->set_uri("payloads/full");
  return sc;
}

std::map<std::string, ota::client::AgentView> agents() {
  std::map<std::string, ota::client::AgentView> out;
  for (const auto& [ecu, hw] : default_vehicle().ecu_hardware_ids) {
    auto& v = out[ecu];
    v.hello.set_online(true);
    v.hello.mutable_inventory()->set_hardware_id(hw);
  }
  return out;
}

}  // namespace

TEST_CASE("the trust gate numbers groups in the director's order after holding them to it",
          "[unit][client][trust]") {
  Vehicle vehicle;
  auto store = vehicle.open();
  auto gate = ota::client::verify_signed_campaign(*store, signed_campaign(1), "VIN0000000000001", agents());
  INFO(gate.status().to_string());
  REQUIRE(gate.is_ok());
  const v1::Campaign& c = gate->campaign;
  REQUIRE(c.groups_size() == 2);
  CHECK(c.groups(0).group() == 1);  // id 7, order 10
  CHECK(c.groups(0).atomic());
  CHECK(c.groups(1).group() == 2);  // id 3, order 20
  for (const auto& t : c.targets()) {
    CHECK(t.group() == (t.ecu_id() == "ecu-brake" ? 1u : 2u));
    CHECK_FALSE(t.signed_image().empty());
  }
}

TEST_CASE("the trust gate refuses unsigned settings out of bounds", "[unit][client][trust][security]") {
  Vehicle vehicle;
  auto store = vehicle.open();
  auto sc = signed_campaign(1);
  sc.set_health_timeout_ms(1);
  auto gate = ota::client::verify_signed_campaign(*store, sc, "VIN0000000000001", agents());
  REQUIRE_FALSE(gate.is_ok());
  CHECK(gate.status().code() == ota::Code::kRejected);
  CHECK(gate.status().message().find("health_timeout_ms 1 is outside 1000..600000") != std::string::npos);
}

TEST_CASE("a consent flag cleared in transit is refused", "[unit][client][trust][security]") {
  Vehicle vehicle;
  auto store = vehicle.open();
  auto sc = signed_campaign(1, true);
  sc.set_require_consent(false);  // a relay skips the owner
  auto gate = ota::client::verify_signed_campaign(*store, sc, "VIN0000000000001", agents());
  REQUIRE_FALSE(gate.is_ok());
  CHECK(gate.status().code() == ota::Code::kRejected);
  CHECK(gate.status().message().find(
            "require_consent on the wire (false) differs from the signed require_consent (true)") !=
        std::string::npos);
}

TEST_CASE("a consent flag set in transit against the signed one is refused too",
          "[unit][client][trust][security]") {
  Vehicle vehicle;
  auto store = vehicle.open();
  auto sc = signed_campaign(1, false);
  sc.set_require_consent(true);
  auto gate = ota::client::verify_signed_campaign(*store, sc, "VIN0000000000001", agents());
  REQUIRE_FALSE(gate.is_ok());
  CHECK(gate.status().message().find("differs from the signed require_consent (false)") != std::string::npos);
}

TEST_CASE("the campaign run asks consent as the signed metadata says", "[unit][client][trust][security]") {
  for (bool consent : {true, false}) {
    Vehicle vehicle;
    auto store = vehicle.open();
    auto sc = signed_campaign(1, consent);
    sc.set_require_consent(consent);
    auto gate = ota::client::verify_signed_campaign(*store, sc, "VIN0000000000001", agents());
    INFO(consent << ": " << gate.status().to_string());
    REQUIRE(gate.is_ok());
    CHECK(gate->campaign.require_consent() == consent);
  }
}

TEST_CASE("metadata that does not sign consent runs with consent asked", "[unit][client][trust][security]") {
  // Signed before DirectorMetadata.require_consent existed: nothing tells a cleared flag from an
  // unset one, so the owner is asked whatever the unsigned flag says.
  Vehicle vehicle;
  auto store = vehicle.open();
  auto sc = signed_campaign(1);
  sc.set_require_consent(false);
  auto gate = ota::client::verify_signed_campaign(*store, sc, "VIN0000000000001", agents());
  INFO(gate.status().to_string());
  REQUIRE(gate.is_ok());
  CHECK(gate->campaign.require_consent());
}
