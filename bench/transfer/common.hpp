// Shared pieces of the transfer benchmark's peers (publisher and subscriber processes).
//
// Wire format of the baselines (not the pipeline's protobuf): every data message is a 16-byte
// header (offset and total size, little-endian u64) followed by the chunk's bytes; every
// acknowledgement is 8 bytes (the subscriber's next offset, little-endian u64).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ota/core/sha256.hpp"
#include "ota/core/status.hpp"

namespace ota::bench {

constexpr size_t kDataHeader = 16;

inline void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Nanoseconds on CLOCK_MONOTONIC, which is the same clock in every process of the machine.
inline int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Everything a peer process is told on its command line.
struct PeerConfig {
  std::string role;  // "pub" or "sub"
  std::string impl;  // "paho" or "bare"
  std::string flow;  // "window": app-level acks, `window` chunks per subscriber;
                     // "inflight": QoS 1 only, `inflight` unacknowledged PUBLISHes
  std::string host = "127.0.0.1";
  int port = 0;
  std::string user;
  std::string password;
  std::string id;                // sub: its ECU id
  std::vector<std::string> ids;  // pub: every subscriber's ECU id
  std::string image;             // pub: the file it sends to every subscriber
  std::string out;               // sub: where it writes what it receives
  std::string ready_file;        // sub: created once subscribed
  std::string result_file;       // key=value lines, see PeerResult
  uint64_t size = 0;             // bytes per subscriber
  uint64_t chunk = 256 * 1024;
  uint32_t window = 16;
  uint32_t inflight = 64;
  uint64_t sync_every = 0;  // sub: fdatasync every N bytes (0: never)
  bool state_file = false;  // sub: with each fdatasync also save a state file atomically
                            // (write, fsync, rename, fsync dir), as the agent SDK does
  bool nodelay = true;      // set TCP_NODELAY on the MQTT socket(s)
  int timeout_s = 300;
};

// Topics the baselines use: the pipeline's data and ack leaves, under the same ACL.
inline std::string data_topic(const std::string& id) { return "ota/v1/ecu/" + id + "/down/data"; }
inline std::string ack_topic(const std::string& id) { return "ota/v1/ecu/" + id + "/up/ack"; }
inline const char* kAckFilter = "ota/v1/ecu/+/up/ack";
// ECU id in "ota/v1/ecu/<id>/up/ack"; empty if the topic has another shape.
std::string ecu_of_topic(const std::string& topic);

// key=value lines, written by a peer at its end and read by the orchestrator.
using PeerResult = std::map<std::string, std::string>;
Status write_result(const std::string& path, const PeerResult& r);
Result<PeerResult> read_result(const std::string& path);
// Adds cpu_user_s, cpu_sys_s and max_rss_kib of this process (getrusage).
void add_self_usage(PeerResult& r);

class StreamSink;
// A peer's last step: writes its result file (ok, error, the fields given, its own CPU usage) and
// returns its exit code. With a sink (subscribers): bytes, SHA-256 and sync time too.
int finish_peer(const PeerConfig& c, const std::string& error, PeerResult fields, StreamSink* sink = nullptr);

// The data topic of each subscriber of a publisher, and each subscriber's index by id.
struct PubTargets {
  std::vector<std::string> topics;
  std::unordered_map<std::string, size_t> index;
};
PubTargets pub_targets(const PeerConfig& c);

// Sets TCP_NODELAY on every TCP socket this process holds (Paho offers no option for it; a
// peer has exactly one MQTT connection, so this finds it). Returns how many were set.
int set_nodelay_on_tcp_sockets();

// Where a subscriber puts what it receives: SHA-256 of the stream and a file, written as it
// arrives (never the whole image in memory); optional fdatasync every `sync_every` bytes.
class StreamSink {
 public:
  static Result<StreamSink> open(const std::string& path, uint64_t sync_every, bool state_file = false);
  StreamSink(StreamSink&& o) noexcept;
  StreamSink& operator=(StreamSink&&) = delete;
  StreamSink(const StreamSink&) = delete;
  ~StreamSink();
  Status write(const uint8_t* data, size_t n);
  Status close();
  std::string hex_digest() { return to_hex(sha_.finish()); }
  uint64_t bytes() const { return bytes_; }
  double sync_seconds() const { return sync_ns_ / 1e9; }

 private:
  StreamSink(int fd, std::string path, uint64_t sync_every, bool state_file)
      : fd_(fd), path_(std::move(path)), state_file_(state_file), sync_every_(sync_every) {}
  int fd_ = -1;
  std::string path_;
  bool state_file_ = false;
  uint64_t sync_every_ = 0;
  uint64_t since_sync_ = 0;
  uint64_t bytes_ = 0;
  int64_t sync_ns_ = 0;
  Sha256 sha_;
};

// "Paho MQTT C++ (mqttpp) v. 1.2"
std::string paho_version();

// The peers' entry points (exit codes: 0 success, 1 failure).
int run_paho_pub(const PeerConfig& c);
int run_paho_sub(const PeerConfig& c);
int run_bare_pub(const PeerConfig& c);
int run_bare_sub(const PeerConfig& c);

}  // namespace ota::bench
