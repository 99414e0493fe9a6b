// The private broker and its ACL, tested with real Mosquitto processes and real Paho clients.
//
// "Not delivered" is proven with a sentinel: the same publisher sends the forbidden message,
// then a sentinel on a topic it may use; MQTT keeps one publisher's order towards a subscriber,
// so once the sentinel has arrived, the forbidden message would have arrived first. Where the
// forbidden and the sentinel messages come from different publishers, the first publisher waits
// for its PUBACK before the sentinel is sent: by then the broker has routed or dropped it.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <string>

#include "ota/core/topics.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/netns.hpp"
#include "ota/sim/process.hpp"
#include "ota/test/broker_fixture.hpp"
#include "ota/test/netns.hpp"

using namespace std::chrono_literals;
using ota::sim::Broker;
using ota::sim::BrokerOptions;
using ota::test::BrokerFixture;
using ota::test::MqttTestClient;
using ota::test::TlsBrokerFixture;

namespace {

constexpr auto kDeadline = 10s;

std::string up(const std::string& ecu, const std::string& leaf) {
  return "ota/v1/ecu/" + ecu + "/up/" + leaf;
}
std::string down(const std::string& ecu, const std::string& leaf) {
  return "ota/v1/ecu/" + ecu + "/down/" + leaf;
}

int file_mode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

}  // namespace

TEST_CASE_METHOD(BrokerFixture, "Broker starts on a free port and answers a CONNECT",
                 "[integration][broker]") {
  CHECK(broker().port() > 0);
  CHECK(broker().host() == "127.0.0.1");
  CHECK(broker().uri() == "tcp://127.0.0.1:" + std::to_string(broker().port()));
  CHECK(broker().tls_port() == 0);
  CHECK(broker().running());
  for (const std::string user : {"ota-client", "ota-observer", "ecu-a", "ecu-b", "ecu-c"}) {
    INFO(user);
    CHECK(broker().password(user).size() == 32);
    CHECK(file_mode(broker().credentials_file(user)) == 0600);
    auto rc = ota::sim::mqtt_connect_probe(broker().host(), broker().port(), user, broker().password(user));
    REQUIRE(rc.is_ok());
    CHECK(rc.value() == 0);
  }
  CHECK(broker().password("ecu-unknown").empty());
  auto client = connect("ota-client");
  CHECK(client->connected());
}

TEST_CASE_METHOD(BrokerFixture, "Anonymous CONNECT is refused", "[integration][broker]") {
  auto rc = ota::sim::mqtt_connect_probe(broker().host(), broker().port(), "", "");
  REQUIRE(rc.is_ok());
  CHECK(rc.value() == 5);  // not authorized
  for (int version : {4, 5}) {
    INFO("MQTT version " << version);
    auto options = client_options("", version);
    options.password.clear();
    MqttTestClient anon(options);
    CHECK_FALSE(anon.connect().is_ok());
  }
}

TEST_CASE_METHOD(BrokerFixture, "A wrong password or an unknown user is refused", "[integration][broker]") {
  auto rc = ota::sim::mqtt_connect_probe(broker().host(), broker().port(), "ecu-a", "not-the-password");
  REQUIRE(rc.is_ok());
  CHECK(rc.value() != 0);
  auto options = client_options("ecu-a");
  options.password = broker().password("ecu-b");  // another agent's password
  MqttTestClient wrong(options);
  CHECK_FALSE(wrong.connect().is_ok());
  auto stranger = client_options("ecu-a");
  stranger.user = "ecu-z";
  MqttTestClient unknown(stranger);
  CHECK_FALSE(unknown.connect().is_ok());
}

