// Baseline (c): hand-written MQTT 3.1.1 peers over a plain TCP socket (TCP_NODELAY, no library,
// no threads), doing the same relay as baseline (b) through the same broker: the floor of what
// the MQTT path itself costs.
//
// Subscriber: receives into a 4 MiB buffer and hashes/writes each chunk in place (no copy beyond
// recv), answering each PUBLISH with its PUBACK and its acknowledgement in one send().
// Publisher: one writev per chunk (MQTT header + baseline header + the chunk read by pread).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <unordered_map>

#include "common.hpp"

namespace ota::bench {
namespace {

enum : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kSubscribe = 8,
  kSuback = 9,
  kDisconnect = 14,
};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

void put_str(std::string& out, const std::string& s) {
  out.push_back(static_cast<char>(s.size() >> 8));
  out.push_back(static_cast<char>(s.size() & 0xff));
  out += s;
}

// Fixed header: type/flags byte and the remaining length.
std::string fixed_header(uint8_t first, size_t remaining) {
  std::string h(1, static_cast<char>(first));
  do {
    uint8_t b = remaining % 128;
    remaining /= 128;
    if (remaining > 0) b |= 0x80;
    h.push_back(static_cast<char>(b));
  } while (remaining > 0);
  return h;
}

std::string puback(uint16_t id) {
  return std::string{static_cast<char>(kPuback << 4), 2, static_cast<char>(id >> 8),
                     static_cast<char>(id & 0xff)};
}

// PUBLISH QoS 1 header (everything but the payload).
std::string publish_header(const std::string& topic, uint16_t id, size_t payload) {
  std::string var;
  put_str(var, topic);
  var.push_back(static_cast<char>(id >> 8));
  var.push_back(static_cast<char>(id & 0xff));
  return fixed_header((kPublish << 4) | 0x02, var.size() + payload) + var;
}

struct Packet {
  uint8_t type = 0;
  uint8_t flags = 0;
  const uint8_t* body = nullptr;
  size_t len = 0;
};

class Conn {
 public:
  explicit Conn(size_t buffer) : buf_(buffer) {}
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }

  void connect(const PeerConfig& c, const std::string& client_id) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(c.port));
    if (inet_pton(AF_INET, c.host.c_str(), &a.sin_addr) != 1) fail("bad host " + c.host);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      fail(std::string("connect: ") + strerror(errno));
    if (c.nodelay) {
      int one = 1;
      setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    std::string var;
    put_str(var, "MQTT");
    var.push_back(4);                        // protocol level 3.1.1
    var.push_back(static_cast<char>(0xC2));  // user name, password, clean session
    var.push_back(0);
    var.push_back(120);  // keep alive, s
    put_str(var, client_id);
    put_str(var, c.user);
    put_str(var, c.password);
    send_all(fixed_header(kConnect << 4, var.size()) + var);
    Packet p = next(true);
    if (p.type != kConnack || p.len < 2 || p.body[1] != 0) fail("CONNACK refused");
  }

  void subscribe(const std::string& filter) {
    std::string var{0, 1};
    put_str(var, filter);
    var.push_back(1);
    send_all(fixed_header((kSubscribe << 4) | 0x02, var.size()) + var);
    for (;;) {
      Packet p = next(true);
      if (p.type != kSuback) continue;
      if (p.len < 3 || p.body[2] >= 0x80) fail("SUBACK refused " + filter);
      return;
    }
  }

  void send_all(const std::string& s) { send_iov(s.data(), s.size(), nullptr, 0); }

  // Writes a + b completely (blocking socket).
  void send_iov(const void* a, size_t an, const void* b, size_t bn) {
    iovec iov[2] = {{const_cast<void*>(a), an}, {const_cast<void*>(b), bn}};
    int cnt = bn > 0 ? 2 : 1;
    iovec* v = iov;
    while (cnt > 0) {
      ssize_t w = ::writev(fd_, v, cnt);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail(std::string("write: ") + strerror(errno));
      }
      size_t left = static_cast<size_t>(w);
      while (cnt > 0 && left >= v->iov_len) {
        left -= v->iov_len;
        ++v;
        --cnt;
      }
      if (cnt > 0) {
        v->iov_base = static_cast<char*>(v->iov_base) + left;
        v->iov_len -= left;
      }
    }
  }

  // The next complete packet; with block=false, type 0 when none is buffered or readable now.
  // The packet's bytes stay valid until the next call.
  Packet next(bool block) {
    beg_ += consumed_;
    consumed_ = 0;
    for (;;) {
      Packet p;
      size_t total = 0;
      if (parse(&p, &total)) {
        consumed_ = total;
        return p;
      }
      // Need more bytes: make room (move the partial packet to the front when the tail is short).
      size_t need = std::max<size_t>(total, 4096);
      if (end_ - beg_ + 0 == 0) beg_ = end_ = 0;
      if (buf_.size() - beg_ < need) {
        if (need > buf_.size()) fail("packet larger than the receive buffer");
        std::memmove(buf_.data(), buf_.data() + beg_, end_ - beg_);
        end_ -= beg_;
        beg_ = 0;
      }
      ssize_t r = ::recv(fd_, buf_.data() + end_, buf_.size() - end_, block ? 0 : MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (!block && (errno == EAGAIN || errno == EWOULDBLOCK)) return Packet{};
        fail(std::string("recv: ") + strerror(errno));
      }
      if (r == 0) fail("connection closed by the broker");
      end_ += static_cast<size_t>(r);
    }
  }

  void wait_readable(int timeout_ms) {
    if (end_ - beg_ > consumed_) return;  // something already buffered
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, timeout_ms);
    if (rc == 0) fail("nothing received within the timeout");
  }

 private:
  // True with a whole packet at beg_; otherwise *total is the size needed (or 0 if unknown).
  bool parse(Packet* p, size_t* total) {
    const uint8_t* d = buf_.data() + beg_;
    const size_t avail = end_ - beg_;
    *total = 0;
    if (avail < 2) return false;
    size_t rem = 0, mult = 1, i = 1;
    for (;; ++i) {
      if (i >= avail) return false;
      if (i > 4) fail("bad remaining length");
      rem += (d[i] & 0x7f) * mult;
      mult *= 128;
      if (!(d[i] & 0x80)) break;
    }
    *total = i + 1 + rem;
    if (avail < *total) return false;
    p->type = d[0] >> 4;
    p->flags = d[0] & 0x0f;
    p->body = d + i + 1;
    p->len = rem;
    return true;
  }

  int fd_ = -1;
  std::vector<uint8_t> buf_;
  size_t beg_ = 0, end_ = 0, consumed_ = 0;
};

