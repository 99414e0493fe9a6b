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
//
// The class is cut by job: session.cpp (connect, handshake, reconnect, teardown), outbox.cpp
// (publish, subscribe, packet ids, writes), reader.cpp (receive and dispatch), keepalive.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mqtt_wire.hpp"
#include "ota/core/transport.hpp"
#include "socket.hpp"

namespace ota::native {

inline constexpr const char* kLog = "mqtt";

// A payload larger than this is refused: agents promise bounded memory, and nothing the vehicle's
// broker carries (chunks of at most a few MiB, commands, reports) comes near it.
inline constexpr size_t kMaxIncomingPacket = 16u << 20;
// Reads for headers and small packets go through this buffer; a large payload is read straight
// into its message once its header is parsed.
inline constexpr size_t kStagingRead = 16u << 10;
inline constexpr size_t kMaxControlPacket = 4096;
// Packets a message callback publishes wait for its PUBACK up to this many bytes (one write, one
// wake-up of the broker, instead of two).
inline constexpr size_t kCorkMax = 64u << 10;
inline constexpr size_t kStagingCapacity = kStagingRead + mqtt::kMaxFixedHeader + 2 + mqtt::kMaxString + 2;

class NativeTransport final : public Transport {
 public:
  explicit NativeTransport(TransportOptions options) : o_(std::move(options)) {}
  ~NativeTransport() override;

  void on_message(MessageHandler handler) override { message_handler_ = std::move(handler); }
  void on_connection(ConnectionHandler handler) override { connection_handler_ = std::move(handler); }
  Status connect(std::chrono::milliseconds timeout) override;
  Status subscribe(const std::string& filter, int qos) override;
  Status publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) override;
  Status publish_owned(const std::string& topic, std::string&& buffer, size_t offset, int qos,
                       bool retain) override;
  Status flush(std::chrono::milliseconds timeout) override;
  void disconnect(std::chrono::milliseconds timeout) override;
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
  // Bytes received and not handled yet: buf[begin..end). Only the reader thread touches it.
  struct Inbound {
    std::vector<uint8_t> buf = std::vector<uint8_t>(kStagingCapacity);
    size_t begin = 0;
    size_t end = 0;
  };

  // session.cpp
  // TCP connect, CONNECT, CONNACK, all before the deadline. Returns the connected socket.
  Result<int> open_session(std::chrono::milliseconds timeout);
  Status handshake(int fd, SteadyClock::time_point deadline, const std::string& what);
  void shutdown_socket();
  void stop_threads();
  // Sleeps until the duration passed or the transport stops; false when stopping.
  bool pause(std::chrono::milliseconds d);
  void notify_connection(bool up);
  void reader_main();
  // After a loss: reconnects with backoff until it succeeds or the transport stops.
  void reconnect();
  // After a reconnect: the subscriptions again, then every packet of the outbox in order (QoS 1
  // ones already written once flagged DUP), before anyone else writes.
  void restore(int fd);
  std::vector<std::shared_ptr<const Packet>> packets_to_restore_locked();
  void fail_pending_subscribes(const Status& why);

  // outbox.cpp
  // A PUBLISH: the header in pkt.head, then either a copy of data[0..n) appended to it or, when
  // data is null, pkt.body[pkt.offset..] (n bytes) as it is.
  Status publish_packet(const std::string& topic, Packet&& pkt, const void* data, size_t n, int qos,
                        bool retain);
  // Keeps a packet in the outbox (QoS 1 until its PUBACK; anything published while disconnected).
  Status keep_locked(const std::string& topic, const std::shared_ptr<const Packet>& packet, int qos,
                     uint16_t id);
  // Writes a packet now, or corks it behind the PUBACK when a message callback published it.
  void send_published(const std::string& topic, std::shared_ptr<const Packet> packet);
  Status await_suback(const std::string& filter, uint16_t id,
                      const std::shared_ptr<PendingSubscribe>& pending);
  // A packet id no unacknowledged PUBLISH or SUBSCRIBE holds; 0 when all are held.
  uint16_t next_id_locked();
  void drop_pending_subscribe(uint16_t id);
  // REQUIRES: send_mu_ held and connected_.
  bool send_locked(const Packet& pkt);

  // reader.cpp
  // Receives and dispatches until the connection ends; returns why it ended.
  Status read_loop();
  // Makes at least `need` bytes available at in.buf[in.begin..in.end).
  Status fill(int fd, Inbound& in, size_t need);
  Status read_fixed_header(int fd, Inbound& in, mqtt::FixedHeader* h);
  Status read_publish(int fd, Inbound& in, const mqtt::FixedHeader& h);
  Status receive_payload(int fd, Inbound& in, size_t payload, std::string* out);
  Status read_control(int fd, Inbound& in, const mqtt::FixedHeader& h);
  Status handle_control(const mqtt::FixedHeader& h, const uint8_t* body, size_t n);
  // Runs the message callback, then sends its PUBACK with what the callback published.
  void deliver(TransportMessage&& m, int qos, uint16_t id);
  void dispatch(TransportMessage&& m);

  // keepalive.cpp
  // Keeps the connection alive: a PINGREQ (at most one per half keepalive) when nothing was sent or
  // nothing arrived for half the keepalive, and the socket shut down when nothing arrived for twice
  // the keepalive (a broker that stopped answering).
  void keeper_main();

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

}  // namespace ota::native
