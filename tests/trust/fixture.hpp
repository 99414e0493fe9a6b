// Test fixture of the trust layer: a small key set generated once per process, and builders for
// root, image and director metadata (the way the platform side is expected to build them).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "ota/core/file.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/trust.pb.h"

namespace trust_test {

using ota::trust::PrivateKey;

// Keys are generated once per process: P-256 keygen is fast, but tests need not pay for it per
// case. The fuzz targets install fixed keys instead (use()), so that their seed corpora verify.
struct Keys {
  PrivateKey root1, root2, root3, image1, image2, director1, director2, director3, attacker, ecu;
  static const Keys& get() {
    if (slot() == nullptr) slot() = new Keys(make());
    return *slot();
  }
  static void use(Keys k) {
    delete slot();
    slot() = new Keys(std::move(k));
  }

 private:
  static Keys*& slot() {
    static Keys* k = nullptr;
    return k;
  }
  static PrivateKey gen() { return PrivateKey::generate().value(); }
  static Keys make() { return Keys{gen(), gen(), gen(), gen(), gen(), gen(), gen(), gen(), gen(), gen()}; }
};

constexpr int64_t kNow = 1'800'000'000;  // fixed trusted time of the tests
constexpr int64_t kFuture = kNow + 86400 * 30;

inline std::string digest_bytes(char fill) { return std::string(32, fill); }

struct RoleDef {
  std::vector<PrivateKey> keys;
  uint32_t threshold = 1;
};

struct RootDef {
  uint64_t version = 1;
  int64_t expires = kFuture;
  RoleDef root, image, director;
};

inline RootDef default_root() {
  const Keys& k = Keys::get();
  RootDef r;
  r.root = {{k.root1, k.root2, k.root3}, 2};
  r.image = {{k.image1, k.image2}, 1};
  r.director = {{k.director1, k.director2}, 1};
  return r;
}

inline std::string root_body(const RootDef& d) {
  ota::v1::RootMetadata m;
  m.set_type(ota::v1::METADATA_TYPE_ROOT);
  m.set_version(d.version);
  m.set_expires(d.expires);
  std::vector<std::string> seen;
  auto add_role = [&](const RoleDef& role, ota::v1::RoleKeys* rk) {
    for (const auto& key : role.keys) {
      rk->add_key_ids(key.key_id());
      if (std::find(seen.begin(), seen.end(), key.key_id()) == seen.end()) {
        seen.push_back(key.key_id());
        auto* e = m.add_keys();
        e->set_key_id(key.key_id());
        e->set_public_pem(key.public_pem());
      }
    }
    rk->set_threshold(role.threshold);
  };
  add_role(d.root, m.mutable_root());
  add_role(d.image, m.mutable_image());
  add_role(d.director, m.mutable_director());
  return m.SerializeAsString();
}

inline std::string signed_by(const std::string& body, const std::vector<PrivateKey>& keys) {
  return ota::trust::sign(body, keys).value();
}

struct ImageDef {
  std::string name = "brake-fw";
  std::string version = "2.0.0";
  uint64_t version_number = 200;
  uint64_t size = 4096;
  char sha_fill = 'B';
  std::vector<std::string> hardware_ids = {"hw-brake-a"};
};

inline std::vector<ImageDef> default_images() {
  std::vector<ImageDef> v(2);
  v[1].name = "gw-fw";
  v[1].version = "5.1.0";
  v[1].version_number = 510;
  v[1].size = 8192;
  v[1].sha_fill = 'G';
  v[1].hardware_ids = {"hw-gw-1", "hw-gw-2"};
  return v;
}

inline std::string image_body(uint64_t version, const std::vector<ImageDef>& images,
                              int64_t expires = kFuture) {
  ota::v1::ImageMetadata m;
  m.set_type(ota::v1::METADATA_TYPE_IMAGE);
  m.set_version(version);
  m.set_expires(expires);
  for (const auto& d : images) {
    auto* t = m.add_images();
    t->set_name(d.name);
    t->set_version(d.version);
    t->set_version_number(d.version_number);
    t->set_size(d.size);
    t->set_sha256(digest_bytes(d.sha_fill));
    for (const auto& h : d.hardware_ids) t->add_hardware_ids(h);
    auto* full = t->mutable_full();
    full->set_sha256(digest_bytes('z'));
    full->set_size(d.size / 2);
    full->set_encoding("zstd");
    auto* delta = t->add_deltas();
    delta->set_base_version("1.0.0");
    delta->set_base_version_number(100);
    delta->set_base_sha256(digest_bytes('b'));
    delta->set_base_size(d.size);
    delta->mutable_payload()->set_sha256(digest_bytes('d'));
    delta->mutable_payload()->set_size(64);
    delta->mutable_payload()->set_encoding("ota-delta-1");
  }
  return m.SerializeAsString();
}

struct TargetDef {
  std::string ecu_id = "ecu-brake";
  std::string hardware_id = "hw-brake-a";
  std::string image_name = "brake-fw";
  std::string version = "2.0.0";
  uint64_t version_number = 200;
  char sha_fill = 'B';
  uint64_t size = 4096;
  bool allow_downgrade = false;
  uint32_t group = 1;
};

inline std::vector<TargetDef> default_targets() {
  std::vector<TargetDef> v(2);
  v[1].ecu_id = "ecu-gw";
  v[1].hardware_id = "hw-gw-2";
  v[1].image_name = "gw-fw";
  v[1].version = "5.1.0";
  v[1].version_number = 510;
  v[1].sha_fill = 'G';
  v[1].size = 8192;
  v[1].group = 2;
  return v;
}

inline std::string director_body(uint64_t version, const std::vector<TargetDef>& targets,
                                 const std::string& vin = "VIN0000000000001", int64_t expires = kFuture) {
  ota::v1::DirectorMetadata m;
  m.set_type(ota::v1::METADATA_TYPE_DIRECTOR);
  m.set_vin(vin);
  m.set_campaign_id("campaign-" + std::to_string(version));
  m.set_version(version);
  m.set_expires(expires);
  for (const auto& d : targets) {
    auto* t = m.add_targets();
    t->set_ecu_id(d.ecu_id);
    t->set_hardware_id(d.hardware_id);
    t->set_image_name(d.image_name);
    t->set_version(d.version);
    t->set_version_number(d.version_number);
    t->set_sha256(digest_bytes(d.sha_fill));
    t->set_size(d.size);
    t->set_allow_downgrade(d.allow_downgrade);
    t->set_group(d.group);
  }
  // The gateway goes after the body ECUs; the body group is atomic.
  auto* g1 = m.add_groups();
  g1->set_id(1);
  g1->set_order(10);
  g1->set_atomic(true);
  auto* g2 = m.add_groups();
  g2->set_id(2);
  g2->set_order(20);
  m.mutable_preconditions()->set_require_parked(true);
  m.mutable_preconditions()->set_min_battery_percent(40);
  return m.SerializeAsString();
}

inline ota::trust::VehicleInfo default_vehicle() {
  ota::trust::VehicleInfo v;
  v.vin = "VIN0000000000001";
  v.ecu_hardware_ids = {{"ecu-brake", "hw-brake-a"}, {"ecu-gw", "hw-gw-2"}, {"ecu-other", "hw-x"}};
  return v;
}

// A fresh directory per test case, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ota-trust-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A provisioned vehicle: root v1 written to a file, a state dir, and a clock at kNow.
struct Vehicle {
  TempDir dir;
  ota::trust::FixedClock clock{kNow};
  std::string root_file = dir.path() + "/root.signed";
  std::string state = dir.path() + "/state";

  explicit Vehicle(const RootDef& root = default_root()) {
    const Keys& k = Keys::get();
    std::string signed_root = signed_by(root_body(root), {k.root1, k.root2});
    if (!ota::atomic_write_file(root_file, signed_root)) std::abort();
  }
  std::unique_ptr<ota::trust::TrustStore> open() {
    return ota::trust::TrustStore::open(root_file, state, clock).value();
  }
};

}  // namespace trust_test
