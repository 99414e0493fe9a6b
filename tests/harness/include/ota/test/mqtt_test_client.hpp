// MqttTestClient: a real Paho MQTT client for tests that records every message it receives and
// lets the test wait for one with a deadline (condition variable, no sleeps).
//
//   MqttTestClient observer(fixture.client_options("ota-observer"));
//   REQUIRE(observer.connect().is_ok());
//   REQUIRE(observer.subscribe("ota/v1/#").is_ok());
//   auto msg = observer.wait_for_topic("ota/v1/ecu/ecu-a/up/state", 5s);
//
// Proving that a message was NOT delivered: the publisher sends the forbidden message, then a
// sentinel on a topic it may use; once the sentinel has arrived, the forbidden message would
// have arrived before it (MQTT keeps the order of one publisher's messages to one subscriber).
#pragma once

#include <mqtt/async_client.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "ota/core/status.hpp"

namespace ota::test {

struct ReceivedMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retained = false;
};

struct MqttClientOptions {
  std::string uri = {};   // tcp://127.0.0.1:PORT or ssl://127.0.0.1:PORT
  std::string user = {};  // empty: anonymous (no user name)
  std::string password = {};
  std::string client_id = {};  // empty: "test-<user>-<pid>-<n>"
  int mqtt_version = 5;        // 5 or 4 (3.1.1)
  // TLS (ssl:// URIs): CA to check the broker with; client certificate and key (optional).
  std::string ca_file = {};
  std::string cert_file = {};
  std::string key_file = {};
  std::chrono::milliseconds timeout{5000};  // for connect, subscribe and publish
};

class MqttTestClient {
 public:
  explicit MqttTestClient(MqttClientOptions options) : options_(std::move(options)) {
    static std::atomic<int> counter{0};
    if (options_.client_id.empty()) {
      options_.client_id = "test-" + (options_.user.empty() ? std::string("anon") : options_.user) + "-" +
                           std::to_string(::getpid()) + "-" + std::to_string(counter++);
    }
    client_ = std::make_unique<mqtt::async_client>(options_.uri, options_.client_id,
                                                   mqtt::create_options(options_.mqtt_version));
    client_->set_message_callback([this](mqtt::const_message_ptr msg) {
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(
          ReceivedMessage{msg->get_topic(), msg->to_string(), msg->get_qos(), msg->is_retained()});
      cv_.notify_all();
    });
    client_->set_connection_lost_handler([this](const std::string&) {
      std::lock_guard<std::mutex> lock(mu_);
      connection_lost_ = true;
      cv_.notify_all();
    });
  }

  MqttTestClient(const MqttTestClient&) = delete;
  MqttTestClient& operator=(const MqttTestClient&) = delete;

