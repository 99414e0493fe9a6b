// Conformance of the two Transport implementations (native MQTT 3.1.1 and Paho): every case runs
// once per engine (a DYNAMIC_SECTION named after it, each with a private Mosquitto of its own), and
// both ends of a conversation use the engine under test.
//
// Messages and connection changes are recorded by the transport's callbacks into an Inbox that
// the test waits on with a deadline (condition variable). "Not delivered" is proven with a
// sentinel sent after the event that would have produced the message (see mqtt_test_client.hpp).
//
// The broker runs with two production limits lifted (see TransportFixture): message_size_limit
// (1 MiB in production) so that a 2 MiB payload crosses the four-byte remaining-length boundary,
// and max_queued_messages (1000) so that a burst of QoS 1 messages towards a receiver that
// acknowledges more slowly than the sender publishes is not dropped by the broker.
//
// Mosquitto 2.0 with the project's file ACL grants every SUBSCRIBE (the ACL filters messages at
// delivery), so the refusal of a subscription is tested against a second Mosquitto whose users and
// ACL live in its dynamic security plugin, which answers SUBACK 0x80 (DynsecBroker).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ota/core/transport.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/sim/wait.hpp"
#include "ota/test/broker_fixture.hpp"
#include "ota/test/dynsec_broker.hpp"
#include "ota/test/frozen_broker.hpp"
#include "ota/test/transport_inbox.hpp"
#include "ota/test/transport_peer.hpp"

using namespace std::chrono_literals;
using ota::Code;
using ota::MqttClient;
using ota::Status;
using ota::Transport;
using ota::TransportMessage;
using ota::TransportOptions;
using ota::WillMessage;
using ota::test::BrokerFixture;
using ota::test::DynsecBroker;
using ota::test::FrozenBroker;
using ota::test::make_engine_transport;
using ota::test::open_peer;
using ota::test::PahoWaker;
using ota::test::Peer;
using ota::test::unique_client_id;
using Inbox = ota::test::TransportInbox;

namespace {

constexpr auto kDeadline = 10s;
const std::string kChild = OTA_TRANSPORT_CHILD;

struct Engine {
  MqttClient client;
  const char* name;
};
const Engine kEngines[] = {{MqttClient::kNative, "native"}, {MqttClient::kPaho, "paho"}};

std::string up(const std::string& ecu, const std::string& leaf) {
  return "ota/v1/ecu/" + ecu + "/up/" + leaf;
}
std::string down(const std::string& ecu, const std::string& leaf) {
  return "ota/v1/ecu/" + ecu + "/down/" + leaf;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Deterministic bytes of every value, NULs included (every 7th byte and the first).
std::string binary_payload(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1u;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = i % 7 == 0 ? '\0' : static_cast<char>(x >> 24);
  }
  return s;
}

// "same", or where two payloads first differ: a 2 MiB mismatch stays readable in the report.
std::string compare_bytes(const std::string& got, const std::string& want) {
  if (got == want) return "same";
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
         ", first difference at offset " + std::to_string(i);
}

// Payload sizes for a PUBLISH on `topic` at `qos`: the sizes named in the MQTT remaining-length
// table, and the sizes that put the remaining length itself on either side of each boundary
// (127/128, 16383/16384, 2097151/2097152: one, two, three and four length bytes).
std::vector<std::size_t> payload_sizes(const std::string& topic, int qos) {
  std::vector<std::size_t> sizes{0, 1, 127, 128, 16383, 16384, 2097152};
  const std::size_t header = 2 + topic.size() + (qos > 0 ? 2 : 0);  // topic name + packet id
  for (std::size_t boundary : {127u, 16383u, 2097151u}) {
    sizes.push_back(boundary - header);
    sizes.push_back(boundary + 1 - header);
  }
  return sizes;
}

// Replaces the value of `key` on its own line of a mosquitto.conf; false if the key is absent.
bool replace_setting(std::string& conf, const std::string& key, const std::string& value) {
  const std::string at = "\n" + key + " ";
  auto pos = conf.find(at);
  if (pos == std::string::npos) return false;
  pos += at.size();
  conf.replace(pos, conf.find('\n', pos) - pos, value);
  return true;
}

// A broker for the transport tests: the production configuration with the two limits named at
// the top of this file lifted, then restarted with them.
struct TransportFixture : BrokerFixture {
  TransportFixture() {
    std::string conf = ota::test::read_text_file(broker().config_path());
    REQUIRE(replace_setting(conf, "message_size_limit", "0"));  // 0: the protocol's 256 MiB
    REQUIRE(replace_setting(conf, "max_queued_messages", "100000"));
    std::ofstream(broker().config_path(), std::ios::trunc) << conf;
    auto st = broker().restart();
    INFO(st.to_string());
    REQUIRE(st.is_ok());
    waker_ = std::make_unique<PahoWaker>(options_for("ota-observer"));
  }

