// The in-memory broker and its Transport (ota/core/loopback_transport.hpp): one case per rule of
// its contract, each asserting what would break with the rule. Events are waited for with a
// deadline (TransportInbox); "not delivered" is proven by a sentinel the same publisher sends
// after it (per-publisher order), so no case waits for something that does not come.
#include "ota/core/loopback_transport.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ota/test/transport_inbox.hpp"

using namespace std::chrono_literals;
using ota::Code;
using ota::LoopbackBroker;
using ota::Transport;
using ota::TransportMessage;
using ota::TransportOptions;
using ota::WillMessage;
using ota::test::TransportInbox;

namespace {

constexpr auto kDeadline = 5s;  // reached only when a case fails

TransportOptions options_for(const std::string& client_id) {
  TransportOptions o;
  o.client_id = client_id;
  o.reconnect_min = 1ms;
  o.reconnect_max = 4ms;
  return o;
}

TransportOptions with_will(TransportOptions o, const std::string& topic, const std::string& payload) {
  o.will = WillMessage{topic, payload, 1, true};
  return o;
}

// A transport and what it saw. The inbox is declared first: it outlives the transport's thread.
struct Peer {
  TransportInbox inbox;
  std::unique_ptr<Transport> t;
  std::atomic<int> sentinels{0};

  // Publishes a sentinel on `topic` and waits until `to` has it: whatever this peer published
  // before (and whatever the broker routed before) has been delivered to `to` by then.
  void settle(Peer& to, const std::string& topic = "sentinel") {
    const std::string payload = "sentinel-" + std::to_string(++sentinels);
    REQUIRE(t->publish(topic, payload, 1, false).is_ok());
    REQUIRE(to.inbox.wait_for_payload(topic, payload, kDeadline));
  }
};

std::unique_ptr<Peer> open_peer(const std::shared_ptr<LoopbackBroker>& broker, TransportOptions o) {
  auto p = std::make_unique<Peer>();
  p->t = ota::make_loopback_transport(broker, std::move(o));
  TransportInbox* inbox = &p->inbox;
  p->t->on_message([inbox](TransportMessage&& m) { inbox->add(std::move(m)); });
  p->t->on_connection([inbox](bool up) { inbox->add_connection(up); });
  return p;
}

std::unique_ptr<Peer> connect_peer(const std::shared_ptr<LoopbackBroker>& broker, TransportOptions o,
                                   const std::vector<std::string>& filters = {}) {
  auto p = open_peer(broker, std::move(o));
  REQUIRE(p->t->connect(1s).is_ok());
  REQUIRE(p->inbox.wait_connection(true, 0, kDeadline));
  for (const auto& f : filters) REQUIRE(p->t->subscribe(f, 1).is_ok());
  return p;
}

std::vector<std::string> payloads(const std::vector<TransportMessage>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.payload);
  return out;
}

// A gate a callback waits at until the test opens it; says when the callback reached it.
class Gate {
 public:
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mu_);
    arrived_ = true;
    cv_.notify_all();
    cv_.wait_for(lock, kDeadline, [&] { return open_; });
  }
  bool wait_arrived() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return arrived_; });
  }
  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool arrived_ = false;
  bool open_ = false;
};

}  // namespace

