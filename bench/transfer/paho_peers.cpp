// Baseline (b): plain Paho MQTT C++ clients (async_client), the same library the pipeline's
// transport uses, with none of the pipeline's protocol around it.
//
// Subscriber: connects as agent <id>, subscribes to its down/data at QoS 1, and for each message
// hashes and writes the chunk right in Paho's callback (no extra queue or copy), then (flow
// "window") publishes an 8-byte acknowledgement on its up/ack at QoS 1.
// Publisher: connects as ota-client, reads the image with pread and publishes chunk after chunk
// to every subscriber, round robin: flow "window" keeps at most `window` unacknowledged chunks
// per subscriber (like the pipeline's client); flow "inflight" relies on QoS 1 alone and keeps at
// most `inflight` PUBLISHes without PUBACK (Paho's max_inflight).
#include <fcntl.h>
#include <mqtt/async_client.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include "common.hpp"

namespace ota::bench {
namespace {

std::string uri_of(const PeerConfig& c) { return "tcp://" + c.host + ":" + std::to_string(c.port); }

mqtt::connect_options connect_opts(const PeerConfig& c, int max_inflight) {
  mqtt::connect_options opts;
  opts.set_keep_alive_interval(60);
  opts.set_clean_session(true);
  opts.set_user_name(c.user);
  opts.set_password(c.password);
  opts.set_max_inflight(max_inflight);
  return opts;
}

bool pread_full(int fd, uint8_t* buf, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return true;
}

}  // namespace

std::string paho_version() { return mqtt::VERSION_STR; }

int run_paho_sub(const PeerConfig& c) {
  auto sink = StreamSink::open(c.out, c.sync_every, c.state_file);
  if (!sink) {
    std::fprintf(stderr, "sub %s: %s\n", c.id.c_str(), sink.status().to_string().c_str());
    return 1;
  }
  const bool acks = c.flow == "window";
  const std::string ack_t = ack_topic(c.id);
  std::mutex mu;
  std::condition_variable cv;
  uint64_t expected = 0;
  uint64_t gaps = 0;
  int64_t t_first = 0, t_end = 0;
  bool done = false;
  std::string error;

  mqtt::async_client cli(uri_of(c), c.id + "-bench", mqtt::create_options(MQTTVERSION_3_1_1, 1000), nullptr);
  cli.set_message_callback([&](mqtt::const_message_ptr msg) {
    const std::string& p = msg->get_payload();
    if (p.size() < kDataHeader) return;
    const auto* d = reinterpret_cast<const uint8_t*>(p.data());
    const uint64_t off = get_u64(d), total = get_u64(d + 8);
    const size_t n = p.size() - kDataHeader;
    std::lock_guard<std::mutex> lock(mu);
    if (done) return;
    if (t_first == 0) t_first = mono_ns();
    if (off < expected) return;  // duplicate
    if (off > expected) ++gaps;  // lost (only possible without the window: broker queue limits)
    Status st = sink->write(d + kDataHeader, n);
    if (!st.is_ok()) {
      error = st.to_string();
      done = true;
      cv.notify_all();
      return;
    }
    expected = off + n;
    if (acks) {
      uint8_t a[8];
      put_u64(a, expected);
      try {
        cli.publish(ack_t, a, sizeof(a), 1, false);
      } catch (const mqtt::exception& e) {
        error = std::string("ack: ") + e.what();
      }
    }
    if (expected >= total) {
      t_end = mono_ns();
      done = true;
      cv.notify_all();
    }
  });

  int nodelay = 0;
  try {
    cli.connect(connect_opts(c, 64))->wait();
    if (c.nodelay) nodelay = set_nodelay_on_tcp_sockets();
    cli.subscribe(data_topic(c.id), 1)->wait();
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "sub %s: connect/subscribe: %s\n", c.id.c_str(), e.what());
    return 1;
  }
  { std::ofstream(c.ready_file) << "ready\n"; }

  {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(c.timeout_s), [&] { return done; })) {
      error = "timed out at byte " + std::to_string(expected);
    }
  }
  try {
    for (auto& tok : cli.get_pending_delivery_tokens()) tok->wait_for(std::chrono::seconds(5));
    cli.disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
  std::lock_guard<std::mutex> lock(mu);
  Status cst = sink->close();
  if (!cst.is_ok() && error.empty()) error = cst.to_string();
  return finish_peer(c, error,
                     {{"gaps", std::to_string(gaps)},
                      {"t_first_ns", std::to_string(t_first)},
                      {"t_end_ns", std::to_string(t_end)},
                      {"nodelay_sockets", std::to_string(nodelay)}},
                     &*sink);
}