  TransportOptions options_for(const std::string& user) {
    TransportOptions o;
    o.uri = broker().uri();
    o.client_id = unique_client_id(user);
    o.username = user;
    o.password = broker().password(user);
    return o;
  }

  Status connect_transport(MqttClient engine, Transport& transport) {
    return waker_->connect(engine, transport);
  }
  std::unique_ptr<Peer> connect_peer(MqttClient engine, TransportOptions options) {
    return ota::test::connect_peer(*waker_, engine, std::move(options));
  }
  std::unique_ptr<Peer> connect_peer(MqttClient engine, const std::string& user) {
    return connect_peer(engine, options_for(user));
  }

 private:
  std::unique_ptr<PahoWaker> waker_;
};

// Sets (or unsets) an environment variable for one scope; restores the previous value after.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::string name) : name_(std::move(name)) {
    if (const char* v = std::getenv(name_.c_str())) saved_ = v;
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (saved_) {
      ::setenv(name_.c_str(), saved_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  void set(const std::string& value) { ::setenv(name_.c_str(), value.c_str(), 1); }
  void unset() { ::unsetenv(name_.c_str()); }

 private:
  std::string name_;
  std::optional<std::string> saved_;
};

// Joins every thread on scope exit, so that a failing REQUIRE never leaves one running.
struct JoinAll {
  std::vector<std::thread> threads;
  ~JoinAll() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

}  // namespace

#define REQUIRE_OK(expr)       \
  do {                         \
    const Status st_ = (expr); \
    INFO(st_.to_string());     \
    REQUIRE(st_.is_ok());      \
  } while (0)

TEST_CASE_METHOD(TransportFixture, "Transport connect: accepted, refused, unreachable, unanswered",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto peer = open_peer(engine.client, options_for("ecu-a"));
      CHECK_FALSE(peer->transport->connected());
      REQUIRE_OK(connect_transport(engine.client, *peer->transport));
      CHECK(peer->transport->connected());
      // on_connection(true) after every connect, the first one included.
      CHECK(peer->inbox.wait_connection(true, 0, kDeadline));

      // Another agent's password, then an unknown user: CONNACK "not authorized".
      for (const std::string user : {"ecu-a", "ecu-z"}) {
        INFO("user " << user);
        auto options = options_for("ecu-a");
        options.username = user;
        options.password = broker().password("ecu-b");
        auto refused = make_engine_transport(engine.client, options);
        const Status st = connect_transport(engine.client, *refused);
        INFO(st.to_string());
        CHECK(st.code() == Code::kRejected);
        CHECK(contains(st.message(), broker().uri()));
        // It says it was refused, or why.
        const std::string msg = lower(st.message());
        CHECK((contains(msg, "refused") || contains(msg, "not authori") ||
               contains(msg, "bad user name or password")));
        CHECK_FALSE(refused->connected());
      }

      // Nothing listening: unreachable, reported at once (not a time-out).
      auto port = ota::sim::pick_free_port();
      REQUIRE(port.is_ok());
      auto options = options_for("ecu-a");
      options.uri = "tcp://127.0.0.1:" + std::to_string(port.value());
      auto nobody = make_engine_transport(engine.client, options);
      const Status st = connect_transport(engine.client, *nobody);
      INFO(st.to_string());
      CHECK(st.code() == Code::kUnavailable);
      CHECK(contains(st.message(), options.uri));
      CHECK_FALSE(nobody->connected());

      // A broker that accepts the TCP connection but never answers: a time-out, not a hang.
      {
        auto silent = make_engine_transport(engine.client, options_for("ecu-b"));
        FrozenBroker frozen(broker());
        const auto start = std::chrono::steady_clock::now();
        const Status timed_out = silent->connect(1s);
        const auto waited = std::chrono::steady_clock::now() - start;
        INFO(timed_out.to_string());
        CHECK(timed_out.code() == Code::kTimeout);
        CHECK(waited < 3s);
        frozen.thaw();
        silent.reset();
      }

      // The refusals left the accepted connection alone.
      CHECK(peer->transport->connected());
    }
  }
}

