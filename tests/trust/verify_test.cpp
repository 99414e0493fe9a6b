// TrustStore: every attack of the trust issue at the library level, with real signatures.
#include <catch2/catch.hpp>

#include "fixture.hpp"

using namespace trust_test;
using Catch::Contains;
using ota::Code;
using ota::Status;

namespace {

const Keys& K() { return Keys::get(); }

std::string good_image(uint64_t version = 1) {
  return signed_by(image_body(version, default_images()), {K().image1});
}
std::string good_director(uint64_t version = 1) {
  return signed_by(director_body(version, default_targets()), {K().director1});
}

}  // namespace

TEST_CASE("a well-signed campaign verifies and yields targets, images and groups", "[unit][trust]") {
  Vehicle v;
  auto store = v.open();
  CHECK(store->root_version() == 1);
  auto c = store->verify_campaign(good_director(3), good_image(1), default_vehicle());
  REQUIRE(c.is_ok());
  CHECK(c->vin == "VIN0000000000001");
  CHECK(c->campaign_id == "campaign-3");
  CHECK(c->version == 3);
  CHECK_FALSE(c->resumed);
  REQUIRE(c->targets.size() == 2);
  CHECK(c->targets[0].ecu_id == "ecu-brake");
  CHECK(c->targets[0].image.has_full);
  CHECK(c->targets[0].image.full.encoding == "zstd");
  REQUIRE(c->targets[0].image.deltas.size() == 1);
  CHECK(c->targets[0].image.deltas[0].base_version_number == 100);
  CHECK(c->targets[1].size == 8192);
  REQUIRE(c->groups.size() == 2);
  CHECK(c->groups[0].id == 1);
  CHECK(c->groups[0].atomic);
  CHECK(c->groups[1].order == 20);
  CHECK(c->preconditions.require_parked);
  CHECK(c->preconditions.min_battery_percent == 40);
  CHECK(store->director_version() == 3);
  CHECK(store->image_version() == 1);
}

