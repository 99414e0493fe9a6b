// ota-client's command line (docs/CLIENT.md, section 1) and the configuration it selects.
#pragma once

#include <optional>
#include <string>

#include "config.hpp"
#include "ota/core/log.hpp"

namespace ota::client {

struct CommandLine {
  std::string config_path;  // --config
  std::string campaign;     // --campaign: overrides [campaign] file
  std::string report;       // --report: overrides [report] file
  LogLevel log_level = LogLevel::kInfo;
  bool version = false;       // --version
  bool check_config = false;  // --check-config
};

// Parses argv into `out`. Returns the exit status when the process is done (--help: 0; a usage error,
// printed: 2), nullopt to go on.
std::optional<int> parse_command_line(int argc, char** argv, CommandLine* out);

// The configuration the command line selects: the --config file with the --campaign and --report
// overrides applied. Without --config: the defaults with --check-config, else an error.
Result<ClientConfig> load_selected_config(const CommandLine& cl);

}  // namespace ota::client
