// LoopbackBroker and LoopbackTransport: the Transport seam in memory (contracts in the header).
//
// The broker routes a publish at once, on the publisher's thread, into the delivery queue of every
// matching connection; each transport's delivery thread empties its queue into the callbacks and,
// after a lost link, reconnects with backoff. A connection is a Link the broker holds while it is
// live; the queue (Core) is shared by the link and its transport, so neither outlives the other's
// memory.
#include "ota/core/loopback_transport.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "ota/core/log.hpp"

namespace ota {
namespace {

constexpr const char* kLog = "loopback";
using std::chrono::milliseconds;

std::vector<std::string_view> levels(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t begin = 0;;) {
    const size_t slash = s.find('/', begin);
    out.push_back(s.substr(begin, slash == std::string_view::npos ? std::string_view::npos : slash - begin));
    if (slash == std::string_view::npos) return out;
    begin = slash + 1;
  }
}

bool valid_topic(const std::string& topic) {
  return !topic.empty() && topic.size() <= 65535 && topic.find_first_of("+#") == std::string::npos;
}

// '+' and '#' stand alone in their level, '#' only in the last one.
bool valid_filter(const std::string& filter) {
  if (filter.empty() || filter.size() > 65535) return false;
  const auto ls = levels(filter);
  for (size_t i = 0; i < ls.size(); ++i) {
    if (ls[i].find_first_of("+#") == std::string_view::npos) continue;
    if (ls[i].size() != 1 || (ls[i] == "#" && i + 1 != ls.size())) return false;
  }
  return true;
}

bool topic_matches(const std::string& filter, const std::string& topic) {
  if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  const auto f = levels(filter);
  const auto t = levels(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;
    if (i >= t.size() || (f[i] != "+" && f[i] != t[i])) return false;
  }
  return f.size() == t.size();
}

struct Event {
  enum Kind { kMessage, kUp, kDown } kind;
  TransportMessage message;
};

// A transport's delivery queue, written by the broker, read by the transport's thread.
struct Core {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  size_t queued_messages = 0;
  size_t queued_bytes = 0;
  uint64_t link = 0;  // the live link's id, 0 when none
  bool stop = false;
  std::atomic<bool> connected{false};
};

}  // namespace

struct LoopbackBroker::Impl {
  struct Link {
    uint64_t id = 0;
    std::string client_id;
    std::optional<WillMessage> will;
    std::shared_ptr<Core> core;
    std::map<std::string, int> subscriptions;
  };

  explicit Impl(LoopbackLimits l) : limits(l) {}

  LoopbackLimits limits;
  mutable std::mutex mu;
  bool available = true;
  std::map<std::string, std::string> users;
  std::shared_ptr<const Interceptor> interceptor;
  std::map<std::string, std::shared_ptr<Link>> links;  // the live ones, by client id
  std::map<std::string, std::string> retained;
  uint64_t next_link = 1;
  uint64_t dropped = 0;

  bool live_locked(const Link& link) const {
    auto it = links.find(link.client_id);
    return it != links.end() && it->second.get() == &link;
  }