TEST_CASE_METHOD(BrokerFixture, "An agent cannot publish into another agent's up/ subtree",
                 "[integration][acl]") {
  auto observer = connect("ota-observer");
  auto client = connect("ota-client");
  REQUIRE(observer->subscribe("ota/v1/#").is_ok());
  for (auto leaf : ota::topics::kAgentUpLeaves)
    REQUIRE(client->subscribe(ota::topics::all_agents_filter(leaf)).is_ok());
  auto a = connect("ecu-a");

  // Both are dropped by the broker (MQTT 5: PUBACK "not authorized").
  CHECK_FALSE(a->publish(up("ecu-b", "state"), "forged state").is_ok());
  CHECK_FALSE(a->publish(up("ecu-b", "hello"), "forged hello", 1, true).is_ok());
  REQUIRE(a->publish(up("ecu-a", "state"), "sentinel").is_ok());

  REQUIRE(observer->wait_for_payload(up("ecu-a", "state"), "sentinel", kDeadline));
  REQUIRE(client->wait_for_payload(up("ecu-a", "state"), "sentinel", kDeadline));
  CHECK(observer->count_with_prefix("ota/v1/ecu/ecu-b/") == 0);
  CHECK(client->count_with_prefix("ota/v1/ecu/ecu-b/") == 0);

  // Nor was the forged hello retained: a late subscriber gets only ecu-b's own retained hello.
  auto b = connect("ecu-b");
  REQUIRE(b->publish(up("ecu-b", "hello"), "genuine hello", 1, true).is_ok());
  auto late = connect("ota-observer");
  REQUIRE(late->subscribe(up("ecu-b", "hello")).is_ok());
  auto hello = late->wait_for_topic(up("ecu-b", "hello"), kDeadline);
  REQUIRE(hello);
  CHECK(hello->payload == "genuine hello");
  CHECK(hello->retained);
}

TEST_CASE_METHOD(BrokerFixture, "An agent cannot read another agent's down/ subtree", "[integration][acl]") {
  auto a = connect("ecu-a");
  auto b = connect("ecu-b");
  auto client = connect("ota-client");
  (void)a->subscribe("ota/v1/ecu/ecu-b/down/#");  // granted or refused: nothing may arrive
  (void)a->subscribe("ota/v1/ecu/+/down/#");
  REQUIRE(a->subscribe("ota/v1/ecu/ecu-a/down/#").is_ok());
  REQUIRE(b->subscribe("ota/v1/ecu/ecu-b/down/#").is_ok());

  REQUIRE(client->publish(down("ecu-b", "cmd"), "for b only").is_ok());
  REQUIRE(client->publish(down("ecu-b", "data"), std::string(256 * 1024, 'x')).is_ok());
  REQUIRE(client->publish(down("ecu-a", "cmd"), "sentinel").is_ok());

  REQUIRE(a->wait_for_payload(down("ecu-a", "cmd"), "sentinel", kDeadline));
  CHECK(a->count_with_prefix("ota/v1/ecu/ecu-b/") == 0);
  // Positive control: b did get its commands, a 256 KiB chunk included.
  REQUIRE(b->wait_for_payload(down("ecu-b", "cmd"), "for b only", kDeadline));
  auto chunk = b->wait_for_topic(down("ecu-b", "data"), kDeadline);
  REQUIRE(chunk);
  CHECK(chunk->payload.size() == 256 * 1024);
}

