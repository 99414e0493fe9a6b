// ota-sim's command line (docs/CLIENT.md, section 7): the scenario to simulate.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ota::sim {

struct Options {
  int agents = 3;
  std::string image_size = "8MiB";
  std::string report;
  std::string work_dir;
  bool keep = false;
  bool delta = false;
  int full_only = 0;  // the first K ECUs do not declare delta capability
  std::vector<std::string> fail, crash, fail_offset;
  double write_speed = 0;
  int dtcs = 0;
  size_t dtc_text_bytes = 0;  // pads each agent's DTC descriptions (an inflating agent)
  uint32_t chunk_size = 256 * 1024;
  uint32_t window = 0;  // 0: the client's default
  int soc = 80;
  int min_soc = 20;
  bool not_parked = false;
  bool ignition_on = false;
  std::vector<std::string> consent;
  int cancel_at = -1;             // percent of bytes acknowledged overall
  int kill_client_at = -1;        // percent: kill -9 the client there and start it again
  int restart_broker_at = -1;     // percent of every ECU: kill -9 the broker there, restart it on its port
  std::vector<std::string> kill;  // WHO@WHEN (kill_trigger.hpp): kill -9 and restart at a point
  bool non_atomic = false;
  int health_timeout_ms = 10000;
  int timeout_s = 600;
  bool quiet = false;
  std::string attack;  // sign (or tamper) as this attack does; see ota/platform/campaign_signing.hpp
  bool unsigned_campaign = false;
  bool no_cloud = false;     // hand the client the campaign file instead of going through the platform
  bool rotate_root = false;  // the platform rotates its root to v2 and ships it with the campaign
};

// Declares every option of `o` on `app`.
void add_options(CLI::App& app, Options& o);

// The faults asked per ECU (--fail, --crash, --fail-offset), each ECU -> its value.
struct EcuFaults {
  std::map<std::string, std::string> fail, crash, fail_offset;
};
// Splits the "ECU:VALUE" options; throws CLI::ValidationError naming the option of a malformed one.
EcuFaults ecu_faults(const Options& o);

}  // namespace ota::sim