  ~MqttTestClient() {
    {
      std::lock_guard<std::mutex> lock(registry_mutex());
      auto& reg = registry();
      reg.erase(std::remove(reg.begin(), reg.end(), this), reg.end());
    }
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::milliseconds(2000));
    } catch (...) {
    }
  }

  // OK once the broker accepted the CONNECT; otherwise the error names the reason (refused:
  // not authorized, bad user name or password, TLS handshake failure, ...).
  Status connect() {
    mqtt::connect_options_builder b;
    b.mqtt_version(options_.mqtt_version).connect_timeout(options_.timeout);
    if (options_.mqtt_version >= 5) {
      b.clean_start(true);
    } else {
      b.clean_session(true);
    }
    if (!options_.user.empty()) b.user_name(options_.user);
    if (!options_.password.empty()) b.password(options_.password);
    if (!options_.ca_file.empty() || !options_.cert_file.empty()) {
      mqtt::ssl_options_builder ssl;
      ssl.enable_server_cert_auth(true).verify(true);
      if (!options_.ca_file.empty()) ssl.trust_store(options_.ca_file);
      if (!options_.cert_file.empty()) ssl.key_store(options_.cert_file);
      if (!options_.key_file.empty()) ssl.private_key(options_.key_file);
      ssl.error_handler([this](const std::string& msg) {
        std::lock_guard<std::mutex> lock(mu_);
        tls_errors_ += msg + "; ";
      });
      b.ssl(ssl.finalize());
    }
    try {
      auto tok = client_->connect(b.finalize());
      const auto deadline =
          std::chrono::steady_clock::now() + options_.timeout + std::chrono::milliseconds(1000);
      // Paho C (1.3.11) serves every client of a process from one receive thread that polls the
      // sockets it knew when the poll began, for up to a second: a second client's CONNECT waits
      // ~2 s for that poll to time out. Any packet arriving on another connection ends the poll
      // early, so while waiting, another connected test client publishes a QoS 1 message on a
      // topic no ACL allows (the broker drops it and answers with a PUBACK).
      while (!tok->wait_for(std::chrono::milliseconds(10))) {
        if (std::chrono::steady_clock::now() >= deadline) {
          return make_error(Code::kTimeout,
                            "connect " + options_.uri + " as " + user_label() + ": no answer");
        }
        wake_paho();
      }
      std::lock_guard<std::mutex> lock(registry_mutex());
      registry().push_back(this);
      return Status::ok();
    } catch (const mqtt::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      return make_error(Code::kRejected, "connect " + options_.uri + " as " + user_label() + ": " + e.what() +
                                             " (rc " + std::to_string(e.get_return_code()) + ", reason " +
                                             std::to_string(e.get_reason_code()) + ")" +
                                             (tls_errors_.empty() ? "" : " TLS: " + tls_errors_));
    }
  }

  bool connected() const { return client_->is_connected(); }

  // Subscribes and waits for the SUBACK. An error if the broker refused it (failure reason code).
  Status subscribe(const std::string& filter, int qos = 1) {
    try {
      auto tok = client_->subscribe(filter, qos);
      if (!tok->wait_for(options_.timeout))
        return make_error(Code::kTimeout, "subscribe " + filter + ": no SUBACK");
      const mqtt::subscribe_response response = tok->get_subscribe_response();
      for (auto rc : response.get_reason_codes()) {
        if (rc >= 0x80) {
          return make_error(Code::kRejected,
                            "subscribe " + filter + ": refused (reason " + std::to_string(rc) + ")");
        }
      }
      return Status::ok();
    } catch (const mqtt::exception& e) {
      return make_error(Code::kRejected, "subscribe " + filter + ": " + e.what());
    }
  }

  // Publishes and, for QoS 1/2, waits until the broker acknowledged it. With MQTT 5 a PUBACK
  // carrying a failure reason (e.g. 0x87 not authorized) is an error. Once this returns, the
  // broker has already routed (or dropped) the message.
  Status publish(const std::string& topic, const std::string& payload, int qos = 1, bool retained = false) {
    try {
      auto tok = client_->publish(topic, payload.data(), payload.size(), qos, retained);
      if (!tok->wait_for(options_.timeout))
        return make_error(Code::kTimeout, "publish " + topic + ": no PUBACK");
      return Status::ok();
    } catch (const mqtt::exception& e) {
      return make_error(Code::kRejected, "publish " + topic + ": " + e.what() + " (reason " +
                                             std::to_string(e.get_reason_code()) + ")");
    }
  }

  // Waits until a received message satisfies pred (messages already received count too).
  std::optional<ReceivedMessage> wait_for(const std::function<bool(const ReceivedMessage&)>& pred,
                                          std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<ReceivedMessage> found;
    cv_.wait_for(lock, deadline, [&] {
      for (const auto& m : messages_) {
        if (pred(m)) {
          found = m;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::optional<ReceivedMessage> wait_for_topic(const std::string& topic,
                                                std::chrono::milliseconds deadline) {
    return wait_for([&](const ReceivedMessage& m) { return m.topic == topic; }, deadline);
  }

  std::optional<ReceivedMessage> wait_for_payload(const std::string& topic, const std::string& payload,
                                                  std::chrono::milliseconds deadline) {
    return wait_for([&](const ReceivedMessage& m) { return m.topic == topic && m.payload == payload; },
                    deadline);
  }

  std::vector<ReceivedMessage> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

  // Number of received messages whose topic starts with prefix.
  std::size_t count_with_prefix(const std::string& prefix) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& m : messages_) n += m.topic.compare(0, prefix.size(), prefix) == 0 ? 1 : 0;
    return n;
  }

  // Waits until the broker closed the connection (true) or the deadline passed (false).
  bool wait_connection_lost(std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return connection_lost_; });
  }

  bool connection_lost() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connection_lost_;
  }

  mqtt::async_client& paho() { return *client_; }
  const MqttClientOptions& options() const { return options_; }

 private:
  static std::mutex& registry_mutex() {
    static std::mutex mu;
    return mu;
  }
  // Connected test clients of this process (to wake Paho's receive thread, see connect()).
  static std::vector<MqttTestClient*>& registry() {
    static std::vector<MqttTestClient*> clients;
    return clients;
  }
  static void wake_paho() {
    std::lock_guard<std::mutex> lock(registry_mutex());
    for (auto* other : registry()) {
      try {
        if (other->client_->is_connected()) {
          other->client_->publish(kWakeTopic, "", 0, 1, false);
          return;
        }
      } catch (...) {
      }
    }
  }
  static constexpr const char* kWakeTopic = "ota-test/wake";

  std::string user_label() const { return options_.user.empty() ? std::string("anonymous") : options_.user; }

  MqttClientOptions options_;
  std::unique_ptr<mqtt::async_client> client_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ReceivedMessage> messages_;
  bool connection_lost_ = false;
  std::string tls_errors_;
};

}  // namespace ota::test