TEST_CASE("Loopback delivery: on the transport's own thread, one at a time, in order per publisher",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  TransportInbox inbox;
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  auto sub = ota::make_loopback_transport(broker, options_for("sub"));
  sub->on_message([&](TransportMessage&& m) {
    const int now = ++inside;
    if (now > most_inside) most_inside = now;
    {
      std::lock_guard<std::mutex> lock(mu);
      threads.insert(std::this_thread::get_id());
    }
    inbox.add(std::move(m));
    --inside;
  });
  sub->on_connection([&](bool up) {
    std::lock_guard<std::mutex> lock(mu);
    threads.insert(std::this_thread::get_id());
    inbox.add_connection(up);
  });
  REQUIRE(sub->connect(1s).is_ok());
  REQUIRE(sub->subscribe("t/#", 1).is_ok());

  constexpr size_t kCount = 300;
  auto a = connect_peer(broker, options_for("pub-a"));
  auto b = connect_peer(broker, options_for("pub-b"));
  auto publish_all = [](Transport* t, const char* topic) {
    for (size_t i = 0; i < kCount; ++i) (void)t->publish(topic, std::to_string(i), int(i % 2), false);
  };
  std::thread pa(publish_all, a->t.get(), "t/a");
  std::thread pb(publish_all, b->t.get(), "t/b");
  pa.join();
  pb.join();

  for (const char* topic : {"t/a", "t/b"}) {
    auto got = inbox.wait_for_count(topic, kCount, kDeadline);
    REQUIRE(got.size() == kCount);
    for (size_t i = 0; i < kCount; ++i) REQUIRE(got[i].payload == std::to_string(i));
  }
  REQUIRE(inbox.connections() == std::vector<bool>{true});
  std::lock_guard<std::mutex> lock(mu);
  CHECK(threads.size() == 1u);  // one delivery thread, neither the test's nor a publisher's
  CHECK(threads.count(std::this_thread::get_id()) == 0u);
  CHECK(most_inside == 1);
}

TEST_CASE("Loopback filters: '+' and '#' as MQTT matches them, no wildcard into '$' topics",
          "[unit][core][loopback]") {
  struct Case {
    const char* filter;
    const char* topic;
    bool match;
  };
  const Case cases[] = {
      {"a/+/c", "a/b/c", true},   {"a/+/c", "a/b/c/d", false}, {"a/+/c", "a/c", false},
      {"a/+/c", "a//c", true},    {"a/#", "a", true},          {"a/#", "a/b/c", true},
      {"a/#", "ab", false},       {"#", "x/y", true},          {"+", "a", true},
      {"+", "a/b", false},        {"+/+", "/", true},          {"a/b", "a/b", true},
      {"a/b", "a/b/", false},     {"#", "$SYS/x", false},      {"+/x", "$SYS/x", false},
      {"$SYS/#", "$SYS/x", true},
  };
  auto broker = std::make_shared<LoopbackBroker>();
  auto pub = connect_peer(broker, options_for("pub"));
  int n = 0;
  for (const auto& c : cases) {
    INFO(c.filter << " on " << c.topic);
    auto sub = connect_peer(broker, options_for("sub-" + std::to_string(n++)), {c.filter, "sentinel"});
    REQUIRE(pub->t->publish(c.topic, "x", 1, false).is_ok());
    pub->settle(*sub);
    CHECK(sub->inbox.count_payload("x") == (c.match ? 1u : 0u));
  }

  auto sub = connect_peer(broker, options_for("sub-invalid"));
  for (const char* bad : {"", "a/#/b", "a#", "a/b+", "#/"}) {
    INFO(bad);
    CHECK(sub->t->subscribe(bad, 1).code() == Code::kInvalidArgument);
  }
  for (const char* bad : {"", "a/+", "a/#"}) {
    INFO(bad);
    CHECK(pub->t->publish(bad, "x", 1, false).code() == Code::kInvalidArgument);
  }
  CHECK(pub->t->publish("a", "x", 3, false).code() == Code::kInvalidArgument);
}

TEST_CASE("Loopback retained: served on subscribe as retained, live copies not, empty payload clears",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  auto pub = connect_peer(broker, options_for("pub"));
  REQUIRE(pub->t->publish("r/a", "one", 1, true).is_ok());
  REQUIRE(pub->t->publish("r/b", "two", 0, true).is_ok());
  REQUIRE(pub->t->publish("r/b", "", 1, true).is_ok());
  CHECK(broker->retained("r/a") == std::optional<std::string>("one"));
  CHECK_FALSE(broker->retained("r/b").has_value());

  auto sub = connect_peer(broker, options_for("sub"), {"r/#", "sentinel"});
  auto first = sub->inbox.wait_for_topic("r/a", kDeadline);
  REQUIRE(first);
  CHECK(first->payload == "one");
  CHECK(first->retained);

  REQUIRE(pub->t->publish("r/a", "again", 1, true).is_ok());
  REQUIRE(pub->t->publish("r/c", "live", 1, false).is_ok());
  pub->settle(*sub);
  auto got = sub->inbox.wait_for_count("r/a", 2, kDeadline);
  REQUIRE(payloads(got) == std::vector<std::string>{"one", "again"});
  CHECK_FALSE(got[1].retained);  // MQTT 3.1.1: a live copy goes out without the retain flag
  auto live = sub->inbox.wait_for_topic("r/c", kDeadline);
  REQUIRE(live);
  CHECK_FALSE(live->retained);
  CHECK(sub->inbox.count_with_prefix("r/b") == 0u);
  CHECK(broker->retained("r/a") == std::optional<std::string>("again"));
}

