// `ota-pack pack`: builds an update package directory from new images and optional bases.
#pragma once

#include <CLI/CLI.hpp>

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
};

CLI::App* add_pack_command(CLI::App& app, PackArgs& args);
int run_pack(const PackArgs& args, bool verbose);

// Applies the delta at delta_path to base_path ("" for a full payload) without writing the result:
// apply checks the result's SHA-256, so OK means the delta reconstructs the image it was made for.
Status verify_delta_file(const std::string& base_path, const std::string& delta_path);

// Writes through `fn` into path.tmp, then syncs and renames it over path; a failure leaves no file.
Status write_file_atomically(const std::string& path, const std::function<Status(ByteSink&)>& fn);

}  // namespace ota::pack