TEST_CASE_METHOD(
    TransportFixture,
    "Transport round trip: payloads across the remaining-length boundaries, binary bytes, QoS 0 and 1",
    "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      auto agent = connect_peer(engine.client, "ecu-a");
      REQUIRE_OK(agent->subscribe(down("ecu-a", "#"), 1));
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));

      for (int qos : {0, 1}) {
        // Commands down to the agent, answers up to the client.
        for (const bool downwards : {true, false}) {
          // Leaves the broker's ACL grants each way (an agent may publish only its defined leaves).
          const std::string topic =
              downwards ? down("ecu-a", qos == 0 ? "data" : "cmd") : up("ecu-a", qos == 0 ? "ack" : "result");
          Peer& from = downwards ? *client : *agent;
          Peer& to = downwards ? *agent : *client;
          INFO("QoS " << qos << ", " << topic);
          std::vector<std::string> sent;
          unsigned seed = 0;
          for (std::size_t size : payload_sizes(topic, qos)) {
            sent.push_back(binary_payload(size, seed++));
            REQUIRE_OK(from.publish(topic, sent.back(), qos, false));
          }
          auto got = to.inbox.wait_for_count(topic, sent.size(), kDeadline);
          REQUIRE(got.size() == sent.size());
          for (std::size_t i = 0; i < sent.size(); ++i) {
            INFO("message " << i << " of " << sent[i].size() << " bytes");
            CHECK(compare_bytes(got[i].payload, sent[i]) == "same");
            CHECK_FALSE(got[i].retained);
          }
        }
      }
      // Nothing arrived twice or on a topic it was not sent to.
      CHECK(agent->inbox.count_with_prefix("ota/v1/") ==
            payload_sizes(down("ecu-a", "data"), 0).size() + payload_sizes(down("ecu-a", "cmd"), 1).size());
      CHECK(client->inbox.count_with_prefix("ota/v1/") ==
            payload_sizes(up("ecu-a", "ack"), 0).size() + payload_sizes(up("ecu-a", "result"), 1).size());

      // A topic name longer than one read of a socket (40000 bytes; the limit is 65535).
      for (int qos : {0, 1}) {
        INFO("long topic, QoS " << qos);
        // Downwards: the client may write any leaf under an agent's down/, an agent only its own leaves.
        const std::string topic = down("ecu-a", std::string(40000, qos == 0 ? 'l' : 'm'));
        const std::string payload = binary_payload(100000, 7);
        REQUIRE_OK(client->publish(topic, payload, qos, false));
        auto got = agent->inbox.wait_for_topic(topic, kDeadline);
        REQUIRE(got);
        CHECK(compare_bytes(got->payload, payload) == "same");
      }
    }
  }
}