TEST_CASE("bad signatures are refused", "[unit][trust][attack]") {
  Vehicle v;
  auto store = v.open();

  SECTION("arbitrary software: signed by a key the root does not know") {
    auto r = store->verify_campaign(signed_by(director_body(1, default_targets()), {K().attacker}),
                                    good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(),
               Contains("director metadata: signature threshold not met (0 of 1 valid)"));
    CHECK_THAT(r.status().message(), Contains("is not a director key"));
  }
  SECTION("body changed after signing") {
    ota::v1::SignedMetadata env;
    REQUIRE(env.ParseFromString(good_director(1)));
    env.set_body(director_body(1, {default_targets()[0]}));
    auto r = store->verify_campaign(env.SerializeAsString(), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Contains("is invalid"));
  }
  SECTION("image metadata signed by an unknown key") {
    auto r = store->verify_campaign(
        good_director(1), signed_by(image_body(1, default_images()), {K().attacker}), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Contains("image metadata: signature threshold not met"));
  }
  SECTION("unsigned") {
    ota::v1::SignedMetadata env;
    env.set_body(director_body(1, default_targets()));
    auto r = store->verify_campaign(env.SerializeAsString(), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Contains("unsigned"));
  }
  SECTION("a signature claiming a director key id but made by another key") {
    ota::v1::SignedMetadata env;
    REQUIRE(env.ParseFromString(signed_by(director_body(1, default_targets()), {K().attacker})));
    env.mutable_signatures(0)->set_key_id(K().director1.key_id());
    auto r = store->verify_campaign(env.SerializeAsString(), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
  }
  CHECK(store->director_version() == 0);  // nothing accepted
}

TEST_CASE("a signature threshold must be met by distinct authorised keys", "[unit][trust][attack]") {
  RootDef root = default_root();
  root.director = {{K().director1, K().director2, K().director3}, 2};
  Vehicle v(root);
  auto store = v.open();
  const std::string body = director_body(1, default_targets());

  SECTION("one of two") {
    auto r = store->verify_campaign(signed_by(body, {K().director1}), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(),
               Contains("director metadata: signature threshold not met (1 of 2 valid)"));
  }
  SECTION("the same key twice counts once") {
    auto r = store->verify_campaign(signed_by(body, {K().director1, K().director1}), good_image(),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Contains("(1 of 2 valid)"));
    CHECK_THAT(r.status().message(), Contains("duplicate signature"));
  }
  SECTION("a key of another role does not count") {
    auto r =
        store->verify_campaign(signed_by(body, {K().director1, K().image1}), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Contains("is not a director key"));
  }
  SECTION("director metadata signed only by image keys") {
    auto r =
        store->verify_campaign(signed_by(body, {K().image1, K().image2}), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Contains("(0 of 2 valid)"));
  }
  SECTION("image metadata signed by a director key") {
    auto r = store->verify_campaign(signed_by(body, {K().director1, K().director2}),
                                    signed_by(image_body(1, default_images()), {K().director1}),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kSignatureInvalid);
    CHECK_THAT(r.status().message(), Contains("is not a image key"));
  }
  SECTION("two distinct keys pass") {
    auto r = store->verify_campaign(signed_by(body, {K().director3, K().director1}), good_image(),
                                    default_vehicle());
    CHECK(r.is_ok());
  }
}

TEST_CASE("too many signatures and oversized metadata are refused before parsing", "[unit][trust][attack]") {
  Vehicle v;
  auto store = v.open();
  SECTION("oversized director metadata") {
    std::string huge(300 * 1024, '\x0a');  // would parse as a long run of field-1 tags
    auto r = store->verify_campaign(huge, good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("director metadata is 307200 bytes, above the cap"));
    CHECK_THAT(r.status().message(), Contains("endless data"));
  }
  SECTION("oversized image metadata") {
    auto r = store->verify_campaign(good_director(1), std::string(2 * 1024 * 1024, 'x'), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("image metadata is 2097152 bytes"));
  }
  SECTION("oversized root") {
    CHECK(store->update_root(std::string(100 * 1024, 'r')).code() == Code::kRejected);
  }
  SECTION("a flood of signatures") {
    std::vector<ota::trust::PrivateKey> many(20, K().attacker);
    auto r = store->verify_campaign(signed_by(director_body(1, default_targets()), many), good_image(),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("20 signatures, at most 16"));
  }
  SECTION("an image claiming an endless size") {
    auto imgs = default_images();
    imgs[0].size = uint64_t{1} << 40;
    auto r = store->verify_campaign(good_director(1), signed_by(image_body(1, imgs), {K().image1}),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("above the cap"));
  }
}

TEST_CASE("garbage and type confusion are corrupt", "[unit][trust][attack]") {
  Vehicle v;
  auto store = v.open();
  SECTION("garbage bytes") {
    auto r =
        store->verify_campaign(std::string("\x0a\xff\xff\xff\xff\x0f", 6), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kCorrupt);
  }
  SECTION("image metadata body presented as director metadata, signed by a key holding both roles") {
    RootDef root = default_root();
    root.image = {{K().director1}, 1};
    Vehicle v2(root);
    auto s2 = v2.open();
    std::string as_director = signed_by(image_body(1, default_images()), {K().director1});
    auto r = s2->verify_campaign(as_director, signed_by(image_body(1, default_images()), {K().director1}),
                                 default_vehicle());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK_THAT(r.status().message(), Contains("not director metadata"));
  }
  SECTION("a hash of the wrong length") {
    auto t = default_targets();
    ota::v1::DirectorMetadata m;
    REQUIRE(m.ParseFromString(director_body(1, t)));
    m.mutable_targets(0)->set_sha256("short");
    auto r = store->verify_campaign(signed_by(m.SerializeAsString(), {K().director1}), good_image(),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK_THAT(r.status().message(), Contains("sha256 is not 32 bytes"));
  }
  SECTION("two targets for one ECU") {
    auto t = default_targets();
    t[1] = t[0];
    auto r = store->verify_campaign(signed_by(director_body(1, t), {K().director1}), good_image(),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kCorrupt);
    CHECK_THAT(r.status().message(), Contains("listed twice"));
  }
}

TEST_CASE("rollback and replay of director metadata are refused, across restarts", "[unit][trust][attack]") {
  Vehicle v;
  {
    auto store = v.open();
    REQUIRE(store->verify_campaign(good_director(5), good_image(), default_vehicle()).is_ok());
  }
  auto store = v.open();  // the counter survived the restart
  CHECK(store->director_version() == 5);

  SECTION("rollback to an older campaign") {
    auto r = store->verify_campaign(good_director(3), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("version counter 3 is not above 5 (rollback or replay)"));
  }
  SECTION("same version, other content") {
    auto t = default_targets();
    t.pop_back();
    auto r = store->verify_campaign(signed_by(director_body(5, t), {K().director1}), good_image(),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("version counter 5 is not above 5"));
  }
  SECTION("the same campaign again before it finished is a resume") {
    auto r = store->verify_campaign(good_director(5), good_image(), default_vehicle());
    REQUIRE(r.is_ok());
    CHECK(r->resumed);
  }
  SECTION("the same campaign after it finished is a replay") {
    REQUIRE(store->mark_campaign_finished(5).is_ok());
    auto again = v.open();
    auto r = again->verify_campaign(good_director(5), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("already finished (replay)"));
    CHECK(again->verify_campaign(good_director(6), good_image(), default_vehicle()).is_ok());
  }
  SECTION("a failed verification does not advance the counter") {
    auto r =
        store->verify_campaign(signed_by(director_body(9, default_targets(), "OTHERVIN"), {K().director1}),
                               good_image(), default_vehicle());
    CHECK_FALSE(r.is_ok());
    CHECK(store->director_version() == 5);
  }
}

TEST_CASE("a resumed campaign finds its own unfinished counter, and only that one", "[unit][trust][attack]") {
  Vehicle v;
  {
    auto store = v.open();
    REQUIRE(store->verify_campaign(good_director(5), good_image(), default_vehicle()).is_ok());
  }
  auto store = v.open();  // after a restart, from the signed bytes the journal kept
  auto found = store->unfinished_campaign(good_director(5));
  REQUIRE(found.is_ok());
  CHECK(*found == 5);

  SECTION("other director metadata is not the campaign under way") {
    auto other = store->unfinished_campaign(good_director(6));
    CHECK(other.status().code() == Code::kNotFound);
    CHECK(store->unfinished_campaign("not an envelope").status().code() != Code::kOk);
  }
  SECTION("once marked finished it is a replay, as after an uninterrupted run") {
    REQUIRE(store->mark_campaign_finished(*found).is_ok());
    CHECK(store->unfinished_campaign(good_director(5)).status().code() == Code::kNotFound);
    auto again = v.open();
    auto r = again->verify_campaign(good_director(5), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("already finished (replay)"));
  }
}

TEST_CASE("rollback of image metadata is refused", "[unit][trust][attack]") {
  Vehicle v;
  auto store = v.open();
  REQUIRE(store->verify_image_metadata(good_image(4)).is_ok());
  auto r = store->verify_image_metadata(good_image(2));
  CHECK(r.status().code() == Code::kRejected);
  CHECK_THAT(r.status().message(), Contains("image metadata: version counter 2 is below 4 (rollback)"));
  // The same metadata again is fine (it serves several campaigns); other content under v4 is not.
  CHECK(store->verify_image_metadata(good_image(4)).is_ok());
  auto imgs = default_images();
  imgs.pop_back();
  auto r2 = store->verify_image_metadata(signed_by(image_body(4, imgs), {K().image1}));
  CHECK(r2.status().code() == Code::kRejected);
  CHECK_THAT(r2.status().message(), Contains("different content"));
}

TEST_CASE("expired metadata is refused against the trusted clock (freeze)", "[unit][trust][attack]") {
  Vehicle v;
  auto store = v.open();
  SECTION("director") {
    auto r = store->verify_campaign(
        signed_by(director_body(1, default_targets(), "VIN0000000000001", kNow - 1), {K().director1}),
        good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("director metadata v1 expired at 2027-01-15T07:59:59Z"));
  }
  SECTION("image") {
    auto r = store->verify_campaign(
        good_director(1), signed_by(image_body(1, default_images(), kNow), {K().image1}), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("image metadata v1 expired at"));
  }
  SECTION("root: the clock moves past the root's expiry") {
    v.clock.set(kFuture + 1);
    auto r = store->verify_campaign(good_director(1), good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("root metadata v1 expired at"));
  }
}

TEST_CASE("a campaign for another vehicle or hardware is refused", "[unit][trust][attack]") {
  Vehicle v;
  auto store = v.open();
  SECTION("wrong VIN") {
    auto r =
        store->verify_campaign(signed_by(director_body(1, default_targets(), "WRONGVIN"), {K().director1}),
                               good_image(), default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK(r.status().message() == "campaign is for VIN WRONGVIN, this vehicle is VIN0000000000001");
  }
  SECTION("ECU reports another hardware id") {
    auto vehicle = default_vehicle();
    vehicle.ecu_hardware_ids["ecu-brake"] = "hw-brake-b";
    auto r = store->verify_campaign(good_director(1), good_image(), vehicle);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(
        r.status().message(),
        Contains(
            "ECU ecu-brake reports hardware id hw-brake-b, the campaign targets hardware id hw-brake-a"));
  }
  SECTION("image not allowed on the targeted hardware") {
    auto t = default_targets();
    t[0].hardware_id = "hw-other";
    auto vehicle = default_vehicle();
    vehicle.ecu_hardware_ids["ecu-brake"] = "hw-other";
    auto r = store->verify_campaign(signed_by(director_body(1, t), {K().director1}), good_image(), vehicle);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("is not allowed on hardware id \"hw-other\""));
  }
  SECTION("an ECU the vehicle does not have") {
    auto vehicle = default_vehicle();
    vehicle.ecu_hardware_ids.erase("ecu-gw");
    auto r = store->verify_campaign(good_director(1), good_image(), vehicle);
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("ecu-gw, which this vehicle does not have"));
  }
}

TEST_CASE("mix-and-match of director targets and image metadata is refused", "[unit][trust][attack]") {
  Vehicle v;
  auto store = v.open();
  SECTION("director hash differs from the image metadata") {
    auto t = default_targets();
    t[1].sha_fill = 'X';
    auto r = store->verify_campaign(signed_by(director_body(1, t), {K().director1}), good_image(),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("(mix-and-match)"));
    CHECK_THAT(r.status().message(), Contains("director sha256 5858"));
  }
  SECTION("director size differs") {
    auto t = default_targets();
    t[0].size = 1;
    auto r = store->verify_campaign(signed_by(director_body(1, t), {K().director1}), good_image(),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("director size 1 differs from image metadata size 4096"));
  }
  SECTION("image of another campaign's image metadata") {
    auto imgs = default_images();
    imgs[0].version_number = 300;  // the image metadata of another release
    auto r = store->verify_campaign(good_director(1), signed_by(image_body(1, imgs), {K().image1}),
                                    default_vehicle());
    CHECK(r.status().code() == Code::kRejected);
    CHECK_THAT(r.status().message(), Contains("image \"brake-fw\" v200 is not in the image metadata"));
  }
}

// ------------------------------------------------------------------------------------------------
// Root rotation and revocation
// ------------------------------------------------------------------------------------------------

TEST_CASE("root rotation: good chains are accepted and persisted", "[unit][trust][root]") {
  Vehicle v;
  auto store = v.open();
  // v2: root3 replaces root1 among the root keys; director2 alone signs campaigns.
  RootDef r2 = default_root();
  r2.version = 2;
  r2.root = {{K().root2, K().root3}, 2};
  r2.director = {{K().director2}, 1};
  std::string s2 = signed_by(root_body(r2), {K().root1, K().root2, K().root3});
  REQUIRE(store->update_root(s2).is_ok());
  CHECK(store->root_version() == 2);

  // v3: signed by v2's root keys (both) and its own (root2 only, threshold 1).
  RootDef r3 = r2;
  r3.version = 3;
  r3.root = {{K().root2}, 1};
  REQUIRE(store->update_root(signed_by(root_body(r3), {K().root2, K().root3})).is_ok());

  auto reopened = v.open();
  CHECK(reopened->root_version() == 3);
  CHECK(reopened
            ->verify_campaign(signed_by(director_body(1, default_targets()), {K().director2}), good_image(),
                              default_vehicle())
            .is_ok());
}

TEST_CASE("root rotation: bad updates are refused", "[unit][trust][root][attack]") {
  Vehicle v;
  auto store = v.open();
  RootDef r2 = default_root();
  r2.version = 2;
  r2.root = {{K().attacker}, 1};

  SECTION("signed only by the new keys") {
    Status s = store->update_root(signed_by(root_body(r2), {K().attacker}));
    CHECK(s.code() == Code::kSignatureInvalid);
    CHECK_THAT(s.message(),
               Contains("root metadata v2 (previous root keys): signature threshold not met (0 of 2 valid)"));
  }
  SECTION("signed by a threshold of the old keys but not by the new ones") {
    Status s = store->update_root(signed_by(root_body(r2), {K().root1, K().root2}));
    CHECK(s.code() == Code::kSignatureInvalid);
    CHECK_THAT(s.message(), Contains("(new root keys): signature threshold not met (0 of 1 valid)"));
  }
  SECTION("below the old threshold") {
    Status s = store->update_root(signed_by(root_body(r2), {K().root1, K().attacker}));
    CHECK(s.code() == Code::kSignatureInvalid);
    CHECK_THAT(s.message(), Contains("(1 of 2 valid)"));
  }
  SECTION("skipping a version") {
    r2.version = 3;
    Status s = store->update_root(signed_by(root_body(r2), {K().root1, K().root2, K().attacker}));
    CHECK(s.code() == Code::kRejected);
    CHECK_THAT(s.message(), Contains("does not follow v1"));
  }
  SECTION("replaying the current root") {
    Status s = store->update_root(signed_by(root_body(default_root()), {K().root1, K().root2}));
    CHECK(s.code() == Code::kRejected);
    CHECK_THAT(s.message(), Contains("version counter 1 is not above 1 (rollback or replay)"));
  }
  SECTION("a root whose key id does not match its key") {
    ota::v1::RootMetadata m;
    REQUIRE(m.ParseFromString(root_body(default_root())));
    m.set_version(2);
    m.mutable_keys(0)->set_public_pem(K().attacker.public_pem());
    Status s = store->update_root(signed_by(m.SerializeAsString(), {K().root1, K().root2}));
    CHECK(s.code() == Code::kCorrupt);
    CHECK_THAT(s.message(), Contains("does not match its public key"));
  }
  SECTION("a threshold above the number of keys") {
    RootDef bad = default_root();
    bad.version = 2;
    bad.image.threshold = 3;
    Status s = store->update_root(signed_by(root_body(bad), {K().root1, K().root2}));
    CHECK(s.code() == Code::kCorrupt);
    CHECK_THAT(s.message(), Contains("threshold 3 is not within 1..2"));
  }
  CHECK(store->root_version() == 1);
  CHECK(v.open()->root_version() == 1);
}

TEST_CASE("a key dropped from its role by a newer root is revoked", "[unit][trust][root][attack]") {
  Vehicle v;
  {
    auto store = v.open();
    RootDef r2 = default_root();
    r2.version = 2;
    r2.director = {{K().director2}, 1};  // director1 was compromised
    r2.image = {{K().image2}, 1};        // so was image1
    REQUIRE(store->update_root(signed_by(root_body(r2), {K().root1, K().root2})).is_ok());
  }
  auto store = v.open();  // the revocation survives a restart
  auto r = store->verify_campaign(good_director(1), signed_by(image_body(1, default_images()), {K().image2}),
                                  default_vehicle());
  CHECK(r.status().code() == Code::kSignatureInvalid);
  CHECK_THAT(r.status().message(), Contains("director metadata: signature threshold not met (0 of 1 valid)"));
  CHECK_THAT(r.status().message(), Contains("key " + K().director1.key_id().substr(0, 16) + " is revoked"));

  auto r2 = store->verify_campaign(signed_by(director_body(1, default_targets()), {K().director2}),
                                   good_image(), default_vehicle());
  CHECK(r2.status().code() == Code::kSignatureInvalid);
  CHECK_THAT(r2.status().message(), Contains("image metadata"));
  CHECK_THAT(r2.status().message(), Contains("is revoked"));

  CHECK(store
            ->verify_campaign(signed_by(director_body(1, default_targets()), {K().director2}),
                              signed_by(image_body(1, default_images()), {K().image2}), default_vehicle())
            .is_ok());
}

TEST_CASE("the provisioned root must be self-signed at threshold", "[unit][trust][root]") {
  TempDir dir;
  const std::string root_file = dir.path() + "/root.signed";
  REQUIRE(ota::atomic_write_file(root_file, signed_by(root_body(default_root()), {K().root1})).is_ok());
  ota::trust::FixedClock clock(kNow);
  auto s = ota::trust::TrustStore::open(root_file, dir.path() + "/state", clock);
  CHECK(s.status().code() == Code::kSignatureInvalid);
  CHECK_THAT(s.status().message(), Contains("(1 of 2 valid)"));
}

TEST_CASE("damaged counter state fails closed", "[unit][trust]") {
  Vehicle v;
  {
    auto store = v.open();
    REQUIRE(store->verify_campaign(good_director(2), good_image(), default_vehicle()).is_ok());
  }
  REQUIRE(ota::atomic_write_file(v.state + "/director.counter", "garbage").is_ok());
  auto s = ota::trust::TrustStore::open(v.root_file, v.state, v.clock);
  CHECK(s.status().code() == Code::kCorrupt);
}

TEST_CASE("metadata built from plain structs verifies end to end", "[unit][trust]") {
  TempDir dir;
  ota::trust::RootSpec spec;
  spec.expires = kFuture;
  spec.root = {{K().root1.public_pem(), K().root2.public_pem()}, 2};
  spec.image = {{K().image1.public_pem()}, 1};
  spec.director = {{K().director1.public_pem()}, 1};
  auto body = ota::trust::make_root_body(spec);
  REQUIRE(body.is_ok());
  REQUIRE(ota::atomic_write_file(dir.path() + "/root", signed_by(*body, {K().root1, K().root2})).is_ok());
  ota::trust::FixedClock clock(kNow);
  auto store = ota::trust::TrustStore::open(dir.path() + "/root", dir.path() + "/state", clock).value();

  ota::trust::ImageInfo img;
  img.name = "seat-fw";
  img.version = "3.0.0";
  img.version_number = 300;
  img.size = 1000;
  img.sha256.fill(7);
  img.hardware_ids = {"hw-seat"};
  img.has_full = true;
  img.full = {img.sha256, 400, "zstd"};
  ota::trust::VerifiedCampaign c;
  c.vin = "VIN-X";
  c.campaign_id = "seats";
  c.version = 1;
  c.expires = kFuture;
  ota::trust::CampaignTarget t;
  t.ecu_id = "ecu-seat";
  t.hardware_id = "hw-seat";
  t.image_name = img.name;
  t.version = img.version;
  t.version_number = img.version_number;
  t.sha256 = img.sha256;
  t.size = img.size;
  t.group = 3;
  t.clear_dtcs = {0xC14187};
  c.targets = {t};
  c.groups = {{3, 1, true}};
  c.preconditions.min_battery_percent = 30;

  ota::trust::VehicleInfo vehicle{"VIN-X", {{"ecu-seat", "hw-seat"}}, {}};
  auto v = store->verify_campaign(signed_by(ota::trust::make_director_body(c), {K().director1}),
                                  signed_by(ota::trust::make_image_body(1, kFuture, {img}), {K().image1}),
                                  vehicle);
  REQUIRE(v.is_ok());
  REQUIRE(v->targets.size() == 1);
  CHECK(v->targets[0].clear_dtcs == std::vector<uint32_t>{0xC14187});
  CHECK(v->targets[0].image.full.size == 400);
  CHECK(v->groups[0].atomic);
  CHECK(v->preconditions.min_battery_percent == 30);

  spec.image.threshold = 2;
  CHECK(ota::trust::make_root_body(spec).status().code() == Code::kInvalidArgument);
}
