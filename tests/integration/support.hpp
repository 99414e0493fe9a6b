// Helpers for the integration tests: run ota-sim and read its report, start simulated agents.
#pragma once

#include <string>
#include <vector>

#include "agent_directory.hpp"
#include "ota/core/transport.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::test {

std::string bin(const std::string& name);

// A temporary directory named after `prefix`, removed when it goes out of scope (REQUIREs it).
ota::sim::TempDir temp_dir(const std::string& prefix);

struct SimRun {
  int exit_code = -1;
  v1::VehicleReport report;
  bool has_report = false;
  std::string work;    // the run's work directory (kept until the SimRun is destroyed)
  std::string output;  // ota-sim's stdout and stderr
  std::string client_log() const;
  const v1::EcuReport* ecu(const std::string& id) const;
};

// Runs ota-sim with the given arguments (plus --work-dir and --report in a temporary directory)
// and waits for it (REQUIREs it to end within `timeout_s`). `env` adds NAME=VALUE entries to the
// environment ota-sim and its children inherit.
SimRun run_sim(const ota::sim::TempDir& dir, std::vector<std::string> args, int timeout_s = 240,
               std::vector<std::string> env = {});

// The vehicle of a finished one-ECU ota-sim run ("bcm"), started again with the state it persisted:
// a fresh broker, its agent, and ota-client on `campaign_json` (a SignedCampaign as JSON). Waits
// for the client to end (REQUIREs it within 60 s), then stops the agent and the broker. Logs and
// the report are in `dir`, named after `tag`.
struct Rerun {
  int client_exit = -1;
  std::string client_log;  // the client's log (read after it ended)
  std::string agent_log;
  std::string report_json;  // empty when the client wrote none
};
Rerun rerun_vehicle(const SimRun& first, const ota::sim::TempDir& dir, const std::string& campaign_json,
                    const std::string& tag);

// The boot bank recorded by an ota-sim ECU ("A" or "B").
std::string boot_bank(const SimRun& run, const std::string& ecu);

// The client's side of the vehicle bus, for tests that play the client: a transport connected to
// `broker` as ota-client (client id "test-client"), subscribed to every agent's uplink leaves and
// feeding `fleet`. REQUIREs the connection and the subscriptions. The transport is dropped first
// (its callbacks use the directory).
struct ClientBus {
  explicit ClientBus(ota::sim::Broker& broker);
  ~ClientBus() { transport.reset(); }
  std::unique_ptr<ota::Transport> transport;
  std::unique_ptr<ota::client::AgentDirectory> fleet;
};

}  // namespace ota::test
