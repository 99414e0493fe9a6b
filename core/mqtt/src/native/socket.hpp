// Socket primitives of the native MQTT client: bounded waits, whole-packet writes, and a descriptor
// owner. Nothing here knows MQTT.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ota/core/status.hpp"

namespace ota::native {

using SteadyClock = std::chrono::steady_clock;

// Milliseconds of the steady clock, for the keepalive's atomics.
int64_t now_ms();
std::string errno_text(int err);

// Waits for fd to be readable (events = POLLIN) or writable until the deadline, or until *stop
// turns true (checked every 50 ms): kAborted then. kTimeout at the deadline, kUnavailable when poll
// fails.
Status wait_fd(int fd, short events, SteadyClock::time_point deadline, const std::string& what,
               const std::atomic<bool>* stop);

// Reads exactly n bytes before the deadline (the handshake only); kUnavailable when the peer closes.
Status recv_exact(int fd, uint8_t* p, size_t n, SteadyClock::time_point deadline, const std::string& what,
                  const std::atomic<bool>* stop);

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
bool send_packet(int fd, const Packet& pkt);

// Owns a descriptor until release(); closes it otherwise.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd();
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

}  // namespace ota::native
