// Broker: a private Mosquitto rendered from broker-config/ on a free port, for simulators and
// tests.
//
//   ota::sim::BrokerOptions options;
//   options.agents = {"ecu-a", "ecu-b"};
//   auto broker = ota::sim::Broker::start(options);
//   if (!broker) fail(broker.status().to_string());
//   connect((*broker)->uri(), "ecu-a", (*broker)->password("ecu-a"));
//
// start() renders the instance with broker-config/render (and broker-config/make-pki for
// TLS), starts `mosquitto -c DIR/mosquitto.conf` as a ChildProcess (log: DIR/mosquitto.log)
// and returns once an MQTT CONNECT with the ota-observer credentials gets a CONNACK.
// Users: ota-client, ota-observer and one per agent (username = ECU id); see
// broker-config/README.md for the topic ACL.
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

struct BrokerOptions {
  // Instance directory (config, passwd, acl, credentials/, data/, pki/, logs). Empty: a new
  // temporary directory, removed when the Broker is destroyed (see TempDir, OTA_KEEP_TEMP).
  std::string dir = {};
  // ECU ids that get a user, a password and an ACL block (and a certificate with tls).
  std::vector<std::string> agents = {};
  // The broker-config/ directory holding render and make-pki. Empty: OTA_BROKER_CONFIG_DIR
  // from the environment if set, else the source tree's broker-config/ (compile definition).
  std::string config_dir = {};
  // Also make a development PKI in DIR/pki and open a TLS listener (client certificates,
  // identity = certificate CN).
  bool tls = false;
  // Extra IP addresses for the broker certificate's SAN and the TLS listener's bind address
  // (e.g. "0.0.0.0" together with a veth address for agents in network namespaces).
  std::vector<std::string> tls_extra_ips = {};
  std::string tls_bind = "127.0.0.1";
  // Replace every client id by the username (render's default): no client can take over another's
  // session by connecting with its client id (mosquitto closes the older connection of a client
  // id), at the price of one connection per user at a time. false renders with
  // --no-strict-clientid, where any user can close a connection whose client id it knows.
  bool strict_client_ids = true;
  // Fixed ports instead of free ones picked at random (0 = pick). With a fixed port a port in
  // use is an error, not a retry.
  int port = 0;
  int tls_port = 0;
  // How long to wait for the broker to answer a CONNECT.
  std::chrono::milliseconds ready_timeout{10000};
  // Path of the mosquitto binary; empty: PATH, then /usr/sbin/mosquitto.
  std::string mosquitto_path = {};
};

class Broker {
 public:
  static Result<std::unique_ptr<Broker>> start(BrokerOptions options);

  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;
  ~Broker();  // stop()

  const std::string& host() const noexcept { return host_; }  // "127.0.0.1"
  int port() const noexcept { return port_; }
  // TLS port, 0 without tls.
  int tls_port() const noexcept { return tls_port_; }
  // "tcp://127.0.0.1:PORT" (Paho URI form).
  std::string uri() const;
  // "ssl://127.0.0.1:TLS_PORT"; empty without tls.
  std::string tls_uri() const;
  const std::string& dir() const noexcept { return dir_; }
  const std::vector<std::string>& agents() const noexcept { return agents_; }
  // The password of `user` (ota-client, ota-observer or an agent id); empty if unknown.
  std::string password(const std::string& user) const;
  // DIR/credentials/<user>.pass: one line, the password.
  std::string credentials_file(const std::string& user) const;
  // DIR/pki (ca.crt, broker.crt, clients/<cn>.crt|.key); empty without tls.
  std::string pki_dir() const;
  std::string config_path() const { return dir_ + "/mosquitto.conf"; }
  std::string log_path() const { return dir_ + "/mosquitto.log"; }
  // The broker process while it runs (nullptr after stop()).
  ChildProcess* process() noexcept { return process_ ? &*process_ : nullptr; }
  bool running();

  // Adds an agent to the running broker: re-renders (existing passwords are kept), issues its
  // certificate with tls, and makes mosquitto reload its password file and ACL (SIGHUP).
  Status add_agent(const std::string& ecu_id);

  // SIGTERM, wait up to `grace` (mosquitto saves its database), SIGKILL after that. Idempotent.
  // Returns how mosquitto ended (nullopt if it was not running).
  std::optional<ExitInfo> stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  // SIGKILL, no database save: a crash.
  std::optional<ExitInfo> kill();
  // Starts mosquitto again on the same ports and directory (after stop() or kill()), e.g. to
  // test persistence; waits until it answers.
  Status restart();

 private:
  Broker() = default;
  Status render();
  Status launch_and_wait();

  BrokerOptions options_;
  std::optional<TempDir> temp_;
  std::string dir_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  int tls_port_ = 0;
  std::vector<std::string> agents_;
  std::string mosquitto_;
  std::optional<ChildProcess> process_;
};

// Asks the kernel for a free TCP port on 127.0.0.1 (bind to port 0, read it, close). Another
// process may take it before it is used; Broker::start retries in that case.
Result<int> pick_free_port();

// One raw MQTT 3.1.1 CONNECT to host:port: returns the CONNACK return code (0 accepted, 4 bad
// user name or password, 5 not authorized), or an error if no CONNACK arrived within
// `timeout` (connection refused, closed, ...). Empty user: no user name (anonymous).
Result<int> mqtt_connect_probe(const std::string& host, int port, const std::string& user,
                               const std::string& password,
                               std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace ota::sim
