#include "support.hpp"

#include <google/protobuf/util/json_util.h>
#include <catch2/catch.hpp>

#include "ota/core/file.hpp"
#include "ota/core/topics.hpp"
#include "ota/sim/broker.hpp"

namespace ota::test {

std::string bin(const std::string& name) { return std::string(OTA_BIN_DIR) + "/" + name; }

ota::sim::TempDir temp_dir(const std::string& prefix) {
  auto t = ota::sim::TempDir::create(prefix);
  REQUIRE(t.is_ok());
  return std::move(*t);
}

std::string SimRun::client_log() const {
  auto c = read_small_file(work + "/client.log", 16 << 20);
  return c ? *c : std::string();
}

const v1::EcuReport* SimRun::ecu(const std::string& id) const {
  for (const auto& e : report.ecus()) {
    if (e.ecu_id() == id) return &e;
  }
  return nullptr;
}

SimRun run_sim(const ota::sim::TempDir& dir, std::vector<std::string> args, int timeout_s,
               std::vector<std::string> env) {
  SimRun run;
  run.work = dir.file("work");
  std::vector<std::string> argv = {bin("ota-sim"), "--quiet",  "--work-dir",
                                   run.work,       "--report", dir.file("report.json")};
  argv.insert(argv.end(), args.begin(), args.end());
  ota::sim::SpawnOptions so;
  so.log_path = dir.file("ota-sim.out");
  so.env_extra = std::move(env);
  auto child = ota::sim::ChildProcess::spawn(argv, so);
  REQUIRE(child.is_ok());
  auto exit = child->wait_for(std::chrono::seconds(timeout_s));
  REQUIRE(exit.has_value());
  run.exit_code = exit->exit_code;
  auto out = read_small_file(dir.file("ota-sim.out"), 16 << 20);
  if (out) run.output = *out;
  auto json = read_small_file(dir.file("report.json"), 16 << 20);
  if (json) run.has_report = google::protobuf::util::JsonStringToMessage(*json, &run.report).ok();
  INFO(run.output);
  return run;
}

std::string boot_bank(const SimRun& run, const std::string& ecu) {
  auto b = read_small_file(run.work + "/ecu/" + ecu + "/boot", 64);
  return b ? *b : std::string("A");  // never activated: the factory bank
}

Rerun rerun_vehicle(const SimRun& first, const ota::sim::TempDir& dir, const std::string& campaign_json,
                    const std::string& tag) {
  ota::sim::BrokerOptions bo;
  bo.agents = {"bcm"};
  auto b = ota::sim::Broker::start(bo);
  REQUIRE(b.is_ok());
  // The run's client config points at its own (stopped) broker: write one for the new broker.
  auto toml = read_small_file(first.work + "/client.toml");
  REQUIRE(toml.is_ok());
  std::string cfg = *toml;
  auto replace_value = [&cfg](const std::string& key, const std::string& value) {
    const std::string lead = key + " = \"";
    auto at = cfg.find(lead);
    REQUIRE(at != std::string::npos);
    auto end = cfg.find('"', at + lead.size());
    cfg.replace(at + lead.size(), end - at - lead.size(), value);
  };
  replace_value("uri", (*b)->uri());
  replace_value("password_file", (*b)->credentials_file("ota-client"));
  REQUIRE(atomic_write_file(dir.file(tag + ".toml"), cfg).is_ok());

  Rerun out;
  {
    auto agent = ota::sim::ChildProcess::spawn(
        {bin("ota-agent-sim"), "--ecu", "bcm", "--hardware-id", "bcm-hw1", "--broker", (*b)->uri(),
         "--password-file", (*b)->credentials_file("bcm"), "--dir", first.work + "/ecu/bcm", "--trust-root",
         first.work + "/keys/root.signed"},
        ota::sim::SpawnOptions{dir.file(tag + "-agent.log"), {}, "agent", ""});
    REQUIRE(agent.is_ok());
    auto client =
        ota::sim::ChildProcess::spawn({bin("ota-client"), "--config", dir.file(tag + ".toml"), "--campaign",
                                       campaign_json, "--report", dir.file(tag + ".json")},
                                      ota::sim::SpawnOptions{dir.file(tag + ".log"), {}, "client", ""});
    REQUIRE(client.is_ok());
    auto exit = client->wait_for(std::chrono::seconds(60));
    REQUIRE(exit.has_value());
    out.client_exit = exit->exit_code;
  }  // the agent is stopped here, before its log is read
  auto read = [&](const std::string& name) {
    auto c = read_small_file(dir.file(name), 16 << 20);
    return c ? *c : std::string();
  };
  out.client_log = read(tag + ".log");
  out.agent_log = read(tag + "-agent.log");
  out.report_json = read(tag + ".json");
  return out;
}

ClientBus::ClientBus(ota::sim::Broker& broker) {
  ota::TransportOptions o;
  o.uri = broker.uri();
  o.client_id = "test-client";
  o.username = "ota-client";
  o.password = broker.password("ota-client");
  transport = ota::make_transport(o);
  fleet = std::make_unique<ota::client::AgentDirectory>(*transport);
  transport->on_message([this](const ota::TransportMessage& m) { fleet->on_message(m); });
  REQUIRE(transport->connect(std::chrono::seconds(5)).is_ok());
  for (auto leaf : ota::topics::kAgentUpLeaves)
    REQUIRE(transport->subscribe(ota::topics::all_agents_filter(leaf), 1).is_ok());
}

}  // namespace ota::test