// A PUBLISH's topic, packet id (0 for QoS 0) and payload.
struct Publish {
  std::string topic;
  uint16_t id = 0;
  const uint8_t* payload = nullptr;
  size_t n = 0;
};

Publish parse_publish(const Packet& p) {
  if (p.len < 2) fail("short PUBLISH");
  size_t tl = (size_t{p.body[0]} << 8) | p.body[1];
  size_t pos = 2 + tl;
  Publish m;
  m.topic.assign(reinterpret_cast<const char*>(p.body + 2), tl);
  if ((p.flags >> 1) & 3) {
    m.id = static_cast<uint16_t>((p.body[pos] << 8) | p.body[pos + 1]);
    pos += 2;
  }
  if (pos > p.len) fail("bad PUBLISH");
  m.payload = p.body + pos;
  m.n = p.len - pos;
  return m;
}

}  // namespace

int run_bare_sub(const PeerConfig& c) {
  auto sink = StreamSink::open(c.out, c.sync_every, c.state_file);
  if (!sink) {
    std::fprintf(stderr, "sub %s: %s\n", c.id.c_str(), sink.status().to_string().c_str());
    return 1;
  }
  const bool acks = c.flow == "window";
  const std::string ack_t = ack_topic(c.id);
  uint64_t expected = 0, gaps = 0;
  int64_t t_first = 0, t_end = 0;
  std::string error;
  try {
    Conn conn(4 << 20);
    conn.connect(c, c.id + "-bare");
    conn.subscribe(data_topic(c.id));
    { std::ofstream(c.ready_file) << "ready\n"; }
    uint16_t next_id = 1;
    uint16_t last_ack_id = 0;
    bool last_ack_done = !acks;
    bool complete = false;
    while (!complete || !last_ack_done) {
      conn.wait_readable(c.timeout_s * 1000);
      Packet p = conn.next(true);
      if (p.type == kPuback) {
        if (p.len >= 2 && ((p.body[0] << 8) | p.body[1]) == last_ack_id) last_ack_done = true;
        continue;
      }
      if (p.type != kPublish) continue;
      Publish m = parse_publish(p);
      if (m.n < kDataHeader) continue;
      const uint64_t off = get_u64(m.payload), total = get_u64(m.payload + 8);
      if (t_first == 0) t_first = mono_ns();
      std::string out;
      if (m.id) out = puback(m.id);
      if (off >= expected && !complete) {
        if (off > expected) ++gaps;
        Status st = sink->write(m.payload + kDataHeader, m.n - kDataHeader);
        if (!st.is_ok()) fail(st.to_string());
        expected = off + (m.n - kDataHeader);
        if (expected >= total) {
          complete = true;
          t_end = mono_ns();
        }
        if (acks) {
          uint8_t a[8];
          put_u64(a, expected);
          uint16_t id = next_id++;
          if (next_id == 0) next_id = 1;
          out += publish_header(ack_t, id, sizeof(a));
          out.append(reinterpret_cast<const char*>(a), sizeof(a));
          if (complete) last_ack_id = id;
        }
      }
      if (!out.empty()) conn.send_all(out);
    }
    conn.send_all(std::string{static_cast<char>(kDisconnect << 4), 0});
  } catch (const std::exception& e) {
    error = e.what();
  }
  Status cst = sink->close();
  if (!cst.is_ok() && error.empty()) error = cst.to_string();
  return finish_peer(c, error,
                     {{"gaps", std::to_string(gaps)},
                      {"t_first_ns", std::to_string(t_first)},
                      {"t_end_ns", std::to_string(t_end)}},
                     &*sink);
}

