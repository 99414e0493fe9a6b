// The agent's checks of signed targets (target_checks.cpp) over the loopback transport: full
// verification requires the image role's metadata, and a director metadata version serves one
// transfer, once.
#include <catch2/catch.hpp>

#include <algorithm>

#include "agent_rig.hpp"
#include "ota/core/file.hpp"
#include "ota/core/trust.hpp"

using namespace ota::agent_test;
namespace v1 = ota::v1;
namespace trust = ota::trust;

namespace {

// A root with one key per role, and the director and image metadata for the rig's next image.
struct SignedRelease {
  std::string root, director, image;

  explicit SignedRelease(const Image& next) {
    auto root_key = trust::PrivateKey::generate().value();
    auto image_key = trust::PrivateKey::generate().value();
    auto director_key = trust::PrivateKey::generate().value();
    trust::RootSpec spec;
    spec.expires = kStartTime + 86400;
    spec.root.public_pems = {root_key.public_pem()};
    spec.image.public_pems = {image_key.public_pem()};
    spec.director.public_pems = {director_key.public_pem()};
    root = trust::sign(trust::make_root_body(spec).value(), {root_key}).value();

    trust::ImageInfo img;
    img.name = "fw";
    img.version = next.version;
    img.size = next.bytes.size();
    std::copy(next.sha256.begin(), next.sha256.end(), img.sha256.begin());
    img.hardware_ids = {"hw-1"};
    image = trust::sign(trust::make_image_body(1, kStartTime + 3600, {img}), {image_key}).value();

    trust::VerifiedCampaign campaign;
    campaign.vin = "VIN0000000000001";
    campaign.campaign_id = "c1";
    campaign.version = 7;
    campaign.expires = kStartTime + 3600;
    trust::CampaignTarget target;
    target.ecu_id = kEcu;
    target.hardware_id = "hw-1";
    target.image_name = img.name;
    target.version = img.version;
    target.size = img.size;
    target.sha256 = img.sha256;
    campaign.targets = {target};
    campaign.groups = {trust::CampaignGroup{}};
    director = trust::sign(trust::make_director_body(campaign), {director_key}).value();
  }
};

v1::Command start_transfer(const Image& next, const SignedRelease& release, const std::string& id,
                           bool with_image = true) {
  v1::Command cmd;
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id(id);
  *st->mutable_target() = raw_target(next);
  st->mutable_target()->set_hardware_id("hw-1");
  st->mutable_target()->set_signed_target(release.director);
  if (with_image) st->mutable_target()->set_signed_image(release.image);
  st->set_chunk_size(64 * 1024);
  return cmd;
}

}  // namespace

TEST_CASE("full verification refuses a target without image metadata", "[unit][agent][trust][security]") {
  AgentRig rig;
  SignedRelease release(rig.next);
  REQUIRE(ota::atomic_write_file(rig.dir.file("root.signed"), release.root).is_ok());
  rig.config.trust_root_file = rig.dir.file("root.signed");
  rig.config.hardware_id = "hw-1";
  rig.start();
  auto r = rig.call(start_transfer(rig.next, release, "t1", /*with_image=*/false));
  CHECK(r.outcome() == v1::OUTCOME_REFUSED);
  CHECK(r.error().code() == v1::ERROR_CODE_SIGNATURE_INVALID);
  CHECK(r.error().message().find("carries no signed image metadata") != std::string::npos);
  r = rig.call(start_transfer(rig.next, release, "t1"));
  INFO(r.error().message());
  CHECK(r.outcome() == v1::OUTCOME_OK);
  CHECK(rig.disk().director_version() == 7);
  CHECK(rig.disk().director_transfer_id() == "t1");
}

TEST_CASE("a director metadata version serves one transfer", "[unit][agent][trust][security]") {
  AgentRig rig;
  SignedRelease release(rig.next);
  REQUIRE(ota::atomic_write_file(rig.dir.file("root.signed"), release.root).is_ok());
  rig.config.trust_root_file = rig.dir.file("root.signed");
  rig.config.hardware_id = "hw-1";
  rig.start();
  REQUIRE(rig.call(start_transfer(rig.next, release, "t1")).outcome() == v1::OUTCOME_OK);
  // The same metadata for another transfer id: refused, and the transfer held is left as it was.
  auto r = rig.call(start_transfer(rig.next, release, "t2"));
  CHECK(r.outcome() == v1::OUTCOME_REFUSED);
  CHECK(r.error().code() == v1::ERROR_CODE_REJECTED);
  CHECK(r.error().message().find("was accepted for transfer t1; transfer t2 with it is a replay") !=
        std::string::npos);
  CHECK(rig.disk().transfer_id() == "t1");
  // The transfer it belongs to goes on (a client that re-synchronises).
  CHECK(rig.call(start_transfer(rig.next, release, "t1")).outcome() == v1::OUTCOME_OK);
  // Once that transfer has ended (cancelled), it is not started again.
  v1::Command cancel;
  cancel.mutable_cancel()->set_transfer_id("t1");
  REQUIRE(rig.call(cancel).outcome() == v1::OUTCOME_ROLLED_BACK);
  r = rig.call(start_transfer(rig.next, release, "t1"));
  CHECK(r.outcome() == v1::OUTCOME_REFUSED);
  CHECK(r.error().message().find("has ended; it is not started again") != std::string::npos);
}
