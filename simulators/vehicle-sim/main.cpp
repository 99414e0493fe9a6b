// ota-sim: the whole in-vehicle chain on a desktop. Starts a private broker, N simulated ECUs
// (ota-agent-sim) and the vehicle client (ota-client) as child processes, has the client run one
// campaign (full images, or deltas where the ECU can take them), and prints a per-ECU summary.
// Exits 0 only if every ECU was updated. docs/CLIENT.md, section 7.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "options.hpp"
#include "ota/core/log.hpp"
#include "ota/core/program_info.hpp"
#include "run.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ota-sim: a simulated vehicle (broker, client, N ECU agents) running one OTA campaign"};
  app.set_version_flag("--version", ota::version_text("ota-sim"));
  ota::sim::Options o;
  ota::sim::add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  ota::set_log_level(ota::LogLevel::kWarn);
  try {
    return ota::sim::run(o);
  } catch (const CLI::ValidationError& e) {
    std::fprintf(stderr, "ota-sim: %s\n", e.what());
    return 2;
  }
}
