// NativeTransport: the Transport seam as an MQTT 3.1.1 client of its own over a TCP socket.
//
// Why it exists: on the data path (chunks of 64-512 KiB at hundreds of MB/s) Paho spends 1-1.8
// CPU-s per GB on each side (bench/transfer/PROFILE.md). This client receives a payload with one
// copy (most of it read by the kernel straight into the message's string) and sends a packet with
// one write, and sets TCP_NODELAY.
//
// Threads: a reader thread per connection receives, dispatches callbacks in arrival order, answers
// PUBACKs after the callback returns (together with what the callback published, in one write),
// and reconnects with backoff; a keeper thread sends PINGREQ
// when the connection is idle and shuts the socket down when the broker stops answering. Any
// thread may publish: a packet is written whole under send_mu_ by the caller (blocking, bounded by
// SO_SNDTIMEO). A QoS 1 packet is kept until its PUBACK and sent again (DUP) after a reconnect;
// packets published while disconnected wait in the same outbox, up to options.offline_buffer.
//
// Locks: send_mu_ (one writer on the socket) before state_mu_ (outbox, subscriptions, ids); fd_mu_
// only guards the descriptor against being closed while the keeper shuts it down.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "mqtt_wire.hpp"
#include "ota/core/log.hpp"
#include "ota/core/transport.hpp"

namespace ota {
namespace {

constexpr const char* kLog = "mqtt";
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A payload larger than this is refused: agents promise bounded memory, and nothing the vehicle's
// broker carries (chunks of at most a few MiB, commands, reports) comes near it.
constexpr size_t kMaxIncomingPacket = 16u << 20;
// Reads for headers and small packets go through this buffer; a large payload is read straight
// into its message once its header is parsed.
constexpr size_t kStagingRead = 16u << 10;
constexpr size_t kMaxControlPacket = 4096;
// Packets a message callback publishes wait for its PUBACK up to this many bytes (one write, one
// wake-up of the broker, instead of two).
constexpr size_t kCorkMax = 64u << 10;
constexpr size_t kStagingCapacity = kStagingRead + mqtt::kMaxFixedHeader + 2 + mqtt::kMaxString + 2;

int64_t now_ms() { return std::chrono::duration_cast<milliseconds>(Clock::now().time_since_epoch()).count(); }

std::string errno_text(int err) { return std::strerror(err); }

struct Endpoint {
  std::string host;
  std::string port;
};

// The length of the uri's plain-TCP scheme ("tcp://", "mqtt://"), 0 for any other.
size_t plain_scheme_length(const std::string& uri) {
  for (const char* scheme : {"tcp://", "mqtt://"}) {
    if (uri.rfind(scheme, 0) == 0) return std::strlen(scheme);
  }
  return 0;
}

Result<Endpoint> parse_uri(const std::string& uri) {
  const size_t scheme = plain_scheme_length(uri);
  std::string rest = scheme > 0 ? uri.substr(scheme) : std::string();
  if (rest.empty()) {
    return Status(Code::kInvalidArgument,
                  uri + ": the native MQTT client speaks tcp:// only (ssl:// and MQTT 5 go through Paho)");
  }
  Endpoint e;
  if (!rest.empty() && rest[0] == '[') {  // [v6 address]:port
    auto close = rest.find(']');
    if (close == std::string::npos)
      return Status(Code::kInvalidArgument, uri + ": unterminated IPv6 address");
    e.host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    e.port = rest.rfind(':', 0) == 0 ? rest.substr(1) : "1883";
  } else {
    auto colon = rest.rfind(':');
    e.host = rest.substr(0, colon);
    e.port = colon == std::string::npos ? "1883" : rest.substr(colon + 1);
  }
  if (e.host.empty() || e.port.empty()) return Status(Code::kInvalidArgument, uri + ": no host or port");
  return e;
}

// Waits for fd to be readable (events = POLLIN) or writable until the deadline, or until *stop
// turns true (checked every 50 ms): kAborted then.
Status wait_fd(int fd, short events, Clock::time_point deadline, const std::string& what,
               const std::atomic<bool>* stop) {
  for (;;) {
    if (stop != nullptr && stop->load()) return Status(Code::kAborted, what + ": the transport is stopping");
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Status(Code::kTimeout, what + ": no answer in time");
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 50)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status(Code::kUnavailable, what + ": poll: " + errno_text(errno));
    if (r > 0) return Status::ok();
  }
}

// Reads exactly n bytes before the deadline (the handshake only).
Status recv_exact(int fd, uint8_t* p, size_t n, Clock::time_point deadline, const std::string& what,
                  const std::atomic<bool>* stop) {
  while (n > 0) {
    OTA_RETURN_IF_ERROR(wait_fd(fd, POLLIN, deadline, what, stop));
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) return Status(Code::kUnavailable, what + ": " + errno_text(errno));
    if (r == 0) return Status(Code::kUnavailable, what + ": the broker closed the connection");
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::ok();
}

// A packet on the wire: head, then body[offset..] when a payload was taken over without copying.
struct Packet {
  std::string head;
  std::shared_ptr<const std::string> body;
  size_t offset = 0;

