// Starting the simulated vehicle: the in-vehicle broker, the platform (its broker and
// ota-cloud-sim), the client's configuration and ECU keys, one ota-agent-sim per ECU, ota-client.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "options.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/cloud_broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/v1/ota.pb.h"
#include "scenario.hpp"

namespace ota::sim {

// The processes of a run. Members go in reverse order: the client first, the brokers last.
struct Vehicle {
  std::unique_ptr<Broker> broker;
  std::unique_ptr<CloudBroker> cloud_broker;  // with the platform only
  std::optional<ChildProcess> cloud_sim;      // with the platform only
  std::map<std::string, ChildProcess> agents;
  std::optional<ChildProcess> client;
  std::vector<v1::ProcessStats> stats;  // of every process that ended, in order
};

// A private Mosquitto rendered from broker-config/ (WORK/broker), with an account per ECU.
Status start_broker(const Scenario& s, Vehicle& v);

// With s.use_cloud: the platform's broker (TLS, client certificates) and ota-cloud-sim, which
// offers s.client_campaign and serves s.cloud_packages; returns once it serves. Otherwise nothing.
Status start_platform(const Scenario& s, Vehicle& v);

// An ECU key pair per ECU (WORK/keys/ecus) and WORK/client.toml for the broker, the platform and
// the trust material of the run. An invalid configuration (a malformed --consent answer) is an error
// naming it.
Status write_client_config(const Scenario& s, const Options& opt, const Vehicle& v);

// One ota-agent-sim per ECU, with the faults asked for it; logs in WORK/ecu/{ecu}/agent.log.
Status start_agents(const Scenario& s, const Options& opt, const EcuFaults& faults, Vehicle& v);

// Kills ECU `ecu`'s agent (kill -9) and starts it again at once with the same command line, as a
// process supervisor would; the killed one's stats go to v.stats.
Status kill_and_restart_agent(const Scenario& s, const Options& opt, const std::string& ecu, Vehicle& v);

// ota-client with WORK/client.toml (and the campaign file when the platform is not used); log in
// WORK/client.log.
Result<ChildProcess> spawn_client(const Scenario& s);

}  // namespace ota::sim