TEST_CASE("Loopback Last Will: a lost link publishes it, the transport reconnects by itself",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  auto watcher = connect_peer(broker, options_for("watcher"), {"hello/#"});
  auto agent = connect_peer(broker, with_will(options_for("agent"), "hello/agent", "offline"), {"cmd"});

  CHECK_FALSE(broker->drop("nobody"));
  REQUIRE(broker->drop("agent"));
  auto will = watcher->inbox.wait_for_payload("hello/agent", "offline", kDeadline);
  REQUIRE(will);
  CHECK_FALSE(will->retained);
  CHECK(broker->retained("hello/agent") == std::optional<std::string>("offline"));

  auto down = agent->inbox.wait_connection(false, 1, kDeadline);
  REQUIRE(down);
  REQUIRE(agent->inbox.wait_connection(true, *down + 1, kDeadline));
  CHECK(broker->connected("agent"));
  // The subscription came back with the connection.
  watcher->settle(*agent, "cmd");
}

TEST_CASE("Loopback Last Will: a transport destroyed while connected is a crash, its Will goes out",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  auto watcher = connect_peer(broker, options_for("watcher"), {"hello/#"});
  auto agent = connect_peer(broker, with_will(options_for("agent"), "hello/agent", "offline"));
  agent.reset();
  REQUIRE(watcher->inbox.wait_for_payload("hello/agent", "offline", kDeadline));
  CHECK_FALSE(broker->connected("agent"));
}

TEST_CASE("Loopback disconnect: orderly, no Will, no on_connection(false)", "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  auto watcher = connect_peer(broker, options_for("watcher"), {"hello/#", "sentinel"});
  auto agent = connect_peer(broker, with_will(options_for("agent"), "hello/agent", "offline"));
  REQUIRE(agent->t->publish("hello/agent", "online", 1, true).is_ok());
  agent->t->disconnect(1s);
  CHECK_FALSE(agent->t->connected());
  CHECK_FALSE(broker->connected("agent"));
  auto other = connect_peer(broker, options_for("other"));
  other->settle(*watcher);
  CHECK(watcher->inbox.count_payload("offline") == 0u);
  CHECK(broker->retained("hello/agent") == std::optional<std::string>("online"));
  CHECK(agent->inbox.connections() == std::vector<bool>{true});

  // And connects again.
  REQUIRE(agent->t->connect(1s).is_ok());
  REQUIRE(agent->inbox.wait_connection(true, 1, kDeadline));
  agent->settle(*watcher);
}

TEST_CASE("Loopback takeover: a second connect with the same client id drops the first, Will sent",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  auto watcher = connect_peer(broker, options_for("watcher"), {"gone/#"});
  auto first_options = with_will(options_for("same"), "gone/first", "first");
  first_options.reconnect_min = 1h;  // does not take the id back while the case runs
  auto first = connect_peer(broker, first_options);
  auto second = connect_peer(broker, with_will(options_for("same"), "gone/second", "second"));

  REQUIRE(first->inbox.wait_connection(false, 1, kDeadline));
  CHECK_FALSE(first->t->connected());
  REQUIRE(watcher->inbox.wait_for_payload("gone/first", "first", kDeadline));
  CHECK(second->t->connected());
  CHECK(broker->connected("same"));
  second->settle(*watcher, "gone/sentinel");
  CHECK(watcher->inbox.count_payload("second") == 0u);

  // Destroying a transport waiting out its backoff does not wait for it.
  const auto start = std::chrono::steady_clock::now();
  first.reset();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(broker->connected("same"));  // the first was no longer the live one: nothing to drop
}

