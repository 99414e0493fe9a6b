#include "ota/platform/pack.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <memory>

#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/trust.hpp"
#include "ota/platform/mapped_file.hpp"
#include "ota/v1/package.pb.h"

#include <ctime>

namespace ota::pack {

Status verify_delta_file(const std::string& base_path, const std::string& delta_path) {
  class NullSink : public ByteSink {
   public:
    Status write(const uint8_t*, size_t) override { return Status::ok(); }
  } null_sink;
  auto d = FileReader::open(delta_path);
  if (!d) return d.status();
  if (base_path.empty())
    return delta::apply_full(*d.value(), null_sink).with_context("verifying " + delta_path);
  auto b = FileReader::open(base_path);
  if (!b) return b.status();
  return delta::apply_delta(*b.value(), *d.value(), null_sink).with_context("verifying " + delta_path);
}

namespace {

// "ID=VALUE" pairs into a map; kInvalidArgument naming the bad one.
Status parse_pairs(const std::vector<std::string>& in, const char* what,
                   std::map<std::string, std::string>* out) {
  for (const auto& s : in) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq + 1 == s.size()) {
      return make_error(Code::kInvalidArgument, std::string(what) + " '" + s + "' is not ECU_ID=VALUE");
    }
    std::string id = s.substr(0, eq);
    if (!topics::valid_ecu_id(id)) {
      return make_error(Code::kInvalidArgument, "'" + id + "' is not an ECU id (" + topics::kEcuIdRule + ")");
    }
    if (!out->emplace(id, s.substr(eq + 1)).second) {
      return make_error(Code::kInvalidArgument, std::string(what) + " given twice for ECU " + id);
    }
  }
  return Status::ok();
}

struct Built {
  uint64_t size = 0;
  Digest sha256{};
  delta::EncodeStats stats;
};

Status build_payload(const std::string& path, const MappedFile* base, const MappedFile& image, int level,
                     Built* built) {
  delta::EncodeOptions opt;
  opt.level = level;
  return atomic_write_stream(path, [&](ByteSink& sink) {
    HashingSink hashing(&sink);
    OTA_RETURN_IF_ERROR(delta::make_delta(base ? base->data() : nullptr, base ? base->size() : 0,
                                          image.data(), image.size(), hashing, opt, &built->stats));
    built->size = hashing.bytes();
    built->sha256 = hashing.finish();
    return Status::ok();
  });
}

Status pack_one(const PackArgs& args, const std::string& id, const std::string& image_path,
                const std::string* base_path, const std::string* version, v1::PackagedImage* out,
                bool verbose) {
  auto image = MappedFile::open(image_path);
  if (!image) return image.status();
  const std::string full_name = id + ".full", delta_name = id + ".delta";
  Built full, dlt;
  OTA_RETURN_IF_ERROR(
      build_payload(args.out_dir + "/" + full_name, nullptr, *image.value(), args.level, &full));
  OTA_RETURN_IF_ERROR(verify_delta_file("", args.out_dir + "/" + full_name));
  std::unique_ptr<MappedFile> base;
  if (base_path) {
    auto b = MappedFile::open(*base_path);
    if (!b) return b.status();
    base = std::move(b.value());
    OTA_RETURN_IF_ERROR(
        build_payload(args.out_dir + "/" + delta_name, base.get(), *image.value(), args.level, &dlt));
    OTA_RETURN_IF_ERROR(verify_delta_file(*base_path, args.out_dir + "/" + delta_name));
  }
  bool use_delta = base && dlt.size < full.size;
  // Keep only the payload that travels (and the full one too when asked: the fallback for ECUs
  // that do not run the delta's base).
  if (!use_delta || !args.keep_full)
    ::unlink((args.out_dir + "/" + (use_delta ? full_name : delta_name)).c_str());
  const Built& chosen = use_delta ? dlt : full;
  Digest image_sha = Sha256::of(image.value()->data(), image.value()->size());

  out->set_ecu_id(id);
  if (version) out->set_version(*version);
  out->set_payload(use_delta ? v1::PACKAGED_PAYLOAD_DELTA : v1::PACKAGED_PAYLOAD_FULL);
  out->set_payload_file(use_delta ? delta_name : full_name);
  out->set_payload_size(chosen.size);
  out->set_payload_sha256(std::string(chosen.sha256.begin(), chosen.sha256.end()));
  out->set_image_size(image.value()->size());
  out->set_image_sha256(std::string(image_sha.begin(), image_sha.end()));
  if (base) {
    Digest base_sha = Sha256::of(base->data(), base->size());
    out->set_base_size(base->size());
    out->set_base_sha256(std::string(base_sha.begin(), base_sha.end()));
  }
  if (use_delta && args.keep_full) {
    out->set_full_file(full_name);
    out->set_full_sha256(std::string(full.sha256.begin(), full.sha256.end()));
  }
  out->set_delta_method(delta::kDeltaMethod);
  out->set_image_kind(delta::image_kind_name(full.stats.image_kind));
  out->set_full_size(full.size);
  out->set_delta_size(dlt.size);
  std::printf(
      "%s: %s %s, %llu bytes (image %llu bytes; full %llu, delta %s)\n", id.c_str(),
      use_delta ? "delta" : "full", out->payload_file().c_str(), static_cast<unsigned long long>(chosen.size),
      static_cast<unsigned long long>(image.value()->size()), static_cast<unsigned long long>(full.size),
      base ? std::to_string(dlt.size).c_str() : "not built (no base)");
  if (verbose) {
    std::fprintf(stderr, "%s: kind %s, transform %s\n", id.c_str(), out->image_kind().c_str(),
                 delta::transform_name(use_delta ? dlt.stats.transform : full.stats.transform));
  }
  return Status::ok();
}