TEST_CASE_METHOD(TransportFixture,
                 "Transport order: 1000 QoS 1 messages each way arrive complete and in order",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      auto agent = connect_peer(engine.client, "ecu-a");
      REQUIRE_OK(agent->subscribe(down("ecu-a", "#"), 1));
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      constexpr int kCount = 1000;
      for (int i = 0; i < kCount; ++i) {
        REQUIRE_OK(client->publish(down("ecu-a", "data"), std::to_string(i), 1, false));
        REQUIRE_OK(agent->publish(up("ecu-a", "ack"), std::to_string(i), 1, false));
      }
      for (Peer* to : {agent.get(), client.get()}) {
        const std::string topic = to == agent.get() ? down("ecu-a", "data") : up("ecu-a", "ack");
        INFO(topic);
        auto got = to->inbox.wait_for_count(topic, kCount, kDeadline);
        REQUIRE(got.size() == static_cast<std::size_t>(kCount));
        std::string out_of_order;
        for (int i = 0; i < kCount && out_of_order.empty(); ++i) {
          if (got[i].payload != std::to_string(i))
            out_of_order = "#" + std::to_string(i) + " is " + got[i].payload;
        }
        CHECK(out_of_order == "");
      }
    }
  }
}

TEST_CASE_METHOD(TransportFixture,
                 "Transport retained: a later subscriber gets retained=true, a live message retained=false",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto agent = connect_peer(engine.client, "ecu-a");
      REQUIRE_OK(agent->publish(up("ecu-a", "hello"), "retained at QoS 1", 1, true));
      REQUIRE_OK(agent->publish(up("ecu-a", "dtc"), "retained at QoS 0", 0, true));
      // Both are at the broker before anyone subscribes (the QoS 1 one acknowledged, the QoS 0
      // one before it on the same connection).
      REQUIRE_OK(agent->flush(kDeadline));

      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      for (const std::string leaf : {"hello", "dtc"}) {
        INFO(leaf);
        auto stored = client->inbox.wait_for_topic(up("ecu-a", leaf), kDeadline);
        REQUIRE(stored);
        CHECK(stored->payload == (leaf == "hello" ? "retained at QoS 1" : "retained at QoS 0"));
        CHECK(stored->retained);
      }

      REQUIRE_OK(agent->publish(up("ecu-a", "state"), "live", 1, false));
      auto live = client->inbox.wait_for_topic(up("ecu-a", "state"), kDeadline);
      REQUIRE(live);
      CHECK(live->payload == "live");
      CHECK_FALSE(live->retained);
      // A retained publish reaching an established subscription is a live message too (MQTT 3.1.1
      // 3.3.1.3: the broker clears the flag).
      REQUIRE_OK(agent->publish(up("ecu-a", "state"), "retained, live", 1, true));
      auto retained_live = client->inbox.wait_for_payload(up("ecu-a", "state"), "retained, live", kDeadline);
      REQUIRE(retained_live);
      CHECK_FALSE(retained_live->retained);
    }
  }
}

TEST_CASE_METHOD(TransportFixture,
                 "Transport subscribe: another agent's down/ subtree never reaches an agent",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto a = connect_peer(engine.client, "ecu-a");
      // The file ACL grants the SUBSCRIBE and drops the messages at delivery (mosquitto 2.0): OK,
      // or a refusal should the broker ever refuse it; never an error of another kind.
      const Status st = a->subscribe(down("ecu-b", "#"), 1);
      INFO(st.to_string());
      CHECK((st.is_ok() || st.code() == Code::kRejected));
      REQUIRE_OK(a->subscribe(down("ecu-a", "#"), 1));

      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->publish(down("ecu-b", "cmd"), "for b only", 1, false));
      REQUIRE_OK(client->publish(down("ecu-a", "cmd"), "sentinel", 1, false));
      REQUIRE(a->inbox.wait_for_payload(down("ecu-a", "cmd"), "sentinel", kDeadline));
      CHECK(a->inbox.count_with_prefix("ota/v1/ecu/ecu-b/") == 0);
    }
  }
}

