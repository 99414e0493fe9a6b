#include "command_line.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>

namespace ota::client {

std::optional<int> parse_command_line(int argc, char** argv, CommandLine* out) {
  CLI::App app{"ota-client: carries out OTA campaigns across the vehicle's ECUs"};
  std::string log_level = "info";
  app.add_option("-c,--config", out->config_path, "configuration file (TOML), see docs/CLIENT.md");
  app.add_option("--campaign", out->campaign, "run this campaign (JSON) instead of [campaign].file");
  app.add_option("--report", out->report, "write the vehicle report (JSON) here");
  app.add_option("--log-level", log_level, "debug, info, warn, error");
  app.add_flag("--version", out->version, "print the version and exit");
  app.add_flag("--check-config", out->check_config,
               "check the configuration, print it with every default and exit (0: valid, 2: not)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!out->version && !parse_log_level(log_level, &out->log_level)) {
    std::fprintf(stderr, "ota-client: unknown log level '%s'\n", log_level.c_str());
    return 2;
  }
  return std::nullopt;
}

Result<ClientConfig> load_selected_config(const CommandLine& cl) {
  ClientConfig config;
  if (!cl.config_path.empty()) {
    auto loaded = load_client_config(cl.config_path);
    if (!loaded) return loaded.status();
    config = std::move(*loaded);
  } else if (!cl.check_config) {
    return Status(Code::kInvalidArgument, "--config is required");
  }
  if (!cl.campaign.empty()) config.campaign.file = cl.campaign;
  if (!cl.report.empty()) config.report.file = cl.report;
  return config;
}

}  // namespace ota::client