TEST_CASE("Loopback outage: every link dropped with its Will, connect refused, all back after it",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  auto agent = connect_peer(broker, with_will(options_for("agent"), "state/agent", "offline"));
  REQUIRE(agent->t->publish("state/agent", "online", 1, true).is_ok());
  REQUIRE(agent->t->publish("state/other", "kept", 1, true).is_ok());

  // The client probes in its on_connection(true): it hears its own probe only if its subscription
  // is back by then.
  std::atomic<bool> probe{false};
  auto client = std::make_unique<Peer>();
  client->t = ota::make_loopback_transport(broker, options_for("client"));
  Peer* c = client.get();
  c->t->on_message([c](TransportMessage&& m) { c->inbox.add(std::move(m)); });
  c->t->on_connection([c, &probe](bool up) {
    if (up && probe) (void)c->t->publish("state/probe", "probe", 1, false);
    c->inbox.add_connection(up);
  });
  REQUIRE(c->t->connect(1s).is_ok());
  REQUIRE(c->t->subscribe("state/#", 1).is_ok());
  REQUIRE(c->inbox.wait_for_count("state/agent", 1, kDeadline).size() == 1u);
  probe = true;

  broker->set_available(false);
  CHECK_FALSE(broker->connected("agent"));
  CHECK_FALSE(broker->connected("client"));
  REQUIRE(agent->inbox.wait_connection(false, 1, kDeadline));
  REQUIRE(c->inbox.wait_connection(false, 1, kDeadline));
  CHECK(broker->retained("state/agent") == std::optional<std::string>("offline"));  // the Will
  CHECK(broker->retained("state/other") == std::optional<std::string>("kept"));
  auto late = open_peer(broker, options_for("late"));
  CHECK(late->t->connect(1s).code() == Code::kUnavailable);
  CHECK(c->t->subscribe("later/#", 1).code() == Code::kUnavailable);  // restored on reconnect

  broker->set_available(true);
  REQUIRE(agent->inbox.wait_connection(true, 2, kDeadline));
  auto up = c->inbox.wait_connection(true, 2, kDeadline);
  REQUIRE(up);
  REQUIRE(c->inbox.wait_for_payload("state/probe", "probe", kDeadline));
  auto retained = c->inbox.wait_for_count("state/agent", 2, kDeadline);
  REQUIRE(retained.size() == 2u);
  CHECK(retained[1].payload == "offline");
  CHECK(retained[1].retained);
  agent->settle(*c, "later/x");
  REQUIRE(late->t->connect(1s).is_ok());
}

TEST_CASE("Loopback offline buffer: kept while disconnected up to its size, sent in order, flush waits",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  broker->set_users({{"sub", "pw"}, {"pub", "pw"}});
  auto sub_options = options_for("sub");
  sub_options.username = "sub";
  sub_options.password = "pw";
  auto sub = connect_peer(broker, sub_options, {"q/#"});
  auto pub_options = options_for("pub");
  pub_options.username = "pub";
  pub_options.password = "pw";
  pub_options.offline_buffer = 3;
  auto pub = open_peer(broker, pub_options);

  REQUIRE(pub->t->publish("q/n", "0", 1, false).is_ok());  // before connect: goes at connect
  REQUIRE(pub->t->connect(1s).is_ok());
  REQUIRE(sub->inbox.wait_for_payload("q/n", "0", kDeadline));
  REQUIRE(pub->t->flush(0ms).is_ok());

  broker->set_users({{"sub", "pw"}});  // its reconnects are refused until the table has it again
  REQUIRE(broker->drop("pub"));
  REQUIRE(pub->inbox.wait_connection(false, 1, kDeadline));
  REQUIRE(pub->t->publish("q/n", "1", 1, false).is_ok());
  REQUIRE(pub->t->publish("q/n", "2", 0, false).is_ok());
  REQUIRE(pub->t->publish("q/n", "3", 1, false).is_ok());
  CHECK(pub->t->publish("q/n", "4", 1, false).code() == Code::kUnavailable);
  CHECK(pub->t->flush(5ms).code() == Code::kTimeout);

  broker->set_users({{"sub", "pw"}, {"pub", "pw"}});
  REQUIRE(pub->t->flush(kDeadline).is_ok());
  REQUIRE(pub->inbox.wait_connection(true, 2, kDeadline));
  pub->settle(*sub, "q/sentinel");
  CHECK(payloads(sub->inbox.wait_for_count("q/n", 4, kDeadline)) ==
        std::vector<std::string>{"0", "1", "2", "3"});
}