TEST_CASE_METHOD(BrokerFixture, "Agents cannot publish commands but the client can", "[integration][acl]") {
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/#").is_ok());
  auto a = connect("ecu-a");
  auto b = connect("ecu-b");
  REQUIRE(b->subscribe("ota/v1/ecu/ecu-b/down/#").is_ok());
  REQUIRE(a->subscribe("ota/v1/ecu/ecu-a/down/#").is_ok());

  CHECK_FALSE(a->publish(down("ecu-b", "cmd"), "forged command").is_ok());
  CHECK_FALSE(a->publish(down("ecu-a", "cmd"), "self command").is_ok());
  CHECK_FALSE(a->publish("ota/v1/vehicle/status", "forged status").is_ok());
  REQUIRE(a->publish(up("ecu-a", "ack"), "sentinel").is_ok());
  REQUIRE(observer->wait_for_payload(up("ecu-a", "ack"), "sentinel", kDeadline));
  CHECK(observer->count_with_prefix("ota/v1/vehicle/") == 0);
  CHECK(observer->messages().size() == 1);

  // The client can command both agents and publish vehicle status.
  auto client = connect("ota-client");
  REQUIRE(client->publish(down("ecu-b", "cmd"), "real command").is_ok());
  REQUIRE(client->publish(down("ecu-a", "cmd"), "real command").is_ok());
  REQUIRE(client->publish("ota/v1/vehicle/status", "campaign 1: 50%").is_ok());
  auto cmd = b->wait_for_topic(down("ecu-b", "cmd"), kDeadline);
  REQUIRE(cmd);
  CHECK(cmd->payload == "real command");  // the forged one never arrived before it
  auto own = a->wait_for_topic(down("ecu-a", "cmd"), kDeadline);
  REQUIRE(own);
  CHECK(own->payload == "real command");
  REQUIRE(observer->wait_for_payload("ota/v1/vehicle/status", "campaign 1: 50%", kDeadline));
}

TEST_CASE_METHOD(BrokerFixture, "The client reads agents' uplinks and its vehicle topics",
                 "[integration][acl]") {
  auto client = connect("ota-client");
  for (auto leaf : ota::topics::kAgentUpLeaves)
    REQUIRE(client->subscribe(ota::topics::all_agents_filter(leaf)).is_ok());
  REQUIRE(client->subscribe("ota/v1/vehicle/#").is_ok());
  auto c = connect("ecu-c");
  REQUIRE(c->publish(up("ecu-c", "result"), "ok").is_ok());
  REQUIRE(client->wait_for_payload(up("ecu-c", "result"), "ok", kDeadline));
  REQUIRE(client->publish("ota/v1/vehicle/report", "{}").is_ok());
  REQUIRE(client->wait_for_payload("ota/v1/vehicle/report", "{}", kDeadline));
}

TEST_CASE_METHOD(BrokerFixture, "The observer can read everything and publish nothing",
                 "[integration][acl]") {
  auto a = connect("ecu-a");
  REQUIRE(a->subscribe("ota/v1/ecu/ecu-a/down/#").is_ok());
  auto observer = connect("ota-observer");
  // Waits for the PUBACK: by then the broker has dropped (or routed) the message.
  CHECK_FALSE(observer->publish(down("ecu-a", "cmd"), "from observer").is_ok());
  auto client = connect("ota-client");
  REQUIRE(client->publish(down("ecu-a", "cmd"), "sentinel").is_ok());
  auto first = a->wait_for_topic(down("ecu-a", "cmd"), kDeadline);
  REQUIRE(first);
  CHECK(first->payload == "sentinel");
  CHECK(a->messages().size() == 1);
}

TEST_CASE("Client id takeover: refused by default, possible only with --no-strict-clientid",
          "[integration][acl][security]") {
  // Mosquitto closes an existing connection when another one arrives with the same client id,
  // whatever its user. By default render replaces every client id by the username, so an agent
  // cannot knock the client off the broker; --no-strict-clientid (strict_client_ids = false)
  // brings the takeover back, which this test shows too so that the default is seen to matter.
  CHECK(BrokerOptions{}.strict_client_ids);
  for (bool strict : {true, false}) {
    INFO("strict client ids: " << strict);
    BrokerOptions options;
    options.agents = {"ecu-a"};
    if (!strict) options.strict_client_ids = false;
    BrokerFixture fixture(options);
    auto client_options = fixture.client_options("ota-client");
    client_options.client_id = "ota-client-main";
    auto client = fixture.connect_with(client_options);
    auto intruder_options = fixture.client_options("ecu-a");
    intruder_options.client_id = "ota-client-main";
    auto intruder = fixture.connect_with(intruder_options);
    REQUIRE(intruder->subscribe("ota/v1/ecu/ecu-a/down/#").is_ok());
    if (!strict) {
      CHECK(client->wait_connection_lost(kDeadline));
    } else {
      // The client still works: its command reaches the agent (who holds no session of its own).
      REQUIRE(client->publish(down("ecu-a", "cmd"), "still connected").is_ok());
      REQUIRE(intruder->wait_for_payload(down("ecu-a", "cmd"), "still connected", kDeadline));
      CHECK_FALSE(client->connection_lost());
    }
  }
}