  void enqueue_locked(Link& link, Event&& e) {
    Core& c = *link.core;
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.link != link.id) return;
    if (e.kind == Event::kMessage) {
      const size_t n = e.message.payload.size();
      if (c.queued_messages >= limits.max_queued_messages || c.queued_bytes + n > limits.max_queued_bytes) {
        ++dropped;
        OTA_LOGW(kLog, "%s: queue full, %s dropped", link.client_id.c_str(), e.message.topic.c_str());
        return;
      }
      ++c.queued_messages;
      c.queued_bytes += n;
    }
    c.events.push_back(std::move(e));
    c.cv.notify_all();
  }

  void route_locked(const std::string& topic, const std::string& payload, bool retain, int copies) {
    if (retain && payload.empty()) retained.erase(topic);
    if (retain && !payload.empty()) retained[topic] = payload;
    for (auto& [id, link] : links) {
      const bool match = std::any_of(link->subscriptions.begin(), link->subscriptions.end(),
                                     [&](const auto& s) { return topic_matches(s.first, topic); });
      for (int i = 0; match && i < copies; ++i) {
        enqueue_locked(*link, Event{Event::kMessage, TransportMessage{topic, payload, false}});
      }
    }
  }

  void subscribe_locked(Link& link, const std::string& filter, int qos) {
    link.subscriptions[filter] = qos;
    for (const auto& [topic, payload] : retained) {
      if (topic_matches(filter, topic)) {
        enqueue_locked(link, Event{Event::kMessage, TransportMessage{topic, payload, true}});
      }
    }
  }

  // Ends a live link. Lost (not an orderly disconnect): its transport hears of it.
  void unlink_locked(const std::shared_ptr<Link>& link, bool lost) {
    links.erase(link->client_id);
    Core& c = *link->core;
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.link != link->id) return;
    c.link = 0;
    c.connected = false;
    // Clean session: what was queued for this connection goes with it.
    c.events.erase(std::remove_if(c.events.begin(), c.events.end(),
                                  [](const Event& e) { return e.kind == Event::kMessage; }),
                   c.events.end());
    c.queued_messages = c.queued_bytes = 0;
    if (lost) c.events.push_back(Event{Event::kDown, {}});
    c.cv.notify_all();
  }

  void send_will_locked(const Link& link) {
    if (link.will) route_locked(link.will->topic, link.will->payload, link.will->retain, 1);
  }

  Result<std::shared_ptr<Link>> attach(const TransportOptions& o, const std::shared_ptr<Core>& core,
                                       const std::vector<std::pair<std::string, int>>& subscriptions) {
    const std::string what = "connect to the loopback broker as " + o.client_id;
    if (o.client_id.empty()) return Status(Code::kInvalidArgument, what + ": empty client id");
    std::lock_guard<std::mutex> lock(mu);
    if (!available) return Status(Code::kUnavailable, what + ": broker unavailable");
    if (!users.empty()) {
      auto it = users.find(o.username);
      if (it == users.end() || it->second != o.password) {
        return Status(Code::kRejected, what + ": broker refused the connection (bad user name or password)");
      }
    }
    auto old = links.find(o.client_id);
    if (old != links.end()) {  // a takeover: the older connection is lost
      auto gone = old->second;
      unlink_locked(gone, true);
      send_will_locked(*gone);
    }
    auto link = std::make_shared<Link>();
    link->id = next_link++;
    link->client_id = o.client_id;
    link->will = o.will;
    link->core = core;
    {
      std::lock_guard<std::mutex> c(core->mu);
      core->link = link->id;
      core->connected = true;
      core->events.push_back(Event{Event::kUp, {}});
      core->cv.notify_all();
    }
    links[o.client_id] = link;
    for (const auto& [filter, qos] : subscriptions) subscribe_locked(*link, filter, qos);
    return link;
  }

  // kUnavailable when the link is no longer live: the message did not reach the broker.
  Status publish(Link& from, const std::string& topic, const std::string& payload, bool retain) {
    Action action = Action::kPass;
    std::shared_ptr<const Interceptor> intercept;
    {
      std::lock_guard<std::mutex> lock(mu);
      intercept = interceptor;
    }
    if (intercept) action = (*intercept)(from.client_id, TransportMessage{topic, payload, retain});
    std::lock_guard<std::mutex> lock(mu);
    if (!live_locked(from)) return Status(Code::kUnavailable, "publish " + topic + ": connection lost");
    if (action != Action::kDrop) route_locked(topic, payload, retain, action == Action::kDuplicate ? 2 : 1);
    return Status::ok();
  }
};

LoopbackBroker::LoopbackBroker(LoopbackLimits limits) : impl_(std::make_unique<Impl>(limits)) {}
LoopbackBroker::~LoopbackBroker() = default;

void LoopbackBroker::set_users(std::map<std::string, std::string> users) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->users = std::move(users);
}

void LoopbackBroker::set_interceptor(Interceptor interceptor) {
  auto shared = interceptor ? std::make_shared<const Interceptor>(std::move(interceptor)) : nullptr;
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->interceptor = std::move(shared);
}

void LoopbackBroker::set_available(bool available) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->available = available;
  if (available) return;
  std::vector<std::shared_ptr<Impl::Link>> gone;
  for (const auto& [id, link] : impl_->links) gone.push_back(link);
  for (const auto& link : gone) impl_->unlink_locked(link, true);
  for (const auto& link : gone) impl_->send_will_locked(*link);
}

bool LoopbackBroker::drop(const std::string& client_id) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->links.find(client_id);
  if (it == impl_->links.end()) return false;
  auto link = it->second;
  impl_->unlink_locked(link, true);
  impl_->send_will_locked(*link);
  return true;
}