TEST_CASE("Transport subscribe: a filter the broker refuses is kRejected, the connection goes on",
          "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      DynsecBroker refusing;
      auto a = refusing.connect_peer(engine.client, "ecu-a");
      const Status st = a->subscribe(down("ecu-b", "#"), 1);
      INFO(st.to_string());
      CHECK(st.code() == Code::kRejected);
      CHECK(contains(st.message(), down("ecu-b", "#")));
      REQUIRE(a->connected());

      // Its own subtree is granted on the same connection, and only that arrives.
      REQUIRE_OK(a->subscribe(down("ecu-a", "#"), 1));
      auto client = refusing.connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->publish(down("ecu-b", "cmd"), "for b only", 1, false));
      REQUIRE_OK(client->publish(down("ecu-a", "cmd"), "sentinel", 1, false));
      REQUIRE(a->inbox.wait_for_payload(down("ecu-a", "cmd"), "sentinel", kDeadline));
      CHECK(a->inbox.count_with_prefix("ota/v1/ecu/ecu-b/") == 0);
      CHECK(a->connected());
    }
  }
}

TEST_CASE_METHOD(TransportFixture,
                 "Transport flush: returns once the broker acknowledged every QoS 1 publish",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      auto agent = connect_peer(engine.client, "ecu-a");
      REQUIRE_OK(agent->flush(1s));  // nothing pending

      constexpr int kCount = 20;
      {
        // A stopped broker acknowledges nothing: flush has to wait, and gives up at its deadline.
        FrozenBroker frozen(broker());
        for (int i = 0; i < kCount; ++i)
          REQUIRE_OK(agent->publish(up("ecu-a", "ack"), std::to_string(i), 1, false));
        const auto start = std::chrono::steady_clock::now();
        const Status st = agent->flush(500ms);
        INFO(st.to_string());
        CHECK(st.code() == Code::kTimeout);
        CHECK(std::chrono::steady_clock::now() - start >= 450ms);
      }
      // Running again: the PUBACKs come and flush returns OK.
      REQUIRE_OK(agent->flush(kDeadline));
      CHECK(client->inbox.wait_for_count(up("ecu-a", "ack"), kCount, kDeadline).size() ==
            static_cast<std::size_t>(kCount));
    }
  }
}

TEST_CASE_METHOD(TransportFixture,
                 "Transport disconnect: an orderly disconnect does not publish the Last Will",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      auto options = options_for("ecu-a");
      options.will = WillMessage{up("ecu-a", "hello"), "offline (will)", 1, true};
      auto agent = connect_peer(engine.client, options);
      REQUIRE_OK(agent->publish(up("ecu-a", "hello"), "online", 1, true));
      REQUIRE_OK(agent->flush(kDeadline));
      REQUIRE(client->inbox.wait_for_payload(up("ecu-a", "hello"), "online", kDeadline));

      agent->transport->disconnect(kDeadline);
      CHECK_FALSE(agent->connected());
      // Sentinel: sent from a new connection once the disconnect has returned; a will would have
      // been published when the broker saw the first connection end, before this one existed.
      auto again = connect_peer(engine.client, "ecu-a");
      REQUIRE_OK(again->publish(up("ecu-a", "state"), "sentinel", 1, false));
      REQUIRE(client->inbox.wait_for_payload(up("ecu-a", "state"), "sentinel", kDeadline));
      CHECK(client->inbox.count_payload("offline (will)") == 0);

      // Nor was it retained: a later subscriber gets the agent's own hello.
      auto late = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(late->subscribe(up("ecu-a", "hello"), 1));
      auto hello = late->inbox.wait_for_topic(up("ecu-a", "hello"), kDeadline);
      REQUIRE(hello);
      CHECK(hello->payload == "online");
      CHECK(hello->retained);
    }
  }
}