TEST_CASE("Loopback in flight: QoS 1 lost with the link is sent again after the reconnect, QoS 0 not",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  LoopbackBroker* b = broker.get();  // not the shared_ptr: the broker holds the interceptor
  std::mutex mu;
  std::multiset<std::string> seen;
  broker->set_interceptor([b, &mu, &seen](const std::string& from, const TransportMessage& m) {
    std::lock_guard<std::mutex> lock(mu);
    seen.insert(m.payload);
    if (m.payload.rfind("cut", 0) == 0 && seen.count(m.payload) == 1) b->drop(from);
    return LoopbackBroker::Action::kPass;
  });
  auto sub = connect_peer(broker, options_for("sub"), {"d/#"});
  auto pub = connect_peer(broker, options_for("pub"));

  REQUIRE(pub->t->publish("d/x", "cut-1", 1, false).is_ok());
  REQUIRE(pub->t->publish("d/x", "after-1", 1, false).is_ok());
  REQUIRE(pub->t->flush(kDeadline).is_ok());
  CHECK(payloads(sub->inbox.wait_for_count("d/x", 2, kDeadline)) ==
        std::vector<std::string>{"cut-1", "after-1"});
  REQUIRE(pub->inbox.wait_connection(true, 2, kDeadline));

  REQUIRE(pub->t->publish("d/y", "cut-0", 0, false).is_ok());
  REQUIRE(pub->t->publish("d/y", "after-0", 1, false).is_ok());
  REQUIRE(sub->inbox.wait_for_payload("d/y", "after-0", kDeadline));
  CHECK(sub->inbox.count_payload("cut-0") == 0u);
  CHECK(sub->inbox.count_payload("cut-1") == 1u);
  std::lock_guard<std::mutex> lock(mu);
  CHECK(seen.count("cut-1") == 2u);  // handed to the broker twice
  CHECK(seen.count("cut-0") == 1u);
}

TEST_CASE("Loopback interceptor: a message dropped is neither delivered nor retained, a duplicate twice",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  broker->set_interceptor([](const std::string& from, const TransportMessage& m) {
    if (from == "pub" && m.payload == "drop-me") return LoopbackBroker::Action::kDrop;
    if (from == "pub" && m.payload == "twice") return LoopbackBroker::Action::kDuplicate;
    return LoopbackBroker::Action::kPass;
  });
  auto sub = connect_peer(broker, options_for("sub"), {"i/#", "sentinel"});
  auto pub = connect_peer(broker, options_for("pub"));
  REQUIRE(pub->t->publish("i/r", "drop-me", 1, true).is_ok());
  REQUIRE(pub->t->publish("i/d", "twice", 1, false).is_ok());
  pub->settle(*sub);
  CHECK(sub->inbox.count_payload("drop-me") == 0u);
  CHECK_FALSE(broker->retained("i/r").has_value());
  CHECK(sub->inbox.count_payload("twice") == 2u);

  broker->set_interceptor(nullptr);
  REQUIRE(pub->t->publish("i/r", "drop-me", 1, true).is_ok());
  pub->settle(*sub);
  CHECK(sub->inbox.count_payload("drop-me") == 1u);
}

