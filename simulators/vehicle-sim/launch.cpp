#include "launch.hpp"

#include <algorithm>

#include "teardown.hpp"

#include "config.hpp"
#include "ota/core/file.hpp"
#include "ota/core/trust.hpp"
#include "ota/sim/wait.hpp"

namespace ota::sim {
namespace {

// Each ECU has its own key pair and signs its results; the client knows the public halves.
Result<std::string> make_ecu_keys(const Scenario& s) {
  const std::string dir = s.work + "/keys/ecus";
  OTA_RETURN_IF_ERROR(make_dirs(dir));
  for (const auto& e : s.ecus) {
    auto key = trust::PrivateKey::generate();
    Status k = key ? key->save(dir + "/" + e + ".key") : key.status();
    if (k.is_ok()) k = key->save_public(dir + "/" + e + ".pub");
    if (!k.is_ok()) return k.with_context("ECU key");
  }
  return dir;
}

client::ClientConfig client_config(const Scenario& s, const Options& opt, const Vehicle& v,
                                   const std::string& ecu_keys) {
  client::ClientConfig c;
  c.vehicle.vin = s.campaign.vin();
  c.vehicle.ecus = s.ecus;
  c.broker.uri = v.broker->uri();
  c.broker.username = "ota-client";
  c.broker.password_file = v.broker->credentials_file("ota-client");
  c.state.dir = s.work + "/client-state";
  c.conditions.file = s.work + "/vehicle-state.json";
  c.report.file = s.work + "/client-report.json";
  if (v.cloud_broker) {
    c.cloud.uri = v.cloud_broker->uri();
    c.cloud.ca = v.cloud_broker->ca_file();
    c.cloud.cert = v.cloud_broker->cert_file("ota-client");
    c.cloud.key = v.cloud_broker->key_file("ota-client");
    c.cloud.vehicle = "ota-client";
  }
  if (s.trust_root.empty()) {
    c.trust.allow_unsigned = true;
  } else {
    c.trust.root = s.trust_root;
  }
  c.trust.ecu_keys = ecu_keys;
  c.consent.answers = opt.consent;
  return c;
}

std::vector<std::string> agent_argv(const Scenario& s, const Options& opt, const EcuFaults& faults,
                                    const Broker& broker, size_t i) {
  const std::string& e = s.ecus[i];
  std::vector<std::string> argv = {s.bin + "/ota-agent-sim",
                                   "--ecu",
                                   e,
                                   "--hardware-id",
                                   e + "-hw1",
                                   "--serial",
                                   "SN-" + e,
                                   "--broker",
                                   broker.uri(),
                                   "--password-file",
                                   broker.credentials_file(e),
                                   "--dir",
                                   s.work + "/ecu/" + e,
                                   "--factory-version",
                                   "1.0.0",
                                   "--bank-size",
                                   std::to_string(s.image_size * 2)};
  if (static_cast<int>(i) < opt.full_only) argv.push_back("--no-delta");
  if (!s.trust_root.empty()) argv.insert(argv.end(), {"--trust-root", s.trust_root});
  argv.insert(argv.end(), {"--ecu-key", s.work + "/keys/ecus/" + e + ".key"});
  auto add = [&](const std::map<std::string, std::string>& per_ecu, const char* flag) {
    if (auto it = per_ecu.find(e); it != per_ecu.end()) argv.insert(argv.end(), {flag, it->second});
  };
  add(faults.fail, "--fail");
  add(faults.crash, "--crash");
  add(faults.fail_offset, "--fail-offset");
  if (opt.write_speed > 0) argv.insert(argv.end(), {"--write-speed", std::to_string(opt.write_speed)});
  if (opt.dtcs > 0) argv.insert(argv.end(), {"--dtcs", std::to_string(opt.dtcs)});
  if (opt.dtc_text_bytes > 0)
    argv.insert(argv.end(), {"--dtc-text-bytes", std::to_string(opt.dtc_text_bytes)});
  return argv;
}

Result<ChildProcess> spawn_agent(const Scenario& s, const Options& opt, const EcuFaults& faults,
                                 const Broker& broker, size_t i) {
  SpawnOptions so;
  so.log_path = s.work + "/ecu/" + s.ecus[i] + "/agent.log";  // appended to by a restarted agent
  so.name = "agent " + s.ecus[i];
  return ChildProcess::spawn(agent_argv(s, opt, faults, broker, i), so);
}

}  // namespace

Status start_broker(const Scenario& s, Vehicle& v) {
  BrokerOptions bo;
  bo.dir = s.work + "/broker";
  bo.agents = s.ecus;
  auto broker = Broker::start(bo);
  if (!broker) return broker.status();
  v.broker = std::move(*broker);
  return Status::ok();
}

Status start_platform(const Scenario& s, Vehicle& v) {
  if (!s.use_cloud) return Status::ok();
  CloudBrokerOptions co;
  co.dir = s.work + "/cloud-broker";
  auto cb = CloudBroker::start(co);
  if (!cb) return cb.status().with_context("cloud broker");
  v.cloud_broker = std::move(*cb);
  SpawnOptions so;
  so.log_path = s.work + "/cloud-sim.log";
  so.name = "cloud-sim";
  auto cs = ChildProcess::spawn(
      {s.bin + "/ota-cloud-sim", "--broker", v.cloud_broker->uri(), "--pki", v.cloud_broker->pki_dir(),
       "--packages", s.cloud_packages, "--signed-campaign", s.client_campaign, "--reports-dir",
       s.work + "/cloud-reports", "--exit-after-report"},
      so);
  if (!cs) return cs.status();
  v.cloud_sim.emplace(std::move(*cs));
  if (!wait_for_file_contains(so.log_path, "serving packages", std::chrono::seconds(15))) {
    return Status(Code::kUnavailable, "ota-cloud-sim did not start:\n" + tail_file(so.log_path));
  }
  return Status::ok();
}

Status write_client_config(const Scenario& s, const Options& opt, const Vehicle& v) {
  auto ecu_keys = make_ecu_keys(s);
  if (!ecu_keys) return ecu_keys.status();
  const std::string path = s.work + "/client.toml";
  const std::string toml = "# written by ota-sim\n" + client::to_toml(client_config(s, opt, v, *ecu_keys));
  // What the client will refuse is refused here, naming the option.
  if (auto check = client::parse_client_config(toml, path); !check) return check.status();
  return atomic_write_file(path, toml);
}

Status start_agents(const Scenario& s, const Options& opt, const EcuFaults& faults, Vehicle& v) {
  for (size_t i = 0; i < s.ecus.size(); ++i) {
    auto child = spawn_agent(s, opt, faults, *v.broker, i);
    if (!child) return child.status();
    v.agents.emplace(s.ecus[i], std::move(*child));
  }
  return Status::ok();
}

Status kill_and_restart_agent(const Scenario& s, const Options& opt, const std::string& ecu, Vehicle& v) {
  const auto it = std::find(s.ecus.begin(), s.ecus.end(), ecu);
  auto running = v.agents.find(ecu);
  if (it == s.ecus.end() || running == v.agents.end()) return Status(Code::kNotFound, "no agent " + ecu);
  v.stats.push_back(process_stats("agent " + ecu + " (killed)", running->second.kill()));
  v.agents.erase(running);
  auto child = spawn_agent(s, opt, ecu_faults(opt), *v.broker, static_cast<size_t>(it - s.ecus.begin()));
  if (!child) return child.status();
  v.agents.emplace(ecu, std::move(*child));
  return Status::ok();
}

Result<ChildProcess> spawn_client(const Scenario& s) {
  SpawnOptions so;
  so.log_path = s.work + "/client.log";
  so.name = "client";
  std::vector<std::string> argv = {s.bin + "/ota-client", "--config", s.work + "/client.toml"};
  if (!s.use_cloud) argv.insert(argv.end(), {"--campaign", s.client_campaign});
  return ChildProcess::spawn(argv, so);
}

}  // namespace ota::sim