TEST_CASE_METHOD(TransportFixture, "Transport Last Will: a killed process's will is published and retained",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      auto dir = ota::sim::TempDir::create("ota-transport-test-");
      REQUIRE(dir.is_ok());
      const std::string log = dir->file("transport_child.log");
      auto child = ota::sim::ChildProcess::spawn(
          {kChild, broker().uri(), "ecu-a", broker().credentials_file("ecu-a"), engine.name,
           up("ecu-a", "hello"), "offline (will)", "online"},
          ota::sim::SpawnOptions{log, {}, std::string("transport_child ") + engine.name, ""});
      INFO(child.status().to_string());
      REQUIRE(child.is_ok());
      {
        INFO("child log:\n" << ota::sim::tail_file(log));
        REQUIRE(ota::sim::wait_for_file_contains(log, "ready", kDeadline));
      }
      REQUIRE(client->inbox.wait_for_payload(up("ecu-a", "hello"), "online", kDeadline));
      CHECK(client->inbox.count_payload("offline (will)") == 0);

      const ota::sim::ExitInfo killed = child->kill();  // no DISCONNECT: the socket just closes
      CHECK(killed.term_signal == SIGKILL);
      REQUIRE(client->inbox.wait_for_payload(up("ecu-a", "hello"), "offline (will)", kDeadline));

      auto late = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(late->subscribe(up("ecu-a", "hello"), 1));
      auto hello = late->inbox.wait_for_topic(up("ecu-a", "hello"), kDeadline);
      REQUIRE(hello);
      CHECK(hello->payload == "offline (will)");
      CHECK(hello->retained);
    }
  }
}

TEST_CASE_METHOD(
    TransportFixture,
    "Transport broker restart: connection false then true, subscriptions restored, offline publish delivered",
    "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      REQUIRE_OK(client->subscribe("ota/v1/vehicle/#", 1));
      auto agent_options = options_for("ecu-a");
      agent_options.offline_buffer = 3;
      auto agent = connect_peer(engine.client, agent_options);
      REQUIRE_OK(agent->subscribe(down("ecu-a", "#"), 1));
      const std::size_t client_from = client->inbox.connections().size();
      const std::size_t agent_from = agent->inbox.connections().size();

      REQUIRE(broker().stop());
      auto client_lost = client->inbox.wait_connection(false, client_from, kDeadline);
      auto agent_lost = agent->inbox.wait_connection(false, agent_from, kDeadline);
      REQUIRE(client_lost);
      REQUIRE(agent_lost);
      CHECK_FALSE(agent->connected());

      // Published while disconnected: buffered up to offline_buffer messages, sent after the
      // reconnect. Retained, so that they reach the client whichever of the two reconnects first (as
      // live messages if the client's subscription is back by then, as retained ones otherwise).
      const std::vector<std::string> offline_leaves{"state", "dtc", "result"};
      for (const auto& leaf : offline_leaves) {
        REQUIRE_OK(agent->publish(up("ecu-a", leaf), "published while the broker was down", 1, true));
      }
      {
        const Status st = agent->publish(up("ecu-a", "ack"), "one more than offline_buffer", 1, true);
        INFO(st.to_string());
        CHECK_FALSE(st.is_ok());
      }

      REQUIRE_OK(broker().restart());
      REQUIRE(client->inbox.wait_connection(true, *client_lost + 1, kDeadline));
      REQUIRE(agent->inbox.wait_connection(true, *agent_lost + 1, kDeadline));
      CHECK(client->connected());
      CHECK(agent->connected());
      for (const auto& leaf : offline_leaves) {
        INFO(leaf);
        REQUIRE(client->inbox.wait_for_payload(up("ecu-a", leaf), "published while the broker was down",
                                               kDeadline));
      }

      // The client's subscription is back when on_connection(true) runs: its own publish on the
      // same connection, which the broker processes after the restored SUBSCRIBE, comes back.
      REQUIRE_OK(client->publish("ota/v1/vehicle/status", "after the restart", 1, false));
      REQUIRE(client->inbox.wait_for_payload("ota/v1/vehicle/status", "after the restart", kDeadline));

      // The agent's is back too: a command from the client reaches it. (Two connections: nothing
      // orders the client's PUBLISH after the agent's SUBSCRIBE at the broker, so the command is
      // repeated until one arrives.)
      std::optional<TransportMessage> command;
      const auto deadline = std::chrono::steady_clock::now() + kDeadline;
      while (!command && std::chrono::steady_clock::now() < deadline) {
        REQUIRE_OK(client->publish(down("ecu-a", "cmd"), "after the restart", 1, false));
        command = agent->inbox.wait_for_payload(down("ecu-a", "cmd"), "after the restart", 200ms);
      }
      CHECK(command);
    }
  }
}