TEST_CASE("Loopback credentials: a wrong user or password is kRejected", "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  broker->set_users({{"ecu-a", "secret"}});
  auto o = options_for("agent-ecu-a");
  o.username = "ecu-a";
  o.password = "wrong";
  CHECK(open_peer(broker, o)->t->connect(1s).code() == Code::kRejected);
  o.username = "ecu-b";
  o.password = "secret";
  CHECK(open_peer(broker, o)->t->connect(1s).code() == Code::kRejected);
  o.username = "ecu-a";
  CHECK(open_peer(broker, o)->t->connect(1s).is_ok());
  CHECK(open_peer(broker, options_for(""))->t->connect(1s).code() == Code::kInvalidArgument);
}

TEST_CASE("Loopback memory: a connection's queue is capped, beyond it messages are dropped and counted",
          "[unit][core][loopback]") {
  ota::LoopbackLimits limits;
  limits.max_queued_messages = 5;
  limits.max_queued_bytes = 100;
  auto broker = std::make_shared<LoopbackBroker>(limits);
  Gate by_count;
  Gate by_bytes;
  auto sub = open_peer(broker, options_for("sub"));
  TransportInbox* inbox = &sub->inbox;
  sub->t->on_message([inbox, &by_count, &by_bytes](TransportMessage&& m) {
    if (m.payload == "block-count") by_count.arrive_and_wait();
    if (m.payload == "block-bytes") by_bytes.arrive_and_wait();
    inbox->add(std::move(m));
  });
  REQUIRE(sub->t->connect(1s).is_ok());
  REQUIRE(sub->t->subscribe("m/#", 1).is_ok());
  REQUIRE(sub->t->subscribe("sentinel", 1).is_ok());
  auto pub = connect_peer(broker, options_for("pub"));

  // The subscriber's thread holds the first message; the queue behind it fills up.
  REQUIRE(pub->t->publish("m/n", "block-count", 1, false).is_ok());
  REQUIRE(by_count.wait_arrived());
  for (int i = 0; i < 8; ++i) REQUIRE(pub->t->publish("m/n", std::to_string(i), 1, false).is_ok());
  CHECK(broker->dropped_messages() == 3u);
  by_count.open();
  REQUIRE(sub->inbox.wait_for_count("m/n", 6, kDeadline).size() == 6u);
  pub->settle(*sub);  // the queue is empty again: nothing more was behind the five
  CHECK(payloads(sub->inbox.wait_for_count("m/n", 6, kDeadline)) ==
        std::vector<std::string>{"block-count", "0", "1", "2", "3", "4"});

  REQUIRE(pub->t->publish("m/n", "block-bytes", 1, false).is_ok());
  REQUIRE(by_bytes.wait_arrived());
  REQUIRE(pub->t->publish("m/big", std::string(60, 'a'), 1, false).is_ok());
  REQUIRE(pub->t->publish("m/big", std::string(60, 'b'), 1, false).is_ok());
  CHECK(broker->dropped_messages() == 4u);
  by_bytes.open();
  REQUIRE(sub->inbox.wait_for_count("m/big", 1, kDeadline).size() == 1u);
  pub->settle(*sub);
  auto big = sub->inbox.wait_for_count("m/big", 1, kDeadline);
  REQUIRE(big.size() == 1u);
  CHECK(big[0].payload == std::string(60, 'a'));
}

TEST_CASE("Loopback lifetime: the broker lives as long as a transport, threads end with them",
          "[unit][core][loopback]") {
  auto broker = std::make_shared<LoopbackBroker>();
  auto sub = connect_peer(broker, options_for("sub"), {"l/#"});
  auto pub = connect_peer(broker, options_for("pub"));
  auto idle = open_peer(broker, options_for("idle"));  // never connected
  std::weak_ptr<LoopbackBroker> weak = broker;
  broker.reset();
  REQUIRE_FALSE(weak.expired());
  REQUIRE(pub->t->publish("l/x", "still", 1, false).is_ok());
  REQUIRE(sub->inbox.wait_for_payload("l/x", "still", kDeadline));

  // A transport reconnecting against a broker that is down ends at once too.
  weak.lock()->set_available(false);
  REQUIRE(pub->inbox.wait_connection(false, 1, kDeadline));
  const auto start = std::chrono::steady_clock::now();
  pub.reset();
  sub.reset();
  idle.reset();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(weak.expired());
}