TEST_CASE("Two brokers run side by side on different ports", "[integration][broker]") {
  BrokerOptions options;
  options.agents = {"ecu-a"};
  auto one = Broker::start(options);
  auto two = Broker::start(options);
  REQUIRE(one.is_ok());
  REQUIRE(two.is_ok());
  CHECK((*one)->port() != (*two)->port());
  CHECK((*one)->dir() != (*two)->dir());
  CHECK((*one)->password("ecu-a") != (*two)->password("ecu-a"));
  for (auto* b : {one.value().get(), two.value().get()}) {
    auto rc = ota::sim::mqtt_connect_probe(b->host(), b->port(), "ecu-a", b->password("ecu-a"));
    REQUIRE(rc.is_ok());
    CHECK(rc.value() == 0);
  }
  // A temporary instance directory disappears with its broker.
  const std::string dir = (*one)->dir();
  one.value().reset();
  struct stat st {};
  CHECK(::stat(dir.c_str(), &st) != 0);
}

TEST_CASE_METHOD(BrokerFixture, "Retained state survives a broker restart (persistence)",
                 "[integration][broker]") {
  {
    auto a = connect("ecu-a");
    REQUIRE(a->publish(up("ecu-a", "hello"), "hello v1", 1, true).is_ok());
  }
  const int port = broker().port();
  auto stopped = broker().stop();
  REQUIRE(stopped);
  CHECK(stopped->success());  // SIGTERM: mosquitto saves its database and exits 0
  CHECK_FALSE(broker().running());
  auto st = broker().restart();
  INFO(st.to_string());
  REQUIRE(st.is_ok());
  CHECK(broker().port() == port);
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe(up("ecu-a", "hello")).is_ok());
  auto hello = observer->wait_for_topic(up("ecu-a", "hello"), kDeadline);
  REQUIRE(hello);
  CHECK(hello->payload == "hello v1");
  CHECK(hello->retained);
}

TEST_CASE_METHOD(BrokerFixture, "An agent added to a running broker can connect and use its subtree",
                 "[integration][broker]") {
  auto st = broker().add_agent("ecu-new");
  INFO(st.to_string());
  REQUIRE(st.is_ok());
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/#").is_ok());
  auto fresh = connect("ecu-new");
  CHECK_FALSE(fresh->publish(up("ecu-a", "state"), "forged").is_ok());
  REQUIRE(fresh->publish(up("ecu-new", "hello"), "hi").is_ok());
  REQUIRE(observer->wait_for_payload(up("ecu-new", "hello"), "hi", kDeadline));
  CHECK(observer->count_with_prefix("ota/v1/ecu/ecu-a/") == 0);
  // Existing users keep their passwords.
  auto a = connect("ecu-a");
  CHECK(a->connected());
}

TEST_CASE("Broker::start names what failed", "[integration][broker]") {
  SECTION("no render script") {
    BrokerOptions options;
    options.config_dir = "/nonexistent/broker-config";
    auto b = Broker::start(options);
    REQUIRE_FALSE(b.is_ok());
    CHECK(b.status().message().find("render") != std::string::npos);
  }
  SECTION("invalid agent id") {
    BrokerOptions options;
    options.agents = {"ecu/+"};
    auto b = Broker::start(options);
    REQUIRE_FALSE(b.is_ok());
    CHECK(b.status().message().find("ecu/+") != std::string::npos);
  }
  SECTION("render rejects the agent list") {
    BrokerOptions options;
    options.agents = {"ecu-a", "ecu-a"};
    auto b = Broker::start(options);
    REQUIRE_FALSE(b.is_ok());
    CHECK(b.status().message().find("given twice") != std::string::npos);
  }
  SECTION("the fixed port is taken") {
    BrokerOptions options;
    auto first = Broker::start(options);
    REQUIRE(first.is_ok());
    options.port = (*first)->port();
    auto second = Broker::start(options);
    REQUIRE_FALSE(second.is_ok());
    INFO(second.status().to_string());
    CHECK(second.status().message().find("Address already in use") != std::string::npos);
  }
  SECTION("the broker exits at once") {
    BrokerOptions options;
    options.mosquitto_path = "/bin/false";
    auto b = Broker::start(options);
    REQUIRE_FALSE(b.is_ok());
    CHECK(b.status().message().find("exited during start-up (exit code 1)") != std::string::npos);
  }
}