  size_t size() const { return head.size() + (body ? body->size() - offset : 0); }
  void append_to(std::string& out) const {
    out += head;
    if (body) out.append(*body, offset, std::string::npos);
  }
};

// Sends a packet whole (one sendmsg when the socket takes it); false on error (errno set).
// MSG_NOSIGNAL: a closed peer is an error, not a signal.
bool send_packet(int fd, const Packet& pkt) {
  iovec v[2];
  int count = 0;
  if (!pkt.head.empty()) v[count++] = {const_cast<char*>(pkt.head.data()), pkt.head.size()};
  if (pkt.body && pkt.body->size() > pkt.offset) {
    v[count++] = {const_cast<char*>(pkt.body->data() + pkt.offset), pkt.body->size() - pkt.offset};
  }
  iovec* iov = v;
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    auto left = static_cast<size_t>(w);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

class NativeTransport : public Transport {
 public:
  explicit NativeTransport(TransportOptions options) : o_(std::move(options)) {}

  ~NativeTransport() override {
    if (running_) disconnect(milliseconds(2000));
    stop_threads();  // REQUIRES: not on the reader thread (a transport is not destroyed from its callback)
  }

  void on_message(MessageHandler handler) override { message_handler_ = std::move(handler); }
  void on_connection(ConnectionHandler handler) override { connection_handler_ = std::move(handler); }

  Status connect(milliseconds timeout) override {
    if (running_) return connected_ ? Status::ok() : Status(Code::kUnavailable, o_.uri + ": reconnecting");
    if (reader_.joinable()) {
      if (reader_.get_id() == std::this_thread::get_id()) {
        return Status(Code::kInvalidArgument, "connect from a message callback after disconnect");
      }
      reader_.join();
    }
    auto fd = open_session(timeout);
    if (!fd.is_ok()) return fd.status();
    stopping_ = false;
    running_ = true;
    restore(*fd);  // what was published before connecting goes now
    reader_ = std::thread([this] { reader_main(); });
    keeper_ = std::thread([this] { keeper_main(); });
    return Status::ok();
  }

  Status subscribe(const std::string& filter, int qos) override {
    uint16_t id = 0;
    std::shared_ptr<PendingSubscribe> pending;
    {
      std::lock_guard<std::mutex> send(send_mu_);
      Result<std::string> pkt =
          Status(Code::kUnavailable, "subscribe " + filter + ": 65535 packets unacknowledged");
      {
        std::lock_guard<std::mutex> lock(state_mu_);
        id = next_id_locked();
        if (id == 0) return pkt.status();
        pkt = mqtt::subscribe_packet(id, filter, qos);
        if (!pkt.is_ok()) return pkt.status();  // a filter MQTT cannot carry is not kept either
        subscriptions_.emplace_back(filter, qos);
        pending = std::make_shared<PendingSubscribe>();
        pending_subscribes_[id] = pending;
      }
      if (!connected_) {
        drop_pending_subscribe(id);
        return Status(Code::kUnavailable, "subscribe " + filter + ": not connected (restored on reconnect)");
      }
      if (!send_locked(Packet{std::move(*pkt), nullptr, 0})) {
        drop_pending_subscribe(id);
        return Status(Code::kUnavailable, "subscribe " + filter + ": " + errno_text(errno));
      }
    }
    // The reader thread delivers the SUBACK: waiting for it there would deadlock.
    if (std::this_thread::get_id() == reader_id_) {
      drop_pending_subscribe(id);
      return Status::ok();
    }
    std::unique_lock<std::mutex> lock(state_mu_);
    bool answered = state_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return pending->done; });
    pending_subscribes_.erase(id);
    if (!answered) return Status(Code::kTimeout, "subscribe " + filter + ": no SUBACK in time");
    if (!pending->status.is_ok()) return pending->status;
    // A broker answers 0x80 (failure) when it refuses the filter (Mosquitto 2.0 with its
    // dynamic-security plugin does; with an ACL file it grants and filters at delivery).
    if (pending->granted.empty() || pending->granted[0] == 0x80) {
      return Status(Code::kRejected, "subscribe " + filter + ": refused by broker");
    }
    return Status::ok();
  }

