#include "socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ota::native {

using std::chrono::milliseconds;

int64_t now_ms() {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now().time_since_epoch()).count();
}

std::string errno_text(int err) { return std::strerror(err); }

Status wait_fd(int fd, short events, SteadyClock::time_point deadline, const std::string& what,
               const std::atomic<bool>* stop) {
  for (;;) {
    if (stop != nullptr && stop->load()) return Status(Code::kAborted, what + ": the transport is stopping");
    auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return Status(Code::kTimeout, what + ": no answer in time");
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 50)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status(Code::kUnavailable, what + ": poll: " + errno_text(errno));
    if (r > 0) return Status::ok();
  }
}

Status recv_exact(int fd, uint8_t* p, size_t n, SteadyClock::time_point deadline, const std::string& what,
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

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace ota::native