TEST_CASE_METHOD(TlsBrokerFixture, "TLS: an agent certificate connects and its CN is its identity",
                 "[integration][tls]") {
  REQUIRE(broker().tls_port() > 0);
  CHECK(broker().tls_port() != broker().port());
  auto observer = connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/#").is_ok());
  for (int version : {4, 5}) {
    INFO("MQTT version " << version);
    auto a = connect_with(tls_client_options("ecu-a", version));
    // The ACL applies to the certificate's CN exactly as to a user name.
    auto forged = a->publish(up("ecu-b", "state"), "forged over TLS");
    if (version == 5) CHECK_FALSE(forged.is_ok());  // MQTT 3.1.1 has no PUBACK reason code
    const std::string sentinel = "tls sentinel v" + std::to_string(version);
    REQUIRE(a->publish(up("ecu-a", "state"), sentinel).is_ok());
    REQUIRE(observer->wait_for_payload(up("ecu-a", "state"), sentinel, kDeadline));
  }
  CHECK(observer->count_with_prefix("ota/v1/ecu/ecu-b/") == 0);
  // The client's certificate works too.
  auto client = connect_with(tls_client_options("ota-client"));
  REQUIRE(client->publish(down("ecu-a", "cmd"), "over TLS").is_ok());
}

TEST_CASE_METHOD(TlsBrokerFixture, "TLS: no certificate or a certificate from another CA is refused",
                 "[integration][tls]") {
  SECTION("no client certificate") {
    auto options = tls_client_options("ecu-a");
    options.cert_file.clear();
    options.key_file.clear();
    MqttTestClient c(options);
    CHECK_FALSE(c.connect().is_ok());
  }
  SECTION("no client certificate, a valid password") {
    auto options = tls_client_options("ecu-a");
    options.cert_file.clear();
    options.key_file.clear();
    options.user = "ecu-a";
    options.password = broker().password("ecu-a");
    MqttTestClient c(options);
    CHECK_FALSE(c.connect().is_ok());
  }
  SECTION("a certificate from another CA") {
    const std::string rogue = broker().dir() + "/rogue-pki";
    auto mk = ota::sim::ChildProcess::spawn(
        {"bash", std::string(OTA_BROKER_CONFIG_DIR_FOR_TESTS) + "/make-pki", rogue, "-q", "--agents",
         "ecu-a"},
        ota::sim::SpawnOptions{broker().dir() + "/rogue.log", {}, "make-pki", ""});
    REQUIRE(mk.is_ok());
    auto done = mk->wait_for(60s);
    REQUIRE(done);
    REQUIRE(done->success());
    auto options = tls_client_options("ecu-a");
    options.cert_file = rogue + "/clients/ecu-a.crt";
    options.key_file = rogue + "/clients/ecu-a.key";
    MqttTestClient c(options);
    CHECK_FALSE(c.connect().is_ok());
  }
  SECTION("the broker is not trusted by a client with another CA") {
    const std::string rogue = broker().dir() + "/rogue-pki2";
    auto mk = ota::sim::ChildProcess::spawn(
        {"bash", std::string(OTA_BROKER_CONFIG_DIR_FOR_TESTS) + "/make-pki", rogue, "-q"},
        ota::sim::SpawnOptions{broker().dir() + "/rogue2.log", {}, "make-pki", ""});
    REQUIRE(mk.is_ok());
    REQUIRE(mk->wait_for(60s));
    auto options = tls_client_options("ecu-a");
    options.ca_file = rogue + "/ca.crt";
    MqttTestClient c(options);
    CHECK_FALSE(c.connect().is_ok());
  }
  // And the genuine certificate still works afterwards.
  auto ok = connect_with(tls_client_options("ecu-a"));
  CHECK(ok->connected());
}

