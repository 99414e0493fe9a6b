// CloudBroker: a private cloud broker (Mosquitto rendered by broker-config/render-cloud: TLS only,
// client certificates, identity = CN) on a free port, for ota-sim and tests.
//
//   ota::sim::CloudBrokerOptions o;                       // vehicles = {"ota-client"}
//   auto broker = ota::sim::CloudBroker::start(o);        // make-pki, render-cloud, mosquitto
//   if (!broker) fail(broker.status().to_string());
//   (*broker)->uri();                                     // "ssl://127.0.0.1:PORT"
//   (*broker)->ca_file(); (*broker)->cert_file("ota-client"); (*broker)->key_file("ota-client");
//
// start() returns once mosquitto logged that it runs with its listener bound; the destructor
// stops it (ChildProcess kills it if everything else fails).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"

namespace ota::sim {

struct CloudBrokerOptions {
  // Instance directory (mosquitto.conf, acl, data/, mosquitto.log, pki/). Empty: a temporary
  // directory removed with the CloudBroker.
  std::string dir = {};
  // An existing make-pki directory (e.g. the in-vehicle broker's). Empty: DIR/pki is made.
  std::string pki_dir = {};
  // Vehicle ids (client certificate CNs) given an ACL block; others than ota-client get a
  // certificate with make-pki --cn-extra.
  std::vector<std::string> vehicles = {"ota-client"};
  // broker-config/ (render-cloud, make-pki). Empty: OTA_BROKER_CONFIG_DIR from the environment,
  // else the source tree's.
  std::string config_dir = {};
  std::chrono::milliseconds ready_timeout{10000};
};

class CloudBroker {
 public:
  static Result<std::unique_ptr<CloudBroker>> start(CloudBrokerOptions options);
  ~CloudBroker();
  CloudBroker(const CloudBroker&) = delete;
  CloudBroker& operator=(const CloudBroker&) = delete;

  int port() const noexcept { return port_; }
  std::string uri() const { return "ssl://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const noexcept { return dir_; }
  const std::string& pki_dir() const noexcept { return pki_dir_; }
  std::string ca_file() const { return pki_dir_ + "/ca.crt"; }
  std::string cert_file(const std::string& cn) const { return pki_dir_ + "/clients/" + cn + ".crt"; }
  std::string key_file(const std::string& cn) const { return pki_dir_ + "/clients/" + cn + ".key"; }
  std::string log_path() const { return dir_ + "/mosquitto.log"; }
  ChildProcess* process() noexcept { return process_ ? &*process_ : nullptr; }
  // SIGTERM (mosquitto saves its database), SIGKILL after `grace`. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  // SIGKILL: what was not yet saved (retained messages since the last autosave, every 60 s) is
  // lost, as in a crash. Idempotent.
  void kill();
  // Starts mosquitto again on the same port, directory and database, after stop() or kill().
  // Errors: as start() (kUnavailable when the port was taken in between).
  Status restart();

 private:
  CloudBroker() = default;
  Status launch();

  CloudBrokerOptions options_;
  std::optional<TempDir> temp_;
  std::string dir_;
  std::string pki_dir_;
  std::string mosquitto_;
  int port_ = 0;
  std::optional<ChildProcess> process_;
};

}  // namespace ota::sim
