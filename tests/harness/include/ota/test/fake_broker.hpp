// FakeBroker: a TCP server on a free 127.0.0.1 port that plays an MQTT 3.1.1 broker badly on
// purpose. A thread accepts each connection, reads its CONNECT and answers with a chosen CONNACK
// (or none); the test then plays the broker's side of the connection itself (BrokerConnection),
// with blocking reads bounded by a deadline, to send what a real Mosquitto never would.
//
//   ota::test::FakeBroker broker(uint8_t{0});        // CONNACK "accepted" to every CONNECT
//   ... connect a client to broker.uri() ...
//   auto conn = broker.next_connection(5s);          // the broker's end, CONNECT read and answered
//   REQUIRE(conn->send(ota::test::mqtt311::publish_packet("t", "x", 1, 7)));
//   auto p = conn->next_packet(std::chrono::steady_clock::now() + 5s);  // the client's PUBACK
//
// Catch assertions run on the test thread only; the accepting thread reports through state that
// the test reads after waiting for it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/test/mqtt311_packets.hpp"

namespace ota::test {

// Every wait of the fake broker itself (a CONNECT to read, a send to complete): generous, so that
// a loaded machine does not fail a test.
inline constexpr std::chrono::seconds kFakeBrokerDeadline{5};

// Time left until `t` (zero once past), for the waits that take a duration.
inline std::chrono::milliseconds left_until(std::chrono::steady_clock::time_point t) {
  return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                    t - std::chrono::steady_clock::now()));
}

inline void set_timeout(int fd, int option, std::chrono::milliseconds t) {
  t = std::max(t, std::chrono::milliseconds(1));  // 0 would mean "forever"
  timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  (void)::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

// The broker's end of one client connection: blocking reads, each bounded by a deadline.
// Used by the accepting thread until the connection is handed over, then by the test thread.
class BrokerConnection {
 public:
  explicit BrokerConnection(int fd) : fd_(fd) { set_timeout(fd_, SO_SNDTIMEO, kFakeBrokerDeadline); }
  ~BrokerConnection() { ::close(fd_); }
  BrokerConnection(const BrokerConnection&) = delete;
  BrokerConnection& operator=(const BrokerConnection&) = delete;

  // The next whole packet. kTimeout at the deadline, kUnavailable once the client closed the
  // connection, kCorrupt for a fixed header MQTT does not allow.
  ota::Result<mqtt311::WirePacket> read_packet(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      if (buf_.size() >= 2) {
        std::size_t remaining = 0;
        std::size_t header = 0;
        for (std::size_t i = 1, multiplier = 1; i < buf_.size() && i <= 4; ++i, multiplier *= 128) {
          const auto byte = static_cast<uint8_t>(buf_[i]);
          remaining += (byte & 0x7fu) * multiplier;
          if ((byte & 0x80) == 0) {
            header = i + 1;
            break;
          }
          if (i == 4) {
            return ota::Status(ota::Code::kCorrupt,
                               "a remaining length of more than four bytes from the client");
          }
        }
        if (header > 0 && buf_.size() >= header + remaining) {
          mqtt311::WirePacket p{static_cast<uint8_t>(buf_[0]), buf_.substr(header, remaining)};
          buf_.erase(0, header + remaining);
          return p;
        }
      }
      const ota::Status st = fill(deadline);
      if (!st.is_ok()) return st;
    }
  }

  // The same, passing over PINGREQs (left unanswered): for tests about other packets.
  ota::Result<mqtt311::WirePacket> next_packet(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      auto p = read_packet(deadline);
      if (!p.is_ok() || p->type() != mqtt311::kPingreq) return p;
    }
  }

  // Reads until the client closes the connection (true) or the deadline passes (false); what
  // the client sent meanwhile is appended to `read`.
  bool wait_closed(std::chrono::steady_clock::time_point deadline, std::vector<mqtt311::WirePacket>* read) {
    for (;;) {
      auto p = read_packet(deadline);
      if (p.is_ok()) {
        if (read != nullptr) read->push_back(std::move(p.value()));
        continue;
      }
      return p.status().code() == ota::Code::kUnavailable;
    }
  }

  bool send(const std::string& bytes) {
    const char* p = bytes.data();
    std::size_t n = bytes.size();
    while (n > 0) {
      const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }

  // The broker goes away: the client reads end-of-stream. The descriptor stays ours until the
  // object goes, so no other socket can take its number meanwhile.
  void close() { (void)::shutdown(fd_, SHUT_RDWR); }

  // Set by the accepting thread before the connection is handed over.
  std::optional<mqtt311::Connect> connect;
  std::chrono::steady_clock::time_point connack_sent;

 private:
  ota::Status fill(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const std::chrono::milliseconds left = left_until(deadline);
      if (left.count() <= 0) return ota::Status(ota::Code::kTimeout, "no packet from the client in time");
      set_timeout(fd_, SO_RCVTIMEO, left);
      char chunk[16384];
      const ssize_t r = ::recv(fd_, chunk, sizeof chunk, 0);
      if (r > 0) {
        buf_.append(chunk, static_cast<std::size_t>(r));
        return ota::Status::ok();
      }
      if (r == 0) return ota::Status(ota::Code::kUnavailable, "the client closed the connection");
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return ota::Status(ota::Code::kUnavailable, std::string("recv: ") + std::strerror(errno));
      }
    }
  }

  int fd_;
  std::string buf_;
};

