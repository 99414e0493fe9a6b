// `ota-pack pack`: builds an update package directory from new images and optional bases.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace ota::pack {

struct PackArgs {
  std::vector<std::string> ecus;  // "ECU_ID=NEW[:BASE]"
  std::string out_dir;
  int level = 19;
};

CLI::App* add_pack_command(CLI::App& app, PackArgs& args);
int run_pack(const PackArgs& args, bool verbose);

}  // namespace ota::pack