TEST_CASE("TLS: an agent in its own network namespace reaches the broker only over TLS",
          "[integration][tls][netns]") {
  ota::test::require_network_namespaces();
  auto ns = ota::sim::NetNamespace::create();
  INFO(ns.status().to_string());
  REQUIRE(ns.is_ok());
  BrokerOptions options;
  options.agents = {"ecu-a", "ecu-b"};
  options.tls = true;
  options.tls_bind = ns->host_ip();  // the TLS listener sits on the link to the "other SoC"
  options.tls_extra_ips = {ns->host_ip()};
  BrokerFixture fixture(options);
  Broker& broker = fixture.broker();
  auto observer = fixture.connect("ota-observer");
  REQUIRE(observer->subscribe("ota/v1/#").is_ok());

  const std::string pki = broker.pki_dir();
  auto pub = [&](const std::string& host, int port, std::vector<std::string> auth, const std::string& topic,
                 const std::string& payload) {
    std::vector<std::string> argv{"mosquitto_pub", "-h", host,   "-p", std::to_string(port), "-q", "1", "-t",
                                  topic,           "-m", payload};
    argv.insert(argv.end(), auth.begin(), auth.end());
    auto r = ota::sim::run_command(ns->wrap(argv), 30s);
    REQUIRE(r.is_ok());
    return *r;
  };
  const std::vector<std::string> cert_a{
      "--cafile", pki + "/ca.crt", "--cert", pki + "/clients/ecu-a.crt", "--key", pki + "/clients/ecu-a.key"};

  // Over TLS with its certificate: accepted, and the ACL applies to its CN.
  auto ok = pub(ns->host_ip(), broker.tls_port(), cert_a, up("ecu-a", "state"), "from another SoC");
  INFO(ok.output);
  CHECK(ok.exit.success());
  REQUIRE(observer->wait_for_payload(up("ecu-a", "state"), "from another SoC", kDeadline));

  // The password listener is bound to the host's loopback: unreachable from the namespace.
  auto plain = pub(ns->host_ip(), broker.port(), {"-u", "ecu-a", "-P", broker.password("ecu-a")},
                   up("ecu-a", "state"), "plain");
  CHECK_FALSE(plain.exit.success());
  auto loop = pub("127.0.0.1", broker.port(), {"-u", "ecu-a", "-P", broker.password("ecu-a")},
                  up("ecu-a", "state"), "loopback");
  CHECK_FALSE(loop.exit.success());
  // Without a certificate: refused.
  auto nocert =
      pub(ns->host_ip(), broker.tls_port(), {"--cafile", pki + "/ca.crt"}, up("ecu-a", "state"), "nocert");
  CHECK_FALSE(nocert.exit.success());
  // With its own certificate, into another agent's subtree: dropped (sentinel after it).
  (void)pub(ns->host_ip(), broker.tls_port(), cert_a, up("ecu-b", "state"), "forged");
  REQUIRE(pub(ns->host_ip(), broker.tls_port(), cert_a, up("ecu-a", "state"), "sentinel").exit.success());
  REQUIRE(observer->wait_for_payload(up("ecu-a", "state"), "sentinel", kDeadline));
  CHECK(observer->count_with_prefix("ota/v1/ecu/ecu-b/") == 0);
  for (const auto& m : observer->messages()) CHECK(m.payload != "plain");
  for (const auto& m : observer->messages()) CHECK(m.payload != "loopback");
  for (const auto& m : observer->messages()) CHECK(m.payload != "nocert");
}