// A TCP server on a free 127.0.0.1 port whose thread accepts each connection, reads its CONNECT
// and answers with a CONNACK of `connack_code` (never, when it is nullopt), then hands the
// connection to the test (next_connection). Stopped and joined on destruction.
class FakeBroker {
 public:
  explicit FakeBroker(std::optional<uint8_t> connack_code) : connack_code_(connack_code) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;  // the kernel picks a free port: no race with other tests
    socklen_t len = sizeof addr;
    const bool listening = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                           ::listen(listen_fd_, 8) == 0 &&
                           ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    if (!listening) {
      const int err = errno;
      ::close(listen_fd_);
      FAIL("listen on 127.0.0.1: " << std::strerror(err));
    }
    port_ = ntohs(addr.sin_port);
    // accept() wakes up now and then to see whether the broker stops (shutdown() of a listening
    // socket wakes it too on Linux; this is the fallback).
    set_timeout(listen_fd_, SO_RCVTIMEO, std::chrono::milliseconds(200));
    thread_ = std::thread([this] { accept_main(); });
  }
  ~FakeBroker() { shutdown(); }
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  // The next connection whose CONNECT was read (and answered); nullptr at the deadline.
  std::shared_ptr<BrokerConnection> next_connection(std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, deadline, [&] { return !ready_.empty(); })) return nullptr;
    auto conn = ready_.front();
    ready_.pop_front();
    return conn;
  }

  // While held, a new connection's CONNECT is read but not answered: the client stays offline.
  void hold_connack(bool hold) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = hold;
    }
    cv_.notify_all();
  }

  // Waits until the CONNECTs of `n` connections in all were read (answered or not).
  bool wait_connects(std::size_t n, std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return connects_read_ >= n; });
  }

  // Stops accepting and ends every connection. Idempotent.
  void shutdown() {
    std::vector<std::shared_ptr<BrokerConnection>> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      all = all_;
    }
    cv_.notify_all();
    if (listen_fd_ >= 0) (void)::shutdown(listen_fd_, SHUT_RDWR);
    for (auto& conn : all) conn->close();
    if (thread_.joinable()) thread_.join();
    // Closed only now: a client reconnecting from here on is refused at once.
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }

 private:
  void accept_main() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      const int err = errno;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) {
          if (fd >= 0) ::close(fd);
          return;
        }
      }
      if (fd < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) continue;
        return;
      }
      auto conn = std::make_shared<BrokerConnection>(fd);
      {
        std::lock_guard<std::mutex> lock(mu_);
        all_.push_back(conn);
      }
      auto connect = conn->read_packet(std::chrono::steady_clock::now() + kFakeBrokerDeadline);
      if (connect.is_ok()) conn->connect = mqtt311::parse_connect(*connect);
      {
        std::unique_lock<std::mutex> lock(mu_);
        ++connects_read_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return !hold_ || stopping_; });
        if (stopping_) return;
      }
      if (connack_code_ && conn->connect && conn->send(mqtt311::connack_packet(*connack_code_))) {
        conn->connack_sent = std::chrono::steady_clock::now();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        ready_.push_back(conn);
      }
      cv_.notify_all();
    }
  }

  const std::optional<uint8_t> connack_code_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool hold_ = false;
  std::size_t connects_read_ = 0;
  std::deque<std::shared_ptr<BrokerConnection>> ready_;
  std::vector<std::shared_ptr<BrokerConnection>> all_;
};

}  // namespace ota::test