int run_bare_pub(const PeerConfig& c) {
  int fd = ::open(c.image.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::perror(c.image.c_str());
    return 1;
  }
  const size_t n_sub = c.ids.size();
  const bool window = c.flow == "window";
  const PubTargets targets = pub_targets(c);
  const auto& topics = targets.topics;
  const auto& index = targets.index;
  std::vector<uint64_t> acked(n_sub, 0), sent(n_sub, 0);
  std::vector<uint8_t> buf(kDataHeader + c.chunk);
  std::string error;
  int64_t t_start = 0;
  uint64_t unacked = 0;  // our PUBLISHes without PUBACK (flow "inflight")
  try {
    Conn conn(1 << 20);
    conn.connect(c, "bench-bare-publisher");
    if (window) conn.subscribe(kAckFilter);
    t_start = mono_ns();
    // Handles one received packet; false if none was there.
    auto handle = [&](bool block) {
      Packet p = conn.next(block);
      if (p.type == 0) return false;
      if (p.type == kPuback) {
        if (unacked > 0) --unacked;
      } else if (p.type == kPublish) {
        Publish m = parse_publish(p);
        if (m.id) conn.send_all(puback(m.id));
        auto it = index.find(ecu_of_topic(m.topic));
        if (m.n == 8 && it != index.end()) {
          uint64_t v = get_u64(m.payload);
          if (v > acked[it->second]) acked[it->second] = v;
        }
      }
      return true;
    };
    uint16_t next_id = 1;
    auto send = [&](size_t i) {
      const uint64_t off = sent[i];
      const size_t n = static_cast<size_t>(std::min<uint64_t>(c.chunk, c.size - off));
      uint8_t* data = buf.data() + kDataHeader;
      for (size_t done = 0; done < n;) {
        ssize_t r = ::pread(fd, data + done, n - done, static_cast<off_t>(off + done));
        if (r <= 0) fail("read " + c.image);
        done += static_cast<size_t>(r);
      }
      put_u64(buf.data(), off);
      put_u64(buf.data() + 8, c.size);
      std::string h = publish_header(topics[i], next_id++, kDataHeader + n);
      if (next_id == 0) next_id = 1;
      conn.send_iov(h.data(), h.size(), buf.data(), kDataHeader + n);
      sent[i] += n;
      ++unacked;
    };
    const uint64_t wbytes = uint64_t{c.window} * c.chunk;
    for (;;) {
      while (handle(false)) {
      }
      bool progress = false, all_done = true;
      for (size_t i = 0; i < n_sub; ++i) {
        if (window) {
          if (acked[i] < c.size) all_done = false;
          if (sent[i] < c.size && sent[i] < acked[i] + wbytes) {
            send(i);
            progress = true;
          }
        } else {
          if (sent[i] < c.size || unacked > 0) all_done = false;
          if (sent[i] < c.size && unacked < c.inflight) {
            send(i);
            progress = true;
          }
        }
      }
      if (all_done) break;
      if (!progress) {
        conn.wait_readable(c.timeout_s * 1000);
        handle(true);
      }
    }
    conn.send_all(std::string{static_cast<char>(kDisconnect << 4), 0});
  } catch (const std::exception& e) {
    error = e.what();
  }
  const int64_t t_end = mono_ns();
  ::close(fd);
  return finish_peer(c, error,
                     {{"t_start_ns", std::to_string(t_start)}, {"t_end_ns", std::to_string(t_end)}});
}

}  // namespace ota::bench
