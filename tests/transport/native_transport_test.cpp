// Fault tests of the native MQTT 3.1.1 client (core/src/native_transport.cpp): how it reacts to a
// broker that misbehaves in ways a real Mosquitto never does (a refused or unanswered CONNECT, a
// malformed or oversized packet, silence after the CONNACK, a connection closed before a PUBACK),
// and the wire-level promises the conformance tests (transport_test.cpp) cannot observe: DUP on
// a re-delivery, a callback's publish travelling before the PUBACK of its message.
//
// The broker is FakeBroker (ota/test/fake_broker.hpp): a thread that accepts TCP connections on a
// free 127.0.0.1 port, reads each CONNECT and answers it with a chosen CONNACK; the test then plays
// the broker's side of each connection itself, with blocking reads bounded by a deadline. Packets
// are built and parsed from the MQTT 3.1.1 text (ota/test/mqtt311_packets.hpp), not with
// core/src/mqtt_wire (the codec under test), so that a mistake there is not repeated on both ends.
//
// What the client logs is captured (LogCapture) to check that the reason it gives names what was
// wrong. Catch assertions run on the test thread only; the broker thread reports through state
// that the test reads after waiting for it.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ota/core/log.hpp"
#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"
#include "ota/test/fake_broker.hpp"
#include "ota/test/mqtt311_packets.hpp"
#include "ota/test/transport_inbox.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ota::Code;
using ota::Status;
using ota::Transport;
using ota::TransportMessage;
using ota::TransportOptions;
using ota::test::BrokerConnection;
using ota::test::FakeBroker;
using ota::test::left_until;
using std::chrono::milliseconds;
using namespace ota::test::mqtt311;

