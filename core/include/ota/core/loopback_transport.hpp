// LoopbackBroker: an MQTT broker in memory, and the Transport that connects to it. Unit tests of
// what talks through ota::Transport (the agent's and the campaign's state machines) run on it in
// milliseconds, without a Mosquitto, and its hooks play the faults a real broker cannot be made to
// play on cue: a lost link, a broker outage, a message lost or delivered twice.
//
//   auto broker = std::make_shared<ota::LoopbackBroker>();
//   ota::TransportOptions options;
//   options.client_id = "agent-ecu-a";      // uri, TLS, keepalive, MQTT version are ignored
//   auto agent = ota::make_loopback_transport(broker, options);
//   agent->connect(1s);
//   broker->drop("agent-ecu-a");            // link lost: its Will goes out, it reconnects
//
// What the transport keeps of the MQTT clients' contracts (transport.hpp, native_transport.cpp):
// - callbacks on the transport's own delivery thread, one at a time, in arrival order;
//   on_connection(true) after every (re)connect, once the subscriptions are restored (retained
//   copies they bring arrive after it); on_connection(false) on a lost link, never on disconnect();
// - per publisher, per topic order; QoS 0 and 1 (2 is taken as 1); a QoS 1 message the broker had
//   not taken when the link was lost is sent again after the reconnect, a QoS 0 one is lost;
// - publishes made while disconnected wait, up to options.offline_buffer (then kUnavailable), and
//   go after the reconnect, before anything published later; flush() waits for them;
// - subscriptions are restored after every reconnect; reconnects use the options' backoff
//   (reconnect_min doubling up to reconnect_max; tests set reconnect_min to a millisecond);
// - clean sessions: what the broker had queued for a connection that is lost is lost with it.
// Unlike a socket, a publish while connected is routed before publish() returns: it is then in the
// queue of every matching connection and in the retained store, which keeps tests deterministic.
// What the broker keeps of MQTT 3.1.1 and Mosquitto 2.0:
// - filters with '+' and '#' ("a/#" matches "a"); a filter starting with a wildcard matches no
//   topic starting with '$';
// - retained messages: an empty retained payload clears the topic; a subscribe brings the retained
//   copies it matches with retained=true, live messages arrive with retained=false;
// - the Last Will is published when a link is lost (drop(), a client id taken over by a newer
//   connection, a transport destroyed while connected without disconnect(), an outage), never
//   after disconnect();
// - an outage (set_available(false)) is a broker shutdown as Mosquitto does it: every connection
//   is dropped, their Wills are published (no subscriber is left to see them live, retained ones
//   are kept), retained messages survive (persistence); connect() fails with kUnavailable until
//   set_available(true);
// - with a user table (set_users), a connection whose username/password is not in it is kRejected.
// What differs from a real broker:
// - no ACL: every connection may publish and subscribe to anything; subscribe never answers 0x80;
// - one copy per message and connection, however many of its subscriptions match;
// - the receiving side sees no QoS: nothing is lost between broker and subscriber in memory, except
//   beyond the per-connection queue cap (LoopbackLimits), where messages are dropped and counted;
// - no keepalive, no packet size limit, no DUP flag a receiver could see; the client id must not be
//   empty (no id is assigned); connect() answers at once whatever its timeout.
//
// Threads and ownership: the broker is held by shared_ptr by whoever creates it and by every
// transport made on it, so either may be destroyed first. The broker has no thread; each transport
// has one delivery thread, started by connect() and joined by disconnect() and the destructor.
// Every broker method is thread-safe and may be called from a transport's callback. Lock order:
// a transport's publish lock, then the broker's, then a transport's queue lock; callbacks run with
// none held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ota/core/transport.hpp"

namespace ota {

// Per connection, what the broker queues for its delivery thread. Beyond either cap a message for
// that connection is dropped (logged, counted in dropped_messages()): Mosquitto's
// max_queued_messages default and a bound on memory for large chunks.
struct LoopbackLimits {
  size_t max_queued_messages = 1000;
  size_t max_queued_bytes = size_t{64} << 20;
};

class LoopbackBroker {
 public:
  // What becomes of a message the interceptor saw: routed, discarded (as the broker's ACL does: the
  // publisher takes it as delivered), or routed twice (a QoS 1 redelivery).
  enum class Action { kPass, kDrop, kDuplicate };
  // Called for every message a transport hands to the broker (re-sends after a reconnect included,
  // Wills excluded), on the publisher's thread, before routing; message.retained is the publish's
  // retain flag. It may call drop(from_client): the message is then lost in transit with the link
  // (QoS 1: sent again after the reconnect). It must not publish through the transport it was
  // called for, nor throw.
  using Interceptor = std::function<Action(const std::string& from_client, const TransportMessage& message)>;

  explicit LoopbackBroker(LoopbackLimits limits = LoopbackLimits());
  ~LoopbackBroker();
  LoopbackBroker(const LoopbackBroker&) = delete;
  LoopbackBroker& operator=(const LoopbackBroker&) = delete;

  // username -> password. Empty (the default): anyone connects. Applies to later connects.
  void set_users(std::map<std::string, std::string> users);
  // Null (the default): every message passes.
  void set_interceptor(Interceptor interceptor);
  // false: an outage (see above); true: connects succeed again.
  void set_available(bool available);
  // The link of `client_id` is lost (a crash or a cut cable): its Will is published, its transport
  // sees on_connection(false) and reconnects. False when no such client is connected.
  bool drop(const std::string& client_id);

  bool connected(const std::string& client_id) const;
  // The retained message of a topic, if any.
  std::optional<std::string> retained(const std::string& topic) const;
  // Messages dropped because a connection's queue was full, since the broker was made.
  uint64_t dropped_messages() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  friend std::unique_ptr<Transport> make_loopback_transport(std::shared_ptr<LoopbackBroker> broker,
                                                            TransportOptions options);
};

// A transport connecting to `broker` (not null: std::invalid_argument otherwise) with the
// options' client_id, username, password, will, backoff and offline_buffer. Destroying it while
// connected without disconnect() is a crash for the broker: the Will is published. It must not be
// destroyed from its own callback.
std::unique_ptr<Transport> make_loopback_transport(std::shared_ptr<LoopbackBroker> broker,
                                                   TransportOptions options);

}  // namespace ota
