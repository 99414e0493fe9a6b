#include "pack.hpp"

#include <cstdio>

namespace ota::pack {

CLI::App* add_pack_command(CLI::App& app, PackArgs& args) {
  auto* cmd = app.add_subcommand("pack", "build an update package: per ECU a full payload and, given a base, a delta");
  cmd->add_option("--ecu", args.ecus, "ECU_ID=NEW_IMAGE[:BASE_IMAGE] (repeatable)")->required();
  cmd->add_option("-o,--out", args.out_dir, "output directory")->required();
  cmd->add_option("-l,--level", args.level, "zstd level (1-22)")->capture_default_str();
  return cmd;
}

int run_pack(const PackArgs&, bool) {
  std::fprintf(stderr, "ota-pack pack: not implemented yet\n");
  return 1;
}

}  // namespace ota::pack