// "1.4.2" -> 1004002: the comparable number the image role signs (each part below 1000).
uint64_t version_number(const std::string& v) {
  uint64_t n = 0;
  size_t pos = 0;
  for (int part = 0; part < 3; ++part) {
    uint64_t x = 0;
    while (pos < v.size() && std::isdigit(static_cast<unsigned char>(v[pos])))
      x = x * 10 + static_cast<uint64_t>(v[pos++] - '0');
    n = n * 1000 + std::min<uint64_t>(x, 999);
    if (pos < v.size() && v[pos] == '.') ++pos;
  }
  return n;
}

Digest digest_of(const std::string& raw) {
  Digest d{};
  digest_from_bytes(raw, &d);
  return d;
}

// The image role's signed statement of what this package holds: per image its hash, size, version,
// the hardware it may run on, and the payloads (full and/or delta with its base).
Status write_image_metadata(const PackArgs& args, const v1::PackageManifest& manifest) {
  std::map<std::string, std::string> hardware, base_versions;
  OTA_RETURN_IF_ERROR(parse_pairs(args.hardware_ids, "--hardware", &hardware));
  OTA_RETURN_IF_ERROR(parse_pairs(args.base_versions, "--base-version", &base_versions));
  std::vector<trust::PrivateKey> keys;
  for (const auto& path : args.sign_keys) {
    auto key = trust::PrivateKey::load(path);
    if (!key) return key.status().with_context("signing key " + path);
    keys.push_back(std::move(*key));
  }
  std::vector<trust::ImageInfo> images;
  for (const auto& p : manifest.images()) {
    trust::ImageInfo img;
    img.name = p.ecu_id();
    img.version = p.version().empty() ? "0.0.0" : p.version();
    img.version_number = version_number(img.version);
    img.size = p.image_size();
    img.sha256 = digest_of(p.image_sha256());
    if (hardware.count(p.ecu_id())) img.hardware_ids = {hardware[p.ecu_id()]};
    const bool delta = p.payload() == v1::PACKAGED_PAYLOAD_DELTA;
    if (!delta || !p.full_file().empty()) {
      img.has_full = true;
      img.full.sha256 = digest_of(delta ? p.full_sha256() : p.payload_sha256());
      img.full.size = delta ? p.full_size() : p.payload_size();
      img.full.encoding = "zstd";
    }
    if (delta) {
      trust::DeltaInfo d;
      d.base_version = base_versions.count(p.ecu_id()) ? base_versions[p.ecu_id()] : "";
      d.base_version_number = version_number(d.base_version);
      d.base_sha256 = digest_of(p.base_sha256());
      d.base_size = p.base_size();
      d.payload.sha256 = digest_of(p.payload_sha256());
      d.payload.size = p.payload_size();
      d.payload.encoding = delta::kDeltaMethod;
      img.deltas.push_back(d);
    }
    images.push_back(std::move(img));
  }
  const int64_t expires = static_cast<int64_t>(std::time(nullptr)) + int64_t{args.expires_days} * 24 * 3600;
  auto signed_image = trust::sign(trust::make_image_body(args.metadata_version, expires, images), keys);
  if (!signed_image) return signed_image.status();
  return atomic_write_file(args.out_dir + "/image.signed", *signed_image);
}

}  // namespace

Status make_package(const PackArgs& args, bool verbose) {
  std::map<std::string, std::string> images, bases, versions;
  OTA_RETURN_IF_ERROR(parse_pairs(args.images, "--image", &images));
  OTA_RETURN_IF_ERROR(parse_pairs(args.bases, "--base", &bases));
  OTA_RETURN_IF_ERROR(parse_pairs(args.versions, "--version", &versions));
  for (const auto* m : {&bases, &versions}) {
    for (const auto& [id, v] : *m) {
      if (!images.count(id)) return make_error(Code::kInvalidArgument, "no --image for ECU " + id);
    }
  }
  OTA_RETURN_IF_ERROR(make_dirs(args.out_dir));

  v1::PackageManifest manifest;
  manifest.set_format_version(1);
  for (const auto& [id, path] : images) {
    auto b = bases.find(id);
    auto v = versions.find(id);
    Status s = pack_one(args, id, path, b == bases.end() ? nullptr : &b->second,
                        v == versions.end() ? nullptr : &v->second, manifest.add_images(), verbose);
    if (!s.is_ok()) return s.with_context("ECU " + id);
  }
  std::string bytes;
  if (!manifest.SerializeToString(&bytes))
    return make_error(Code::kInternal, "cannot serialize the manifest");
  OTA_RETURN_IF_ERROR(atomic_write_file(args.out_dir + "/manifest.pb", bytes));
  std::printf("wrote %s/manifest.pb (%zu images)\n", args.out_dir.c_str(),
              static_cast<size_t>(manifest.images_size()));
  if (!args.sign_keys.empty()) {
    OTA_RETURN_IF_ERROR(write_image_metadata(args, manifest));
    std::printf("wrote %s/image.signed (image metadata v%llu, %zu signature(s))\n", args.out_dir.c_str(),
                static_cast<unsigned long long>(args.metadata_version), args.sign_keys.size());
  }
  return Status::ok();
}

}  // namespace ota::pack
