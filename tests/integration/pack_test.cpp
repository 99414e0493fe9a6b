// ota-pack pack as a release tool: payloads plus image metadata signed by the image role, which the
// vehicle's trust store accepts, and refuses once altered.
#include <catch2/catch.hpp>

#include <ctime>

#include "images.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/trust.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/v1/package.pb.h"
#include "support.hpp"

using namespace std::chrono_literals;

TEST_CASE("ota-pack pack writes image metadata signed by the image role", "[integration][delta][trust]") {
  auto tmp = ota::sim::TempDir::create("ota-pack-it-");
  REQUIRE(tmp.is_ok());
  const auto& dir = *tmp;
  auto base = ota::sim::write_base_image(dir.file("old.bin"), 1 << 20, 21);
  REQUIRE(base.is_ok());
  auto next = ota::sim::write_next_image(*base, dir.file("new.bin"), 21);
  REQUIRE(next.is_ok());
  auto root_key = ota::trust::PrivateKey::generate();
  auto image_key = ota::trust::PrivateKey::generate();
  auto director_key = ota::trust::PrivateKey::generate();
  REQUIRE((root_key.is_ok() && image_key.is_ok() && director_key.is_ok()));
  REQUIRE(image_key->save(dir.file("image.key")).is_ok());

  auto run = ota::sim::run_command(
      {ota::test::bin("ota-pack"), "pack", "--image", "bcm=" + next->path, "--base", "bcm=" + base->path,
       "--version", "bcm=1.1.0", "--base-version", "bcm=1.0.0", "--hardware", "bcm=bcm-hw1", "--keep-full",
       "--sign-key", dir.file("image.key"), "-o", dir.file("pkg")},
      120s);
  REQUIRE(run.is_ok());
  INFO(run->output);
  REQUIRE(run->exit.success());

  // The vehicle's side: a root naming the image key, and its trust store.
  ota::trust::RootSpec spec;
  spec.expires = static_cast<int64_t>(std::time(nullptr)) + 3600;
  spec.root.public_pems = {root_key->public_pem()};
  spec.image.public_pems = {image_key->public_pem()};
  spec.director.public_pems = {director_key->public_pem()};
  auto body = ota::trust::make_root_body(spec);
  REQUIRE(body.is_ok());
  auto root = ota::trust::sign(*body, {*root_key});
  REQUIRE(root.is_ok());
  REQUIRE(ota::atomic_write_file(dir.file("root.signed"), *root).is_ok());
  ota::trust::SystemClock clock;
  auto store = ota::trust::TrustStore::open(dir.file("root.signed"), dir.file("trust"), clock);
  REQUIRE(store.is_ok());
  auto signed_image = ota::read_small_file(dir.file("pkg/image.signed"), 1 << 20);
  REQUIRE(signed_image.is_ok());
  auto images = (*store)->verify_image_metadata(*signed_image);
  INFO(images.status().to_string());
  REQUIRE(images.is_ok());
  REQUIRE(images->images.size() == 1);
  const auto& img = images->images[0];
  CHECK(img.name == "bcm");
  CHECK(img.version == "1.1.0");
  CHECK(img.size == next->size);
  CHECK(img.sha256 == next->sha256);
  CHECK(img.hardware_ids == std::vector<std::string>{"bcm-hw1"});
  // Both payloads are described by their own hashes, and the files on disk are those bytes.
  REQUIRE(img.has_full);
  REQUIRE(img.deltas.size() == 1);
  CHECK(img.deltas[0].base_sha256 == base->sha256);
  CHECK(img.deltas[0].base_version == "1.0.0");
  auto delta_sha = ota::sha256_file(dir.file("pkg/bcm.delta"));
  auto full_sha = ota::sha256_file(dir.file("pkg/bcm.full"));
  REQUIRE((delta_sha.is_ok() && full_sha.is_ok()));
  CHECK(delta_sha.value() == img.deltas[0].payload.sha256);
  CHECK(full_sha.value() == img.full.sha256);
  CHECK(img.deltas[0].payload.size < img.full.size);

  // One byte changed anywhere in the signed metadata: refused.
  std::string tampered = *signed_image;
  tampered[tampered.size() / 2] ^= 0x01;
  auto refused = (*store)->verify_image_metadata(tampered);
  CHECK_FALSE(refused.is_ok());
}
