// NativeTransport's session: TCP connect, the CONNECT/CONNACK handshake, the reader thread's
// reconnect loop with backoff, restoring subscriptions and the outbox, and teardown.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "endpoint.hpp"
#include "native_transport.hpp"
#include "ota/core/log.hpp"

namespace ota::native {

using std::chrono::milliseconds;

NativeTransport::~NativeTransport() {
  if (running_) disconnect(milliseconds(2000));
  stop_threads();  // REQUIRES: not on the reader thread (a transport is not destroyed from its callback)
}

Status NativeTransport::connect(milliseconds timeout) {
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

void NativeTransport::disconnect(milliseconds timeout) {
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

Result<int> NativeTransport::open_session(milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
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

Status NativeTransport::handshake(int fd, SteadyClock::time_point deadline, const std::string& what) {
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
  if (*rc != 0) return mqtt::connect_refused(*rc, what);
  return Status::ok();
}

void NativeTransport::shutdown_socket() {
  std::lock_guard<std::mutex> lock(fd_mu_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void NativeTransport::stop_threads() {
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

bool NativeTransport::pause(milliseconds d) {
  std::unique_lock<std::mutex> lock(stop_mu_);
  return !stop_cv_.wait_for(lock, d, [&] { return stopping_.load(); });
}

void NativeTransport::notify_connection(bool up) {
  if (!connection_handler_) return;
  try {
    connection_handler_(up);
  } catch (...) {
    OTA_LOGE(kLog, "%s: connection handler threw", o_.client_id.c_str());
  }
}

void NativeTransport::reader_main() {
  reader_id_ = std::this_thread::get_id();
  notify_connection(true);
  while (!stopping_) {
    Status why = read_loop();
    if (silent_ms_ > 0) {
      why = Status(Code::kTimeout, "no packet from the broker for " + std::to_string(silent_ms_.exchange(0)) +
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
    reconnect();
  }
}

void NativeTransport::reconnect() {
  milliseconds delay = o_.reconnect_min;
  while (!stopping_) {
    if (!pause(delay)) break;
    auto fd = open_session(std::max<milliseconds>(milliseconds(5000), o_.keepalive));
    if (fd.is_ok() && stopping_) {
      ::close(*fd);  // disconnect() came while the broker answered
      break;
    }
    if (fd.is_ok()) {
      restore(*fd);
      notify_connection(true);
      break;
    }
    OTA_LOGD(kLog, "%s: reconnect: %s", o_.client_id.c_str(), fd.status().to_string().c_str());
    delay = std::min(delay * 2, o_.reconnect_max);
  }
}

void NativeTransport::restore(int fd) {
  std::lock_guard<std::mutex> send(send_mu_);
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    fd_ = fd;
  }
  last_sent_ms_ = last_received_ms_ = now_ms();
  std::vector<std::shared_ptr<const Packet>> packets;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    packets = packets_to_restore_locked();
  }
  state_cv_.notify_all();
  connected_ = true;
  for (const auto& pkt : packets) {
    if (!send_locked(*pkt)) break;  // the reader sees the broken socket and starts over
  }
}

std::vector<std::shared_ptr<const Packet>> NativeTransport::packets_to_restore_locked() {
  std::vector<std::shared_ptr<const Packet>> packets;
  for (const auto& [filter, qos] : subscriptions_) {
    const uint16_t id = next_id_locked();
    if (id == 0) break;
    auto pkt = mqtt::subscribe_packet(id, filter, qos);
    if (pkt.is_ok()) packets.push_back(std::make_shared<const Packet>(Packet{std::move(*pkt), nullptr, 0}));
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
  return packets;
}

void NativeTransport::fail_pending_subscribes(const Status& why) {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    for (auto& [id, pending] : pending_subscribes_) {
      pending->done = true;
      pending->status = Status(Code::kUnavailable, "connection lost before SUBACK: " + why.message());
    }
  }
  state_cv_.notify_all();
}

}  // namespace ota::native

namespace ota {

std::unique_ptr<Transport> make_native_transport(TransportOptions options) {
  return std::make_unique<native::NativeTransport>(std::move(options));
}

}  // namespace ota
