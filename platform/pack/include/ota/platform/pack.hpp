// Update packages (`ota-pack pack`): an update package directory built from new images and optional
// bases, with its manifest (proto/ota/v1/package.proto) and, given image-role keys, the signed image
// metadata. Platform side; writes progress lines to stdout (and details to stderr when verbose).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ota/core/io.hpp"
#include "ota/core/status.hpp"

namespace ota::pack {

struct PackArgs {
  std::vector<std::string> images;    // "ECU_ID=NEW_IMAGE"
  std::vector<std::string> bases;     // "ECU_ID=BASE_IMAGE"
  std::vector<std::string> versions;  // "ECU_ID=VERSION"
  std::string out_dir;
  int level = 19;
  bool keep_full = false;  // keep the full payload beside a smaller delta
  // Signed image metadata (docs/SECURITY.md): written to image.signed when keys are given.
  std::vector<std::string> sign_keys;      // image-role private keys (PEM); as many as the threshold
  std::vector<std::string> hardware_ids;   // "ECU_ID=HARDWARE_ID"
  std::vector<std::string> base_versions;  // "ECU_ID=VERSION" of the base a delta applies to
  uint64_t metadata_version = 1;           // must go up with every release the platform signs
  int expires_days = 30;
};

// Builds the package into args.out_dir: per ECU a full payload and, given a base, a delta, each
// applied once to check it; keeps the smaller (both with keep_full); then manifest.pb, and
// image.signed when sign_keys are given. kInvalidArgument naming the bad ECU_ID=VALUE pair; any
// error of reading, encoding, verifying or writing, with the ECU it concerns.
Status make_package(const PackArgs& args, bool verbose);

// Applies the delta at delta_path to base_path ("" for a full payload) without writing the result:
// apply checks the result's SHA-256, so OK means the delta reconstructs the image it was made for.
Status verify_delta_file(const std::string& base_path, const std::string& delta_path);

}  // namespace ota::pack