int run_paho_pub(const PeerConfig& c) {
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
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint64_t> acked(n_sub, 0);

  const int max_inflight = window ? static_cast<int>(n_sub * c.window + 16) : static_cast<int>(c.inflight);
  // Paho C counts every PUBLISH not yet written to the socket against maxBufferedMessages, even
  // while connected (MQTT error -12 "No more messages can be buffered" otherwise).
  const int buffered = std::max(1000, 2 * max_inflight);
  mqtt::async_client cli(uri_of(c), "bench-publisher", mqtt::create_options(MQTTVERSION_3_1_1, buffered),
                         nullptr);
  cli.set_message_callback([&](mqtt::const_message_ptr msg) {
    const std::string& p = msg->get_payload();
    auto it = index.find(ecu_of_topic(msg->get_topic()));
    if (p.size() != 8 || it == index.end()) return;
    const uint64_t v = get_u64(reinterpret_cast<const uint8_t*>(p.data()));
    {
      std::lock_guard<std::mutex> lock(mu);
      if (v > acked[it->second]) acked[it->second] = v;
    }
    cv.notify_all();
  });
  int nodelay = 0;
  try {
    cli.connect(connect_opts(c, max_inflight))->wait();
    if (c.nodelay) nodelay = set_nodelay_on_tcp_sockets();
    if (window) cli.subscribe(kAckFilter, 1)->wait();
  } catch (const mqtt::exception& e) {
    std::fprintf(stderr, "pub: connect/subscribe: %s\n", e.what());
    return 1;
  }

  std::vector<uint8_t> buf(kDataHeader + c.chunk);
  std::string error;
  const int64_t t_start = mono_ns();
  auto send = [&](size_t i, uint64_t off) -> mqtt::delivery_token_ptr {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(c.chunk, c.size - off));
    if (!pread_full(fd, buf.data() + kDataHeader, n, off)) throw std::runtime_error("read " + c.image);
    put_u64(buf.data(), off);
    put_u64(buf.data() + 8, c.size);
    return cli.publish(topics[i], buf.data(), kDataHeader + n, 1, false);
  };
  try {
    if (window) {
      const uint64_t wbytes = uint64_t{c.window} * c.chunk;
      std::vector<uint64_t> sent(n_sub, 0);
      for (;;) {
        bool progress = false, all_acked = true;
        for (size_t i = 0; i < n_sub; ++i) {
          uint64_t a;
          {
            std::lock_guard<std::mutex> lock(mu);
            a = acked[i];
          }
          if (a < c.size) all_acked = false;
          if (sent[i] < c.size && sent[i] < a + wbytes) {
            send(i, sent[i]);
            sent[i] += std::min<uint64_t>(c.chunk, c.size - sent[i]);
            progress = true;
          }
        }
        if (all_acked) break;
        if (progress) continue;
        std::unique_lock<std::mutex> lock(mu);
        bool ok = cv.wait_for(lock, std::chrono::seconds(c.timeout_s), [&] {
          bool all = true;
          for (size_t i = 0; i < n_sub; ++i) {
            if (acked[i] < c.size) all = false;
            if (sent[i] < c.size && sent[i] < acked[i] + wbytes) return true;
          }
          return all;
        });
        if (!ok) throw std::runtime_error("no acknowledgement within the timeout");
      }
    } else {
      std::deque<mqtt::delivery_token_ptr> pending;
      for (uint64_t off = 0; off < c.size; off += c.chunk) {
        for (size_t i = 0; i < n_sub; ++i) {
          while (pending.size() >= c.inflight) {
            pending.front()->wait();
            pending.pop_front();
          }
          pending.push_back(send(i, off));
        }
      }
      for (auto& t : pending) t->wait();
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  const int64_t t_end = mono_ns();
  try {
    cli.disconnect()->wait_for(std::chrono::seconds(2));
  } catch (const mqtt::exception&) {
  }
  ::close(fd);
  return finish_peer(c, error,
                     {{"t_start_ns", std::to_string(t_start)},
                      {"t_end_ns", std::to_string(t_end)},
                      {"nodelay_sockets", std::to_string(nodelay)}});
}

}  // namespace ota::bench