  Status publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) override {
    Packet pkt;
    pkt.head.reserve(mqtt::kMaxFixedHeader + 4 + topic.size() + std::min(n, kMaxIncomingPacket));
    return publish_packet(topic, std::move(pkt), data, n, qos, retain);
  }

  Status publish_owned(const std::string& topic, std::string&& buffer, size_t offset, int qos,
                       bool retain) override {
    if (offset > buffer.size())
      return Status(Code::kInvalidArgument, "publish " + topic + ": offset past the buffer");
    Packet pkt;
    pkt.offset = offset;
    pkt.body = std::make_shared<const std::string>(std::move(buffer));
    const size_t n = pkt.body->size() - offset;
    return publish_packet(topic, std::move(pkt), nullptr, n, qos, retain);
  }

  Status flush(milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(state_mu_);
    if (!state_cv_.wait_for(lock, timeout, [&] { return outbox_.empty(); })) {
      return Status(Code::kTimeout, "flush: " + std::to_string(outbox_.size()) + " deliveries pending");
    }
    return Status::ok();
  }

  void disconnect(milliseconds timeout) override {
    if (!running_) return;
    if (connected_) (void)flush(timeout);
    {
      std::lock_guard<std::mutex> send(send_mu_);
      stopping_ = true;
      if (connected_) (void)send_locked(Packet{mqtt::disconnect_packet(), nullptr, 0});
      connected_ = false;
    }
    shutdown_socket();
    stop_threads();
  }

  bool connected() const override { return connected_; }

 private:
  struct Outgoing {
    std::shared_ptr<const Packet> packet;
    uint16_t id = 0;      // 0: QoS 0, dropped once written
    bool unsent = false;  // published while disconnected: never written yet
  };
  struct PendingSubscribe {
    bool done = false;
    Status status;
    std::vector<uint8_t> granted;
  };

  // A PUBLISH: the header in pkt.head, then either a copy of data[0..n) appended to it or, when
  // data is null, pkt.body[pkt.offset..] (n bytes) as it is.
  Status publish_packet(const std::string& topic, Packet&& pkt, const void* data, size_t n, int qos,
                        bool retain) {
    if (qos == 2) qos = 1;  // QoS 2 is not spoken; nothing in the project asks for it
    std::lock_guard<std::mutex> send(send_mu_);
    uint16_t id = 0;
    if (qos > 0) {
      std::lock_guard<std::mutex> lock(state_mu_);
      id = next_id_locked();  // 0 when every id is taken: refused below
    }
    Status st = mqtt::append_publish_header(pkt.head, topic, qos, retain, false, id, n);
    if (!st.is_ok()) return st.with_context("publish " + topic);
    if (data != nullptr) pkt.head.append(static_cast<const char*>(data), n);
    auto shared = std::make_shared<const Packet>(std::move(pkt));
    if (qos > 0 || !connected_) {
      std::lock_guard<std::mutex> lock(state_mu_);
      if (qos > 0 && id == 0)
        return Status(Code::kUnavailable, "publish " + topic + ": 65535 messages unacknowledged");
      if (!connected_ && unsent_ >= static_cast<size_t>(std::max(0, o_.offline_buffer))) {
        return Status(Code::kUnavailable,
                      "publish " + topic + ": disconnected and the offline buffer is full");
      }
      Outgoing out{shared, id, !connected_};
      if (out.unsent) ++unsent_;
      outbox_.emplace(next_seq_++, out);
      if (id != 0) seq_of_id_[id] = next_seq_ - 1;
    }
    if (!connected_) return Status::ok();
    const bool on_reader = std::this_thread::get_id() == reader_id_;
    if (on_reader && corking_ && shared->size() < kCorkMax) {
      // Published from a message callback: goes out with the PUBACK after it, in one write.
      shared->append_to(cork_);
      if (cork_.size() < kCorkMax) return Status::ok();
      shared = std::make_shared<const Packet>(Packet{std::move(cork_), nullptr, 0});
      cork_.clear();
    } else if (on_reader && !cork_.empty()) {
      (void)send_locked(Packet{std::move(cork_), nullptr, 0});  // keeps the callback's order
      cork_.clear();
    }
    if (!send_locked(*shared)) {
      // The reader sees the broken socket too and reconnects; a QoS 1 packet goes again then.
      OTA_LOGW(kLog, "%s: publish %s: %s", o_.client_id.c_str(), topic.c_str(), errno_text(errno).c_str());
    }
    return Status::ok();
  }

  // TCP connect, CONNECT, CONNACK, all before the deadline. Returns the connected socket.
  Result<int> open_session(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    const std::string what = "connect to " + o_.uri + (o_.username.empty() ? "" : " as " + o_.username);
    auto ep = parse_uri(o_.uri);
    if (!ep.is_ok()) return ep.status();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int gai = ::getaddrinfo(ep->host.c_str(), ep->port.c_str(), &hints, &res);
    if (gai != 0) return Status(Code::kUnavailable, what + ": " + ::gai_strerror(gai));
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> res_guard(res, ::freeaddrinfo);
    Status last(Code::kUnavailable, what + ": no address");
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
      if (fd.get() < 0) {
        last = Status(Code::kUnavailable, what + ": socket: " + errno_text(errno));
        continue;
      }
      if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = Status(Code::kUnavailable, what + ": " + errno_text(errno));
        continue;
      }
      Status st = wait_fd(fd.get(), POLLOUT, deadline, what, &stopping_);
      if (!st.is_ok()) return st;
      int err = 0;
      socklen_t len = sizeof err;
      (void)::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = Status(Code::kUnavailable, what + ": " + errno_text(err));
        continue;
      }
      auto session = handshake(fd.get(), deadline, what);
      if (!session.is_ok()) return session;
      return fd.release();
    }
    return last;
  }

  Status handshake(int fd, Clock::time_point deadline, const std::string& what) {
    // Blocking from here on: writes wait for room (bounded by SO_SNDTIMEO), the reader blocks in recv.
    int flags = ::fcntl(fd, F_GETFL);
    (void)::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const auto send_timeout = std::max<std::chrono::seconds>(o_.keepalive * 2, std::chrono::seconds(2));
    timeval tv{static_cast<time_t>(send_timeout.count()), 0};
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    mqtt::ConnectFields f;
    f.client_id = o_.client_id;
    f.username = o_.username;
    f.password = o_.password;
    f.keepalive_s = static_cast<uint16_t>(std::min<int64_t>(o_.keepalive.count(), 65535));
    f.clean_session = true;
    f.will = o_.will;
    auto pkt = mqtt::connect_packet(f);
    if (!pkt.is_ok()) return pkt.status().with_context(what);
    if (!send_packet(fd, Packet{std::move(*pkt), nullptr, 0})) {
      return Status(Code::kUnavailable, what + ": " + errno_text(errno));
    }
    uint8_t buf[4];
    OTA_RETURN_IF_ERROR(recv_exact(fd, buf, 2, deadline, what, &stopping_));
    auto h = mqtt::parse_fixed_header(buf, 2);
    if (!h.is_ok()) return h.status().with_context(what);
    if (!h->has_value() || (*h)->remaining != 2) return Status(Code::kCorrupt, what + ": malformed CONNACK");
    OTA_RETURN_IF_ERROR(recv_exact(fd, buf + 2, 2, deadline, what, &stopping_));
    auto rc = mqtt::parse_connack(**h, buf + 2, 2);
    if (!rc.is_ok()) return rc.status().with_context(what);
    if (*rc != 0) {
      const std::string reason = std::string(mqtt::connack_reason(*rc)) + ", code " + std::to_string(*rc);
      // 4 and 5: bad credentials or not authorised; 2: the client id is refused.
      const Code code = (*rc == 2 || *rc == 4 || *rc == 5) ? Code::kRejected : Code::kUnavailable;
      return Status(code, what + ": broker refused the connection (" + reason + ")");
    }
    return Status::ok();
  }

  // A packet id no unacknowledged PUBLISH or SUBSCRIBE holds; 0 when all are held.
  uint16_t next_id_locked() {
    if (seq_of_id_.size() + pending_subscribes_.size() >= 65535) return 0;
    for (;;) {
      if (++last_id_ == 0) last_id_ = 1;
      if (seq_of_id_.count(last_id_) == 0 && pending_subscribes_.count(last_id_) == 0) return last_id_;
    }
  }

  void drop_pending_subscribe(uint16_t id) {
    std::lock_guard<std::mutex> lock(state_mu_);
    pending_subscribes_.erase(id);
  }

  // REQUIRES: send_mu_ held and connected_.
  bool send_locked(const Packet& pkt) {
    int fd;
    {
      std::lock_guard<std::mutex> lock(fd_mu_);
      fd = fd_;
    }
    if (fd < 0) return false;
    last_sent_ms_ = now_ms();
    bool ok = send_packet(fd, pkt);
    if (!ok) {
      int err = errno;
      shutdown_socket();
      errno = err;
    }
    return ok;
  }

  void shutdown_socket() {
    std::lock_guard<std::mutex> lock(fd_mu_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

  void stop_threads() {
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    shutdown_socket();
    // disconnect() from a message callback: the reader ends once that callback returns.
    if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
    if (keeper_.joinable()) keeper_.join();
    std::lock_guard<std::mutex> lock(fd_mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    running_ = false;
  }

  // Sleeps until the duration passed or the transport stops; false when stopping.
  bool pause(milliseconds d) {
    std::unique_lock<std::mutex> lock(stop_mu_);
    return !stop_cv_.wait_for(lock, d, [&] { return stopping_.load(); });
  }

  void notify_connection(bool up) {
    if (!connection_handler_) return;
    try {
      connection_handler_(up);
    } catch (...) {
      OTA_LOGE(kLog, "%s: connection handler threw", o_.client_id.c_str());
    }
  }

  void reader_main() {
    reader_id_ = std::this_thread::get_id();
    notify_connection(true);
    milliseconds delay = o_.reconnect_min;
    while (!stopping_) {
      Status why = read_loop();
      if (silent_ms_ > 0) {
        why =
            Status(Code::kTimeout, "no packet from the broker for " + std::to_string(silent_ms_.exchange(0)) +
                                       " ms (twice the keepalive)");
      }
      shutdown_socket();  // a writer blocked on a full socket gives up now
      {
        std::lock_guard<std::mutex> send(send_mu_);
        connected_ = false;
        std::lock_guard<std::mutex> lock(fd_mu_);
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
      }
      fail_pending_subscribes(why);
      if (stopping_) break;
      OTA_LOGW(kLog, "%s: connection lost: %s", o_.client_id.c_str(), why.to_string().c_str());
      notify_connection(false);
      while (!stopping_) {
        if (!pause(delay)) break;
        auto fd = open_session(std::max<milliseconds>(milliseconds(5000), o_.keepalive));
        if (fd.is_ok() && stopping_) {
          ::close(*fd);  // disconnect() came while the broker answered
          break;
        }
        if (fd.is_ok()) {
          delay = o_.reconnect_min;
          restore(*fd);
          notify_connection(true);
          break;
        }
        OTA_LOGD(kLog, "%s: reconnect: %s", o_.client_id.c_str(), fd.status().to_string().c_str());
        delay = std::min(delay * 2, o_.reconnect_max);
      }
    }
  }

  // After a reconnect: the subscriptions again, then every packet of the outbox in order (QoS 1
  // ones already written once flagged DUP), before anyone else writes.
  void restore(int fd) {
    std::lock_guard<std::mutex> send(send_mu_);
    {
      std::lock_guard<std::mutex> lock(fd_mu_);
      fd_ = fd;
    }
    last_sent_ms_ = last_received_ms_ = now_ms();
    std::vector<std::shared_ptr<const Packet>> packets;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      for (const auto& [filter, qos] : subscriptions_) {
        const uint16_t id = next_id_locked();
        if (id == 0) break;
        auto pkt = mqtt::subscribe_packet(id, filter, qos);
        if (pkt.is_ok())
          packets.push_back(std::make_shared<const Packet>(Packet{std::move(*pkt), nullptr, 0}));
      }
      for (auto it = outbox_.begin(); it != outbox_.end();) {
        Outgoing& out = it->second;
        if (out.id != 0 && !out.unsent) {
          Packet dup = *out.packet;  // the header is copied, a body taken over is shared
          mqtt::set_publish_dup(dup.head);
          out.packet = std::make_shared<const Packet>(std::move(dup));
        }
        packets.push_back(out.packet);
        if (out.unsent) --unsent_;
        out.unsent = false;
        if (out.id == 0) {
          it = outbox_.erase(it);
        } else {
          ++it;
        }
      }
    }
    state_cv_.notify_all();
    connected_ = true;
    for (const auto& pkt : packets) {
      if (!send_locked(*pkt)) break;  // the reader sees the broken socket and starts over
    }
  }

  void fail_pending_subscribes(const Status& why) {
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      for (auto& [id, pending] : pending_subscribes_) {
        pending->done = true;
        pending->status = Status(Code::kUnavailable, "connection lost before SUBACK: " + why.message());
      }
    }
    state_cv_.notify_all();
  }

  // Receives and dispatches until the connection ends; returns why it ended.
  Status read_loop() {
    int fd;
    {
      std::lock_guard<std::mutex> lock(fd_mu_);
      fd = fd_;
    }
    if (fd < 0) return Status(Code::kUnavailable, "no socket");
    std::vector<uint8_t> buf(kStagingCapacity);
    size_t begin = 0;
    size_t end = 0;
    // Makes at least `need` bytes available at buf[begin..end).
    auto fill = [&](size_t need) -> Status {
      while (end - begin < need) {
        if (begin > 0 && buf.size() - begin < need + kStagingRead) {
          std::memmove(buf.data(), buf.data() + begin, end - begin);
          end -= begin;
          begin = 0;
        }
        size_t room = std::min(buf.size() - end, std::max(kStagingRead, need - (end - begin)));
        ssize_t r = ::recv(fd, buf.data() + end, room, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return Status(Code::kUnavailable, "recv: " + errno_text(errno));
        if (r == 0) return Status(Code::kUnavailable, "the broker closed the connection");
        last_received_ms_ = now_ms();
        end += static_cast<size_t>(r);
      }
      return Status::ok();
    };

    while (!stopping_) {
      OTA_RETURN_IF_ERROR(fill(2));
      mqtt::FixedHeader h;
      for (size_t need = 2;; ++need) {
        auto parsed = mqtt::parse_fixed_header(buf.data() + begin, end - begin);
        if (!parsed.is_ok()) return parsed.status();
        if (parsed->has_value()) {
          h = **parsed;
          break;
        }
        OTA_RETURN_IF_ERROR(fill(need + 1));
      }
      if (h.remaining > kMaxIncomingPacket) {
        return Status(Code::kCorrupt, "MQTT: incoming packet of " + std::to_string(h.remaining) +
                                          " bytes, more than the " + std::to_string(kMaxIncomingPacket) +
                                          " allowed");
      }
      begin += h.length;

      if (h.type() == mqtt::PacketType::kPublish) {
        std::optional<mqtt::PublishHeader> ph;
        for (size_t need = 2;;) {
          OTA_RETURN_IF_ERROR(fill(std::min(need, h.remaining)));
          auto parsed = mqtt::parse_publish_header(h, buf.data() + begin, end - begin);
          if (!parsed.is_ok()) return parsed.status();
          if (parsed->has_value()) {
            ph = **parsed;
            break;
          }
          need = 2 + ((static_cast<size_t>(buf[begin]) << 8) | buf[begin + 1]) + 2;
        }
        TransportMessage m;
        m.topic.assign(ph->topic.data(), ph->topic.size());
        m.retained = ph->retain;
        begin += ph->variable_length;
        const size_t payload = h.remaining - ph->variable_length;
        m.payload.resize(payload);
        size_t have = std::min(payload, end - begin);
        if (have > 0) std::memcpy(&m.payload[0], buf.data() + begin, have);
        begin += have;
        while (have < payload) {
          ssize_t r = ::recv(fd, &m.payload[have], payload - have, 0);
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) return Status(Code::kUnavailable, "recv: " + errno_text(errno));
          if (r == 0) return Status(Code::kUnavailable, "the broker closed the connection mid-message");
          last_received_ms_ = now_ms();
          have += static_cast<size_t>(r);
        }
        if (begin == end) begin = end = 0;
        corking_ = true;
        dispatch(std::move(m));
        corking_ = false;
        if (ph->qos == 1) cork_ += mqtt::puback_packet(ph->id);
        if (!cork_.empty()) {
          std::lock_guard<std::mutex> send(send_mu_);
          if (connected_) (void)send_locked(Packet{std::move(cork_), nullptr, 0});
          cork_.clear();
        }
        continue;
      }

      // The broker sends small control packets only (PUBACK, SUBACK of one filter, PINGRESP).
      if (h.remaining > kMaxControlPacket) {
        return Status(Code::kCorrupt, "MQTT: control packet of type " + std::to_string(int(h.type())) +
                                          " of " + std::to_string(h.remaining) + " bytes");
      }
      OTA_RETURN_IF_ERROR(fill(h.remaining));
      const uint8_t* body = buf.data() + begin;
      Status st = handle_control(h, body, h.remaining);
      begin += h.remaining;
      if (begin == end) begin = end = 0;
      if (!st.is_ok()) return st;
    }
    return Status(Code::kAborted, "stopped");
  }

  Status handle_control(const mqtt::FixedHeader& h, const uint8_t* body, size_t n) {
    switch (h.type()) {
      case mqtt::PacketType::kPuback: {
        auto id = mqtt::parse_ack(h, body, n);
        if (!id.is_ok()) return id.status();
        {
          std::lock_guard<std::mutex> lock(state_mu_);
          auto it = seq_of_id_.find(*id);
          if (it == seq_of_id_.end()) return Status::ok();  // a late duplicate
          outbox_.erase(it->second);
          seq_of_id_.erase(it);
          if (!outbox_.empty()) return Status::ok();
        }
        state_cv_.notify_all();
        return Status::ok();
      }
      case mqtt::PacketType::kSuback: {
        auto s = mqtt::parse_suback(h, body, n);
        if (!s.is_ok()) return s.status();
        {
          std::lock_guard<std::mutex> lock(state_mu_);
          auto it = pending_subscribes_.find(s->id);
          if (it == pending_subscribes_.end()) {
            for (uint8_t g : s->granted) {
              if (g == 0x80) OTA_LOGE(kLog, "%s: a restored subscription was refused", o_.client_id.c_str());
            }
            return Status::ok();
          }
          it->second->done = true;
          it->second->granted = s->granted;
        }
        state_cv_.notify_all();
        return Status::ok();
      }
      case mqtt::PacketType::kPingresp:
      case mqtt::PacketType::kUnsuback:
        return Status::ok();
      default:
        return Status(Code::kCorrupt,
                      "MQTT: unexpected packet type " + std::to_string(int(h.type())) + " from the broker");
    }
  }

  void dispatch(TransportMessage&& m) {
    if (!message_handler_) return;
    in_callback_ = true;
    try {
      message_handler_(std::move(m));
    } catch (const std::exception& e) {
      OTA_LOGE(kLog, "%s: message handler threw: %s", o_.client_id.c_str(), e.what());
    } catch (...) {
      OTA_LOGE(kLog, "%s: message handler threw", o_.client_id.c_str());
    }
    // Time in a callback is not the broker's silence.
    last_received_ms_ = now_ms();
    in_callback_ = false;
  }

  // Keeps the connection alive: a PINGREQ (at most one per half keepalive) when nothing was sent or
  // nothing arrived for half the keepalive, and the socket shut down when nothing arrived for twice
  // the keepalive (a broker that stopped answering).
  void keeper_main() {
    const int64_t keepalive =
        std::max<int64_t>(1000, std::chrono::duration_cast<milliseconds>(o_.keepalive).count());
    int64_t last_ping_ms = 0;
    while (pause(milliseconds(std::min<int64_t>(keepalive / 4, 500)))) {
      if (!connected_) continue;
      const int64_t now = now_ms();
      // Idle either way for half the keepalive: a client that only publishes QoS 0 hears nothing
      // back but PINGRESPs, and a broker with nothing to send must still be heard from.
      const bool idle = now - last_sent_ms_ >= keepalive / 2 || now - last_received_ms_ >= keepalive / 2;
      if (idle && now - last_ping_ms >= keepalive / 2) {
        std::unique_lock<std::mutex> send(send_mu_, std::try_to_lock);
        if (send.owns_lock() && connected_) {
          (void)send_locked(Packet{mqtt::pingreq_packet(), nullptr, 0});
          last_ping_ms = now;
        }
      }
      if (!in_callback_ && now - last_received_ms_ > 2 * keepalive) {
        const int64_t silent = now - last_received_ms_.load();
        OTA_LOGW(kLog, "%s: no packet from the broker for %lld ms", o_.client_id.c_str(),
                 static_cast<long long>(silent));
        silent_ms_ = silent;      // the reader's reason for the loss
        last_received_ms_ = now;  // once per silence
        shutdown_socket();
      }
    }
  }

  TransportOptions o_;
  MessageHandler message_handler_;
  ConnectionHandler connection_handler_;

  std::atomic<bool> running_{false};
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> in_callback_{false};
  std::atomic<int64_t> silent_ms_{0};  // set by the keeper when it shut a silent connection down
  // The reader thread's own: set while it runs a message callback; what that callback publishes.
  bool corking_ = false;
  std::string cork_;
  std::atomic<int64_t> last_sent_ms_{0};
  std::atomic<int64_t> last_received_ms_{0};
  std::thread reader_;
  std::thread keeper_;
  std::atomic<std::thread::id> reader_id_{};

  std::mutex send_mu_;
  std::mutex fd_mu_;
  int fd_ = -1;

  std::mutex state_mu_;
  std::condition_variable state_cv_;
  std::map<uint64_t, Outgoing> outbox_;  // by publish order
  std::map<uint16_t, uint64_t> seq_of_id_;
  uint64_t next_seq_ = 1;
  size_t unsent_ = 0;
  uint16_t last_id_ = 0;
  std::vector<std::pair<std::string, int>> subscriptions_;
  std::map<uint16_t, std::shared_ptr<PendingSubscribe>> pending_subscribes_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
};

}  // namespace