bool LoopbackBroker::connected(const std::string& client_id) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->links.count(client_id) > 0;
}

std::optional<std::string> LoopbackBroker::retained(const std::string& topic) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->retained.find(topic);
  if (it == impl_->retained.end()) return std::nullopt;
  return it->second;
}

uint64_t LoopbackBroker::dropped_messages() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->dropped;
}

namespace {

using Link = LoopbackBroker::Impl::Link;

class LoopbackTransport : public Transport {
 public:
  LoopbackTransport(std::shared_ptr<LoopbackBroker> owner, LoopbackBroker::Impl* broker, TransportOptions o)
      : owner_(std::move(owner)), broker_(broker), o_(std::move(o)) {}

  ~LoopbackTransport() override {
    stop_thread();  // first: the loss below reaches no callback of an owner being destroyed
    std::lock_guard<std::mutex> send(send_mu_);
    if (link_) unlink(true);
  }

  void on_message(MessageHandler handler) override { message_handler_ = std::move(handler); }
  void on_connection(ConnectionHandler handler) override { connection_handler_ = std::move(handler); }

  Status connect(milliseconds /*timeout*/) override {
    if (running_)
      return connected() ? Status::ok() : Status(Code::kUnavailable, o_.client_id + ": reconnecting");
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        return Status(Code::kInvalidArgument, "connect from a message callback after disconnect");
      }
      thread_.join();
    }
    {
      std::lock_guard<std::mutex> lock(core_->mu);
      core_->stop = false;
    }
    OTA_RETURN_IF_ERROR(attach());
    running_ = true;
    thread_ = std::thread([this] { run(); });
    return Status::ok();
  }

  Status subscribe(const std::string& filter, int qos) override {
    if (!valid_filter(filter) || qos < 0 || qos > 2) {
      return Status(Code::kInvalidArgument, "subscribe " + filter + ": not a valid topic filter or QoS");
    }
    std::lock_guard<std::mutex> send(send_mu_);
    auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                           [&](const auto& s) { return s.first == filter; });
    if (it == subscriptions_.end()) it = subscriptions_.insert(it, {filter, qos});
    it->second = qos;
    if (link_) {
      std::lock_guard<std::mutex> lock(broker_->mu);
      if (broker_->live_locked(*link_)) {
        broker_->subscribe_locked(*link_, filter, qos);
        return Status::ok();
      }
    }
    return Status(Code::kUnavailable, "subscribe " + filter + ": not connected (restored on reconnect)");
  }

  Status publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) override {
    if (!valid_topic(topic))
      return Status(Code::kInvalidArgument, "publish " + topic + ": not a valid topic");
    if (qos < 0 || qos > 2) return Status(Code::kInvalidArgument, "publish " + topic + ": QoS out of range");
    Outgoing out{topic, std::string(static_cast<const char*>(data), n), std::min(qos, 1), retain, true};
    std::lock_guard<std::mutex> send(send_mu_);
    if (link_ && connected() && outbox_.empty()) {
      if (broker_->publish(*link_, out.topic, out.payload, retain).is_ok() || out.qos == 0) {
        return Status::ok();  // a QoS 0 message lost with the link is gone, as on a socket
      }
      out.unsent = false;  // in flight when the link was lost: sent again after the reconnect
      outbox_.push_back(std::move(out));
      return Status::ok();
    }
    if (unsent_ >= static_cast<size_t>(std::max(0, o_.offline_buffer))) {
      return Status(Code::kUnavailable, "publish " + topic + ": disconnected and the offline buffer is full");
    }
    ++unsent_;
    outbox_.push_back(std::move(out));
    return Status::ok();
  }

  Status flush(milliseconds timeout) override {
    std::unique_lock<std::mutex> send(send_mu_);
    if (!flushed_cv_.wait_for(send, timeout, [&] { return outbox_.empty(); })) {
      return Status(Code::kTimeout,
                    "flush: " + std::to_string(outbox_.size()) + " messages wait for a connection");
    }
    return Status::ok();
  }

  void disconnect(milliseconds timeout) override {
    if (!running_) return;
    if (connected()) (void)flush(timeout);
    {
      std::lock_guard<std::mutex> lock(core_->mu);
      core_->stop = true;  // before the link ends: the delivery thread does not reconnect it
    }
    {
      std::lock_guard<std::mutex> send(send_mu_);
      if (link_) unlink(false);
    }
    stop_thread();
  }

  bool connected() const override { return core_->connected; }

 private:
  struct Outgoing {
    std::string topic;
    std::string payload;
    int qos;
    bool retain;
    bool unsent;  // published while disconnected: counts against the offline buffer
  };

  // REQUIRES: send_mu_ held.
  void unlink(bool lost) {
    std::lock_guard<std::mutex> lock(broker_->mu);
    if (broker_->live_locked(*link_)) {
      broker_->unlink_locked(link_, lost);
      if (lost) broker_->send_will_locked(*link_);
    }
    link_.reset();
  }

  // A new link with the subscriptions, then what waits in the outbox, in order, before any later
  // publish (they wait for send_mu_).
  Status attach() {
    std::lock_guard<std::mutex> send(send_mu_);
    {
      std::lock_guard<std::mutex> lock(core_->mu);
      if (core_->stop) return Status(Code::kAborted, o_.client_id + ": stopping");
    }
    auto link = broker_->attach(o_, core_, subscriptions_);
    if (!link.is_ok()) return link.status();
    link_ = std::move(*link);
    while (!outbox_.empty()) {
      Outgoing& out = outbox_.front();
      if (out.unsent) --unsent_;
      out.unsent = false;
      if (!broker_->publish(*link_, out.topic, out.payload, out.retain).is_ok() && out.qos > 0) break;
      outbox_.pop_front();
    }
    flushed_cv_.notify_all();
    return Status::ok();
  }

  void run() {
    std::unique_lock<std::mutex> lock(core_->mu);
    for (;;) {
      core_->cv.wait(lock, [&] { return core_->stop || !core_->events.empty(); });
      if (core_->stop) return;
      Event e = std::move(core_->events.front());
      core_->events.pop_front();
      if (e.kind == Event::kMessage) {
        --core_->queued_messages;
        core_->queued_bytes -= e.message.payload.size();
      }
      lock.unlock();
      dispatch(std::move(e));
      lock.lock();
    }
  }

  void dispatch(Event&& e) {
    try {
      if (e.kind == Event::kMessage && message_handler_) message_handler_(std::move(e.message));
      if (e.kind != Event::kMessage && connection_handler_) connection_handler_(e.kind == Event::kUp);
    } catch (...) {
      OTA_LOGE(kLog, "%s: a callback threw", o_.client_id.c_str());
    }
    if (e.kind == Event::kDown) reconnect();
  }

  // After a lost link: tries again with backoff until connected or stopped.
  void reconnect() {
    milliseconds delay = std::max(o_.reconnect_min, milliseconds(1));
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(core_->mu);
        if (core_->cv.wait_for(lock, delay, [&] { return core_->stop; })) return;
      }
      const Status st = attach();
      if (st.is_ok() || st.code() == Code::kAborted) return;
      OTA_LOGD(kLog, "%s: reconnect: %s", o_.client_id.c_str(), st.to_string().c_str());
      delay = std::min(delay * 2, std::max(o_.reconnect_max, milliseconds(1)));
    }
  }

  void stop_thread() {
    {
      std::lock_guard<std::mutex> lock(core_->mu);
      core_->stop = true;
    }
    core_->cv.notify_all();
    // disconnect() from a callback: the thread ends once that callback returns.
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    running_ = false;
  }

  const std::shared_ptr<LoopbackBroker> owner_;  // keeps broker_ alive
  LoopbackBroker::Impl* const broker_;
  const TransportOptions o_;
  MessageHandler message_handler_;
  ConnectionHandler connection_handler_;
  const std::shared_ptr<Core> core_ = std::make_shared<Core>();
  std::atomic<bool> running_{false};
  std::thread thread_;

  std::mutex send_mu_;  // one publisher at a time: per-topic order; guards what follows
  std::condition_variable flushed_cv_;
  std::shared_ptr<Link> link_;
  std::vector<std::pair<std::string, int>> subscriptions_;
  std::deque<Outgoing> outbox_;
  size_t unsent_ = 0;
};

}  // namespace

std::unique_ptr<Transport> make_loopback_transport(std::shared_ptr<LoopbackBroker> broker,
                                                   TransportOptions options) {
  if (!broker) throw std::invalid_argument("make_loopback_transport: no broker");
  LoopbackBroker::Impl* impl = broker->impl_.get();
  return std::make_unique<LoopbackTransport>(std::move(broker), impl, std::move(options));
}

}  // namespace ota
