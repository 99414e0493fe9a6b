// Catch2 fixtures that start a private Mosquitto (rendered from broker-config/) on a free port
// in a temporary directory, wait until it answers, and stop it when the test ends.
//
//   TEST_CASE_METHOD(ota::test::BrokerFixture, "agents report", "[integration]") {
//     auto ecu = connect("ecu-a");                      // REQUIREs a successful CONNECT
//     auto observer = connect("ota-observer");
//     REQUIRE(observer->subscribe("ota/v1/#").is_ok());
//     REQUIRE(ecu->publish("ota/v1/ecu/ecu-a/up/state", "x").is_ok());
//     REQUIRE(observer->wait_for_topic("ota/v1/ecu/ecu-a/up/state", 5s));
//   }
#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "ota/sim/broker.hpp"
#include "ota/test/mqtt_test_client.hpp"

namespace ota::test {

inline std::vector<std::string> default_agent_ids() { return {"ecu-a", "ecu-b", "ecu-c"}; }

struct BrokerFixture {
  explicit BrokerFixture(std::vector<std::string> agents = default_agent_ids()) {
    ota::sim::BrokerOptions options;
    options.agents = std::move(agents);
    start(std::move(options));
  }
  explicit BrokerFixture(ota::sim::BrokerOptions options) { start(std::move(options)); }

  ota::sim::Broker& broker() { return *broker_; }

  // Options for a password client of the plain listener (user: ota-client, ota-observer or an
  // agent id).
  MqttClientOptions client_options(const std::string& user, int mqtt_version = 5) const {
    MqttClientOptions o;
    o.uri = broker_->uri();
    o.user = user;
    o.password = broker_->password(user);
    o.mqtt_version = mqtt_version;
    return o;
  }

  // Options for a certificate client of the TLS listener: PKI clients/<cn>.crt|key.
  MqttClientOptions tls_client_options(const std::string& cn, int mqtt_version = 5) const {
    MqttClientOptions o;
    o.uri = broker_->tls_uri();
    o.ca_file = broker_->pki_dir() + "/ca.crt";
    o.cert_file = broker_->pki_dir() + "/clients/" + cn + ".crt";
    o.key_file = broker_->pki_dir() + "/clients/" + cn + ".key";
    o.mqtt_version = mqtt_version;
    return o;
  }

  // A connected client; REQUIREs that the broker accepted it.
  std::unique_ptr<MqttTestClient> connect(const std::string& user, int mqtt_version = 5) {
    return connect_with(client_options(user, mqtt_version));
  }
  std::unique_ptr<MqttTestClient> connect_with(MqttClientOptions options) {
    auto client = std::make_unique<MqttTestClient>(std::move(options));
    auto st = client->connect();
    INFO(st.to_string());
    REQUIRE(st.is_ok());
    return client;
  }

 private:
  void start(ota::sim::BrokerOptions options) {
    auto started = ota::sim::Broker::start(std::move(options));
    INFO("broker start: " << started.status().to_string());
    REQUIRE(started.is_ok());
    broker_ = std::move(started.value());
  }

  std::unique_ptr<ota::sim::Broker> broker_;
};

// The same with a development PKI and a TLS listener (client certificates, CN = user).
struct TlsBrokerFixture : BrokerFixture {
  TlsBrokerFixture() : BrokerFixture(tls_options()) {}

  static ota::sim::BrokerOptions tls_options() {
    ota::sim::BrokerOptions options;
    options.agents = default_agent_ids();
    options.tls = true;
    return options;
  }
};

}  // namespace ota::test