std::unique_ptr<Transport> make_native_transport(TransportOptions options) {
  return std::make_unique<NativeTransport>(std::move(options));
}

MqttClient resolve_mqtt_client(const TransportOptions& options) {
  if (options.client != MqttClient::kAuto) return options.client;
  if (const char* env = std::getenv("OTA_MQTT_CLIENT")) {
    if (std::strcmp(env, "paho") == 0) return MqttClient::kPaho;
    if (std::strcmp(env, "native") == 0 && !options.mqtt_v5 && !options.tls) return MqttClient::kNative;
  }
  const bool plain = plain_scheme_length(options.uri) > 0;
  return (plain && !options.mqtt_v5 && !options.tls) ? MqttClient::kNative : MqttClient::kPaho;
}

const char* mqtt_client_name(MqttClient client) {
  switch (client) {
    case MqttClient::kNative:
      return "native";
    case MqttClient::kPaho:
      return "paho";
    case MqttClient::kAuto:
      return "auto";
  }
  return "auto";
}

std::unique_ptr<Transport> make_transport(TransportOptions options) {
  const MqttClient client = resolve_mqtt_client(options);
  OTA_LOGI(kLog, "%s: MQTT client %s for %s", options.client_id.c_str(), mqtt_client_name(client),
           options.uri.c_str());
  return client == MqttClient::kNative ? make_native_transport(std::move(options))
                                       : make_paho_transport(std::move(options));
}

}  // namespace ota