TEST_CASE_METHOD(TransportFixture,
                 "Transport callbacks: publishing from on_message echoes every message in order",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      auto agent = open_peer(engine.client, options_for("ecu-a"));
      std::atomic<int> echo_failures{0};
      Transport* agent_transport = agent->transport.get();
      Inbox* agent_inbox = &agent->inbox;
      agent->transport->on_message([&echo_failures, agent_transport, agent_inbox](TransportMessage&& m) {
        // QoS 1 from the transport's own thread, which also has to read the PUBACK.
        if (!agent_transport->publish(up("ecu-a", "result"), m.payload, 1, false).is_ok()) ++echo_failures;
        agent_inbox->add(std::move(m));
      });
      REQUIRE_OK(connect_transport(engine.client, *agent->transport));
      REQUIRE_OK(agent->subscribe(down("ecu-a", "#"), 1));

      constexpr int kCount = 200;
      for (int i = 0; i < kCount; ++i) {
        REQUIRE_OK(client->publish(down("ecu-a", "cmd"), "echo " + std::to_string(i), 1, false));
      }
      auto echoes = client->inbox.wait_for_count(up("ecu-a", "result"), kCount, kDeadline);
      CHECK(echo_failures == 0);
      REQUIRE(echoes.size() == static_cast<std::size_t>(kCount));
      for (int i = 0; i < kCount; ++i) {
        INFO("echo " << i);
        REQUIRE(echoes[i].payload == "echo " + std::to_string(i));
      }
    }
  }
}

TEST_CASE_METHOD(TransportFixture,
                 "Transport threads: 4 threads publishing 300 messages each all arrive, each in order",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto client = connect_peer(engine.client, "ota-client");
      REQUIRE_OK(client->subscribe(up("ecu-a", "#"), 1));
      auto agent = connect_peer(engine.client, "ecu-a");
      constexpr int kThreads = 4;
      constexpr int kPerThread = 300;
      // "T I " followed by a body whose size varies up to 64 KiB, so that packets of different
      // sizes from different threads would tear if two writes interleaved.
      auto message = [](int t, int i) {
        const std::string head = std::to_string(t) + " " + std::to_string(i) + " ";
        const std::size_t body = i % 10 == 0 ? 65536 : static_cast<std::size_t>(i * 37 % 3000);
        return head + binary_payload(body, static_cast<unsigned>(t * kPerThread + i));
      };
      std::atomic<int> failures{0};
      {
        JoinAll publishers;
        for (int t = 0; t < kThreads; ++t) {
          publishers.threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
              if (!agent->publish(up("ecu-a", "ack"), message(t, i), 1, false).is_ok()) ++failures;
            }
          });
        }
      }
      CHECK(failures == 0);
      auto got = client->inbox.wait_for_count(up("ecu-a", "ack"), kThreads * kPerThread, kDeadline);
      REQUIRE(got.size() == static_cast<std::size_t>(kThreads * kPerThread));
      std::vector<int> next(kThreads, 0);
      std::string problem;
      for (const auto& m : got) {
        std::istringstream head(m.payload.substr(0, 16));
        int t = -1;
        int i = -1;
        head >> t >> i;
        if (t < 0 || t >= kThreads || i < 0 || i >= kPerThread) {
          problem = "unreadable message of " + std::to_string(m.payload.size()) + " bytes";
        } else if (i != next[t]) {
          problem = "thread " + std::to_string(t) + ": message " + std::to_string(i) + " where " +
                    std::to_string(next[t]) + " was due";
        } else if (m.payload != message(t, i)) {
          problem = "thread " + std::to_string(t) + " message " + std::to_string(i) + ": " +
                    compare_bytes(m.payload, message(t, i));
        } else {
          ++next[t];
        }
        if (!problem.empty()) break;
      }
      CHECK(problem == "");
    }
  }
}