namespace {

// For what should happen at once: generous, so that a loaded machine does not fail a test.
constexpr auto kDeadline = 5s;
constexpr auto kConnectTimeout = 2s;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

long long ms_since(Clock::time_point t) {
  return static_cast<long long>(std::chrono::duration_cast<milliseconds>(Clock::now() - t).count());
}

// ---- The client's side -----------------------------------------------------------------------

// What the transport's callbacks reported, in order; waited for with a deadline.
using Events = ota::test::TransportInbox;

// Routes log records here for one scope (at least warnings and above are recorded); restores the
// default sink and the previous level after, whatever happened in between.
class LogCapture {
 public:
  LogCapture() : level_(ota::log_level()) {
    if (level_ > ota::LogLevel::kInfo) ota::set_log_level(ota::LogLevel::kInfo);
    ota::set_log_sink([this](ota::LogLevel, const std::string& component, const std::string& message) {
      std::lock_guard<std::mutex> lock(mu_);
      records_.push_back(component + ": " + message);
      cv_.notify_all();
    });
  }
  ~LogCapture() {
    ota::set_log_sink(nullptr);
    ota::set_log_level(level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // The first record `pred` accepts; nullopt at the deadline.
  std::optional<std::string> wait_for(const std::function<bool(const std::string&)>& pred,
                                      milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<std::string> found;
    cv_.wait_for(lock, deadline, [&] {
      for (const auto& r : records_) {
        if (pred(r)) {
          found = r;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  // Every record so far, one a line: for failure messages.
  std::string all() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& r : records_) out += "  " + r + "\n";
    return out;
  }

 private:
  const ota::LogLevel level_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> records_;
};

std::string unique_client_id() {
  static std::atomic<int> counter{0};
  return "fault-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// A native transport, the fake broker it talks to, and what it reported. Members are destroyed
// in reverse order: the transport before the events its callbacks write to and the log capture.
struct Rig {
  LogCapture log;
  Events events;
  FakeBroker broker;
  std::unique_ptr<Transport> transport;

  explicit Rig(std::optional<uint8_t> connack_code = uint8_t{0}) : broker(connack_code) {}
  // The broker goes first: a transport being destroyed then finds nobody to wait for (a held
  // CONNACK, a PUBACK) and is refused at once if it tries to reconnect.
  ~Rig() {
    broker.shutdown();
    transport.reset();
  }

  TransportOptions options() const {
    TransportOptions o;
    o.uri = broker.uri();
    o.client = ota::MqttClient::kNative;
    o.client_id = unique_client_id();
    o.keepalive = 10s;  // no PINGREQ in the few seconds of a test, unless it sets its own
    o.reconnect_min = 50ms;
    o.reconnect_max = 200ms;
    return o;
  }

  // A native transport whose callbacks record into `events`; `on_message` (when set) sees each
  // message first, on the transport's thread.
  void open(TransportOptions o, std::function<void(const TransportMessage&)> on_message = {}) {
    transport = ota::make_native_transport(std::move(o));
    REQUIRE(transport);
    transport->on_message([this, on_message](TransportMessage&& m) {
      if (on_message) on_message(m);
      events.add(std::move(m));
    });
    transport->on_connection([this](bool up) { events.add_connection(up); });
  }

  // Connects (CONNACK 0) and returns the broker's end of the connection.
  std::shared_ptr<BrokerConnection> connect() {
    const Status st = transport->connect(kConnectTimeout);
    INFO(st.to_string());
    REQUIRE(st.is_ok());
    auto conn = broker.next_connection(kDeadline);
    REQUIRE(conn);
    REQUIRE(conn->connect);
    REQUIRE(events.wait_connection(true, 0, kDeadline));
    return conn;
  }
};

}  // namespace

#define REQUIRE_OK(expr)       \
  do {                         \
    const Status st_ = (expr); \
    INFO(st_.to_string());     \
    REQUIRE(st_.is_ok());      \
  } while (0)

TEST_CASE("Native transport fault: a refused or unanswered CONNECT fails connect() with the reason",
          "[integration][transport][fault]") {
  struct Refusal {
    uint8_t code;
    Code expected;
    const char* reason;
  };
  for (const Refusal& refusal : {Refusal{5, Code::kRejected, "not authorized"},
                                 Refusal{3, Code::kUnavailable, "server unavailable"}}) {
    DYNAMIC_SECTION("CONNACK return code " << int(refusal.code)) {
      Rig rig(refusal.code);
      auto options = rig.options();
      rig.open(options);
      const Status st = rig.transport->connect(kConnectTimeout);
      INFO(st.to_string());
      CHECK(st.code() == refusal.expected);
      CHECK(contains(st.message(), refusal.reason));
      CHECK(contains(st.message(), options.uri));
      CHECK_FALSE(rig.transport->connected());
      // The broker did get the CONNECT, and the client closed its socket after the refusal.
      auto conn = rig.broker.next_connection(kDeadline);
      REQUIRE(conn);
      REQUIRE(conn->connect);
      CHECK(conn->connect->client_id == options.client_id);
      CHECK(conn->wait_closed(Clock::now() + kDeadline, nullptr));
      CHECK(rig.events.connections().empty());
    }
  }

  SECTION("a broker that accepts the TCP connection and never answers: kTimeout") {
    Rig rig(std::nullopt);
    rig.open(rig.options());
    constexpr auto kTimeout = 1s;
    const auto start = Clock::now();
    const Status st = rig.transport->connect(kTimeout);
    const auto waited = Clock::now() - start;
    INFO(st.to_string() << ", after " << ms_since(start) << " ms");
    CHECK(st.code() == Code::kTimeout);
    CHECK(waited >= kTimeout - 50ms);  // it did wait for the CONNACK
    CHECK(waited < kTimeout + 500ms);
    CHECK_FALSE(rig.transport->connected());
    auto conn = rig.broker.next_connection(kDeadline);
    REQUIRE(conn);
    CHECK(conn->connect);
    CHECK(conn->wait_closed(Clock::now() + kDeadline, nullptr));
  }
}

TEST_CASE(
    "Native transport fault: a malformed packet drops the connection, named in the log, then a reconnect",
    "[integration][transport][fault]") {
  struct Bad {
    const char* name;
    std::string bytes;
    const char* log_says;
    std::function<bool(const std::string&)> names_fault;
  };
  const Bad kBad[] = {
      // Only the fixed header and the topic: a client that waited for 20 MiB would hang here.
      {"PUBLISH announcing 20 MiB",
       std::string(1, '\x30') + remaining_length(20u << 20) + mqtt_string("ota/big"),
       "the size (20971520 bytes) and the limit (16777216 bytes)",
       [](const std::string& r) {
         return (contains(r, "20971520") || contains(r, "20 MiB")) &&
                (contains(r, "16777216") || contains(r, "16 MiB"));
       }},
      {"packet of reserved type 0", std::string(2, '\0'), "reserved packet type",
       [](const std::string& r) { return contains(r, "reserved packet type"); }},
      {"PUBLISH with a wildcard in its topic", publish_packet("ota/v1/ecu/+/down/command", "x", 1, 9),
       "wildcard", [](const std::string& r) { return contains(r, "wildcard"); }},
  };
  for (const Bad& bad : kBad) {
    DYNAMIC_SECTION(bad.name) {
      Rig rig;
      auto options = rig.options();
      rig.open(options);
      auto first = rig.connect();
      REQUIRE(first->send(bad.bytes));

      // Dropped: the client closes the connection, acknowledging nothing.
      std::vector<WirePacket> sent;
      CHECK(first->wait_closed(Clock::now() + kDeadline, &sent));
      for (const auto& p : sent) {
        INFO(describe(p));
        CHECK(p.type() != kPuback);
      }
      const auto lost = rig.events.wait_connection(false, 1, kDeadline);
      REQUIRE(lost);
      {
        INFO("log records:\n" << rig.log.all());
        INFO("expected a record naming " << bad.log_says);
        CHECK(rig.log.wait_for(bad.names_fault, kDeadline));
      }

      // On its own: a new connection with a CONNECT, then on_connection(true).
      auto second = rig.broker.next_connection(kDeadline);
      REQUIRE(second);
      REQUIRE(second->connect);
      CHECK(second->connect->client_id == options.client_id);
      REQUIRE(rig.events.wait_connection(true, *lost + 1, kDeadline));
      CHECK(rig.events.connections() == std::vector<bool>{true, false, true});

      // The bad packet was never delivered: a good message sent after it arrives alone.
      const std::string sentinel = "ota/v1/ecu/ecu-a/down/after";
      REQUIRE(second->send(publish_packet(sentinel, "after", 0, 0)));
      REQUIRE(rig.events.wait_for_topic(sentinel, kDeadline));
      CHECK(rig.events.topics() == std::vector<std::string>{sentinel});
    }
  }
}

TEST_CASE(
    "Native transport fault: keepalive PINGREQs, and a broker that stops answering them is declared lost",
    "[integration][transport][fault]") {
  Rig rig;
  auto options = rig.options();
  options.keepalive = 1s;
  rig.open(options);
  auto first = rig.connect();
  CHECK(first->connect->keepalive_s == 1);

  // Answered for longer than twice the keepalive: each PINGREQ comes within 1.5 s of the CONNACK
  // or of the previous PINGRESP, and the answers keep the connection up.
  const auto answering_until = first->connack_sent + 2500ms;
  auto last_answer = first->connack_sent;
  int answered = 0;
  while (Clock::now() < answering_until) {
    auto p = first->read_packet(last_answer + 1500ms);
    INFO("PINGREQ " << answered + 1 << ", " << ms_since(last_answer) << " ms after the last answer");
    INFO(p.status().to_string());
    REQUIRE(p.is_ok());
    INFO(describe(*p));
    REQUIRE(p->type() == kPingreq);
    CHECK(p->body.empty());
    REQUIRE(first->send(pingresp_packet()));
    last_answer = Clock::now();
    ++answered;
  }
  CHECK(answered >= 2);
  CHECK(rig.events.connections() == std::vector<bool>{true});
  CHECK(rig.transport->connected());

  // Silent from now on: PINGREQs are read and not answered.
  const auto silent_from = last_answer;
  std::vector<WirePacket> unanswered;
  const bool closed = first->wait_closed(silent_from + 3s, &unanswered);
  const auto lost = rig.events.wait_connection(false, 1, left_until(silent_from + 3s));
  INFO("silent for " << ms_since(silent_from) << " ms; log records:\n" << rig.log.all());
  CHECK(closed);
  REQUIRE(lost);
  CHECK_FALSE(unanswered.empty());
  for (const auto& p : unanswered) {
    INFO(describe(p));
    CHECK(p.type() == kPingreq);
  }
  CHECK(rig.log.wait_for([](const std::string& r) { return contains(r, "no packet from the broker"); },
                         kDeadline));

  auto second = rig.broker.next_connection(kDeadline);
  REQUIRE(second);
  REQUIRE(second->connect);
  CHECK(second->connect->client_id == options.client_id);
  REQUIRE(rig.events.wait_connection(true, *lost + 1, kDeadline));
  CHECK(rig.transport->connected());
}

TEST_CASE("Native transport fault: unacknowledged QoS 1 goes again with DUP, offline QoS 0 follows",
          "[integration][transport][fault]") {
  Rig rig;
  rig.open(rig.options());
  auto first = rig.connect();

  const std::string topic = "ota/v1/ecu/ecu-a/up/chunk";
  const std::string payload = std::string("chunk 7 \0 with a NUL", 20);
  REQUIRE_OK(rig.transport->publish(topic, payload, 1, false));
  auto sent = first->next_packet(Clock::now() + kDeadline);
  INFO(sent.status().to_string());
  REQUIRE(sent.is_ok());
  INFO("first delivery: " << describe(*sent));
  const auto original = parse_publish(*sent);
  REQUIRE(original);
  CHECK(original->qos == 1);
  CHECK_FALSE(original->dup);
  CHECK(original->id != 0);
  CHECK(original->topic == topic);
  CHECK(original->payload == payload);
  CHECK(rig.transport->flush(100ms).code() == Code::kTimeout);  // not acknowledged yet

  // No PUBACK: the broker closes the connection and, for a moment, leaves the next CONNECT
  // unanswered, so that the client is offline when it publishes next.
  rig.broker.hold_connack(true);
  first->close();
  const auto lost = rig.events.wait_connection(false, 1, kDeadline);
  REQUIRE(lost);
  CHECK_FALSE(rig.transport->connected());
  const std::string offline_topic = "ota/v1/ecu/ecu-a/up/status";
  REQUIRE_OK(rig.transport->publish(offline_topic, "published offline", 0, false));
  rig.broker.hold_connack(false);

  auto second = rig.broker.next_connection(kDeadline);
  REQUIRE(second);
  REQUIRE(second->connect);
  auto again = second->next_packet(Clock::now() + kDeadline);
  INFO(again.status().to_string());
  REQUIRE(again.is_ok());
  INFO("after the reconnect: " << describe(*again));
  const auto redelivered = parse_publish(*again);
  REQUIRE(redelivered);
  CHECK(redelivered->dup);
  CHECK(redelivered->qos == 1);
  CHECK(redelivered->id == original->id);
  CHECK(redelivered->topic == topic);
  CHECK(redelivered->payload == payload);
  CHECK(redelivered->retain == original->retain);

  auto next = second->next_packet(Clock::now() + kDeadline);
  INFO(next.status().to_string());
  REQUIRE(next.is_ok());
  INFO("then: " << describe(*next));
  const auto offline = parse_publish(*next);
  REQUIRE(offline);
  CHECK(offline->qos == 0);
  CHECK_FALSE(offline->dup);
  CHECK(offline->topic == offline_topic);
  CHECK(offline->payload == "published offline");

  CHECK(rig.transport->flush(100ms).code() == Code::kTimeout);  // the re-delivery is not acknowledged yet
  REQUIRE(second->send(puback_packet(original->id)));
  REQUIRE_OK(rig.transport->flush(kDeadline));
  CHECK(rig.events.wait_connection(true, *lost + 1, kDeadline));
}

TEST_CASE("Native transport fault: what a message callback publishes goes before the PUBACK of its message",
          "[integration][transport][fault]") {
  for (const int reply_qos : {0, 1}) {
    DYNAMIC_SECTION("reply at QoS " << reply_qos) {
      const std::string command = "ota/v1/ecu/ecu-a/down/command";
      const std::string reply = "ota/v1/ecu/ecu-a/up/reply";
      // Outlive the transport; `client` is set before the transport's thread starts.
      Status reply_status(Code::kInternal, "the callback did not run");
      Transport* client = nullptr;
      Rig rig;
      rig.open(rig.options(), [&](const TransportMessage& m) {
        if (m.topic == command) {
          reply_status = client->publish(reply, "reply to " + m.payload, reply_qos, false);
        }
      });
      client = rig.transport.get();
      auto conn = rig.connect();

      constexpr uint16_t kCommandId = 77;
      REQUIRE(conn->send(publish_packet(command, "42", 1, kCommandId)));
      auto first = conn->next_packet(Clock::now() + kDeadline);
      INFO(first.status().to_string());
      REQUIRE(first.is_ok());
      INFO("first: " << describe(*first));
      auto second = conn->next_packet(Clock::now() + kDeadline);
      INFO(second.status().to_string());
      REQUIRE(second.is_ok());
      INFO("second: " << describe(*second));

      REQUIRE(rig.events.wait_for_topic(command, kDeadline));  // reply_status is set by now
      INFO(reply_status.to_string());
      CHECK(reply_status.is_ok());
      // The reply first...
      const auto published = parse_publish(*first);
      REQUIRE(published);
      CHECK(published->topic == reply);
      CHECK(published->payload == "reply to 42");
      CHECK(published->qos == reply_qos);
      CHECK_FALSE(published->dup);
      // ...then the PUBACK of the command.
      CHECK(second->type() == kPuback);
      CHECK(second->body == u16(kCommandId));

      if (reply_qos == 1) {
        CHECK(rig.transport->flush(100ms).code() == Code::kTimeout);
        REQUIRE(conn->send(puback_packet(published->id)));
        REQUIRE_OK(rig.transport->flush(kDeadline));
      }
      CHECK(rig.events.connections() == std::vector<bool>{true});
    }
  }
}

TEST_CASE("Native transport fault: a topic with a wildcard, NUL or nothing is refused and nothing is sent",
          "[integration][transport][fault]") {
  Rig rig;
  rig.open(rig.options());
  auto conn = rig.connect();

  const std::string bad_topics[] = {"ota/v1/ecu/+/up/status", "ota/v1/ecu/ecu-a/up/#",
                                    std::string("ota/v1/ecu/ecu-a") + '\0' + "/up/status", ""};
  for (const std::string& topic : bad_topics) {
    for (const int qos : {0, 1}) {
      INFO("topic '" << topic << "' (" << topic.size() << " bytes), QoS " << qos);
      const Status st = rig.transport->publish(topic, "x", qos, false);
      INFO(st.to_string());
      CHECK(st.code() == Code::kInvalidArgument);
      const Status owned = rig.transport->publish_owned(topic, "scratch" + std::string("x"), 7, qos, false);
      INFO(owned.to_string());
      CHECK(owned.code() == Code::kInvalidArgument);
    }
  }
  // Nothing refused waits for an acknowledgement.
  REQUIRE_OK(rig.transport->flush(1s));

  // The connection is intact and nothing went before the next valid message.
  const std::string good = "ota/v1/ecu/ecu-a/up/status";
  REQUIRE_OK(rig.transport->publish(good, "after", 0, false));
  auto next = conn->next_packet(Clock::now() + kDeadline);
  INFO(next.status().to_string());
  REQUIRE(next.is_ok());
  INFO(describe(*next));
  const auto published = parse_publish(*next);
  REQUIRE(published);
  CHECK(published->topic == good);
  CHECK(published->payload == "after");
  CHECK(rig.transport->connected());
  CHECK(rig.events.connections() == std::vector<bool>{true});
}

// A client that keeps publishing QoS 0 (nothing to acknowledge) to a broker with nothing to send
// must still ping, or it hears nothing and drops a healthy connection after twice the keepalive.
// The broker here answers every PINGREQ, as Mosquitto does; the QoS 0 messages are paced by waiting
// for the loss itself.
TEST_CASE("Native transport fault: a client that keeps publishing QoS 0 to a quiet broker stays connected",
          "[integration][transport][fault]") {
  Rig rig;
  auto options = rig.options();
  options.keepalive = 1s;
  rig.open(options);
  auto conn = rig.connect();
  const auto start = Clock::now();
  int published = 0;
  int pings = 0;
  std::optional<std::size_t> lost;
  // Longer than twice the keepalive plus the keeper's period.
  while (!lost && Clock::now() < start + 3s) {
    REQUIRE_OK(rig.transport->publish("ota/v1/ecu/ecu-a/up/telemetry", std::to_string(published), 0, false));
    ++published;
    for (;;) {
      auto p = conn->read_packet(Clock::now() + kDeadline);
      if (!p.is_ok() || p->type() != kPingreq) break;
      ++pings;
      REQUIRE(conn->send(pingresp_packet()));
    }
    lost = rig.events.wait_connection(false, 1, 200ms);
  }
  INFO(published << " messages and " << pings << " PINGREQs in " << ms_since(start) << " ms; log records:\n"
                 << rig.log.all());
  CHECK_FALSE(lost);
}

// disconnect(timeout) while the reader is reconnecting and the broker holds back its CONNACK
// returns within the timeout (the handshake's wait gives up when the transport stops).
TEST_CASE("Native transport fault: disconnect() during a reconnect whose CONNACK never comes returns in time",
          "[integration][transport][fault]") {
  Rig rig;
  auto options = rig.options();
  options.keepalive = 1s;  // the shortest wait this bug allows: 5 s
  rig.open(options);
  auto first = rig.connect();
  rig.broker.hold_connack(true);
  first->close();
  REQUIRE(rig.events.wait_connection(false, 1, kDeadline));
  REQUIRE(rig.broker.wait_connects(2, kDeadline));  // the client is waiting for its CONNACK
  const auto start = Clock::now();
  rig.transport->disconnect(500ms);
  INFO("disconnect(500 ms) took " << ms_since(start) << " ms");
  CHECK(Clock::now() - start < 1500ms);
  CHECK(rig.events.connections() == std::vector<bool>{true, false});
}
