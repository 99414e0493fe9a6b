// Transports of either engine (native MQTT 3.1.1 or Paho) for tests, each with an inbox its
// callbacks record into (TransportInbox), and the PahoWaker that saves the Paho receive thread's
// poll time while a Paho transport connects.
//
//   ota::test::PahoWaker waker(observer_options);
//   auto peer = ota::test::connect_peer(waker, ota::MqttClient::kNative, options);  // REQUIREs it
//   REQUIRE(peer->subscribe("ota/v1/#", 1).is_ok());
//   auto m = peer->inbox.wait_for_topic("ota/v1/ecu/ecu-a/up/hello", 10s);
#pragma once

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "ota/core/transport.hpp"
#include "ota/test/transport_inbox.hpp"

namespace ota::test {

// How long a peer's CONNECT may take.
inline constexpr std::chrono::seconds kPeerConnectTimeout{5};

// A transport and what it received. The inbox outlives the transport (declared first), so a
// callback still running while the transport shuts down has somewhere to write.
struct Peer {
  TransportInbox inbox;
  std::unique_ptr<Transport> transport;

  Status subscribe(const std::string& filter, int qos) { return transport->subscribe(filter, qos); }
  Status publish(const std::string& topic, const std::string& payload, int qos, bool retain) {
    return transport->publish(topic, payload, qos, retain);
  }
  Status flush(std::chrono::milliseconds timeout) { return transport->flush(timeout); }
  bool connected() const { return transport->connected(); }
};

inline std::unique_ptr<Transport> make_engine_transport(MqttClient engine, TransportOptions options) {
  options.client = engine;
  return engine == MqttClient::kNative ? make_native_transport(std::move(options))
                                       : make_paho_transport(std::move(options));
}

// Paho C serves every client of a process from one receive thread that polls the sockets it knew
// when the poll began, for up to a second: a Paho CONNECT made while another Paho client of the
// process is connected waits ~1-2 s for that poll to end (see mqtt_test_client.hpp). Any packet
// arriving on a known connection ends the poll early, so while a Paho transport connects, the
// waker (a Paho connection of its own) publishes QoS 1 messages on a topic no ACL allows: the
// broker drops them and answers with a PUBACK. Only time is saved; the transports under test are
// used as they are.
class PahoWaker {
 public:
  explicit PahoWaker(TransportOptions options) : options_(std::move(options)) {}

  Status connect(MqttClient engine, Transport& transport) {
    using namespace std::chrono_literals;
    if (engine != MqttClient::kPaho) return transport.connect(kPeerConnectTimeout);
    if (!waker_) {
      waker_ = make_paho_transport(options_);
      const Status st = waker_->connect(kPeerConnectTimeout);
      if (!st) return st.with_context("Paho waker");
    }
    auto pending =
        std::async(std::launch::async, [&transport] { return transport.connect(kPeerConnectTimeout); });
    while (pending.wait_for(10ms) != std::future_status::ready) {
      if (waker_->connected()) (void)waker_->publish("ota-test/wake", "", 1, false);
    }
    return pending.get();
  }

 private:
  TransportOptions options_;
  std::unique_ptr<Transport> waker_;
};

// A transport of `engine` whose callbacks record into its inbox; not connected yet.
inline std::unique_ptr<Peer> open_peer(MqttClient engine, TransportOptions options) {
  auto peer = std::make_unique<Peer>();
  peer->transport = make_engine_transport(engine, std::move(options));
  REQUIRE(peer->transport);
  TransportInbox* inbox = &peer->inbox;
  peer->transport->on_message([inbox](TransportMessage&& m) { inbox->add(std::move(m)); });
  peer->transport->on_connection([inbox](bool up) { inbox->add_connection(up); });
  return peer;
}

// The same, connected; REQUIREs that the broker accepted it.
inline std::unique_ptr<Peer> connect_peer(PahoWaker& waker, MqttClient engine, TransportOptions options) {
  auto peer = open_peer(engine, std::move(options));
  const Status st = waker.connect(engine, *peer->transport);
  INFO(st.to_string());
  REQUIRE(st.is_ok());
  return peer;
}

// A client id no other test process uses.
inline std::string unique_client_id(const std::string& user) {
  static std::atomic<int> counter{0};
  return "transport-test-" + user + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// The whole content of a text file ("" when it cannot be read).
inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace ota::test