TEST_CASE_METHOD(TransportFixture, "Transport keepalive: a broker that stops answering is detected as lost",
                 "[integration][transport]") {
  for (const Engine& engine : kEngines) {
    DYNAMIC_SECTION(engine.name) {
      auto options = options_for("ecu-a");
      options.keepalive = 1s;
      auto agent = connect_peer(engine.client, options);
      const std::size_t from = agent->inbox.connections().size();
      std::optional<std::size_t> lost;
      {
        FrozenBroker frozen(broker());
        const auto start = std::chrono::steady_clock::now();
        // The socket stays open: only the missing PINGRESP tells. Allowed: five keepalive periods.
        lost = agent->inbox.wait_connection(false, from, 5s);
        INFO("waited " << std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count()
                       << " ms");
        REQUIRE(lost);
        CHECK_FALSE(agent->connected());
      }
      // Answering again: the transport reconnects by itself.
      REQUIRE(agent->inbox.wait_connection(true, *lost + 1, kDeadline));
      CHECK(agent->connected());
    }
  }
}

TEST_CASE("Transport choice: kAuto takes native for MQTT 3.1.1 over tcp://, Paho for MQTT 5 and ssl://",
          "[unit][transport]") {
  auto resolved = [](const TransportOptions& o) {
    return std::string(ota::mqtt_client_name(ota::resolve_mqtt_client(o)));
  };
  CHECK(std::string(ota::mqtt_client_name(MqttClient::kNative)) == "native");
  CHECK(std::string(ota::mqtt_client_name(MqttClient::kPaho)) == "paho");

  ScopedEnv env("OTA_MQTT_CLIENT");
  env.unset();
  TransportOptions tcp;
  tcp.uri = "tcp://127.0.0.1:1883";
  TransportOptions v5 = tcp;
  v5.mqtt_v5 = true;
  TransportOptions ssl;
  ssl.uri = "ssl://127.0.0.1:8883";
  ssl.tls = ota::TlsOptions{"/nonexistent/ca.crt", "", ""};
  CHECK(resolved(tcp) == "native");
  CHECK(resolved(v5) == "paho");
  CHECK(resolved(ssl) == "paho");
  for (MqttClient explicit_client : {MqttClient::kNative, MqttClient::kPaho}) {
    TransportOptions o = tcp;
    o.client = explicit_client;
    CHECK(resolved(o) == ota::mqtt_client_name(explicit_client));
  }

  SECTION("OTA_MQTT_CLIENT overrides kAuto, not an explicit choice") {
    env.set("paho");
    CHECK(resolved(tcp) == "paho");
    TransportOptions native = tcp;
    native.client = MqttClient::kNative;
    CHECK(resolved(native) == "native");
    env.set("native");
    CHECK(resolved(tcp) == "native");
    TransportOptions paho = tcp;
    paho.client = MqttClient::kPaho;
    CHECK(resolved(paho) == "paho");
  }

  SECTION("the native client refuses ssl:// at connect and says it speaks tcp:// only") {
    TransportOptions o = ssl;
    o.client = MqttClient::kNative;
    o.username = "ecu-a";
    o.password = "irrelevant";
    for (auto* make : {&ota::make_native_transport, &ota::make_transport}) {
      auto transport = make(o);
      REQUIRE(transport);
      const Status st = transport->connect(2s);
      INFO(st.to_string());
      CHECK_FALSE(st.is_ok());
      CHECK(contains(st.message(), "tcp://"));
      CHECK_FALSE(transport->connected());
    }
  }
}
