// NativeTransport's sending side: SUBSCRIBE and its SUBACK, PUBLISH into the outbox (QoS 1 kept
// until its PUBACK, anything published while disconnected kept until the reconnect), packet ids,
// and the one writer on the socket.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "native_transport.hpp"
#include "ota/core/log.hpp"

namespace ota::native {

using std::chrono::milliseconds;

Status NativeTransport::subscribe(const std::string& filter, int qos) {
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
  return await_suback(filter, id, pending);
}

Status NativeTransport::await_suback(const std::string& filter, uint16_t id,
                                     const std::shared_ptr<PendingSubscribe>& pending) {
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

Status NativeTransport::publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) {
  Packet pkt;
  pkt.head.reserve(mqtt::kMaxFixedHeader + 4 + topic.size() + std::min(n, kMaxIncomingPacket));
  return publish_packet(topic, std::move(pkt), data, n, qos, retain);
}

Status NativeTransport::publish_owned(const std::string& topic, std::string&& buffer, size_t offset, int qos,
                                      bool retain) {
  if (offset > buffer.size())
    return Status(Code::kInvalidArgument, "publish " + topic + ": offset past the buffer");
  Packet pkt;
  pkt.offset = offset;
  pkt.body = std::make_shared<const std::string>(std::move(buffer));
  const size_t n = pkt.body->size() - offset;
  return publish_packet(topic, std::move(pkt), nullptr, n, qos, retain);
}

Status NativeTransport::flush(milliseconds timeout) {
  std::unique_lock<std::mutex> lock(state_mu_);
  if (!state_cv_.wait_for(lock, timeout, [&] { return outbox_.empty(); })) {
    return Status(Code::kTimeout, "flush: " + std::to_string(outbox_.size()) + " deliveries pending");
  }
  return Status::ok();
}

Status NativeTransport::publish_packet(const std::string& topic, Packet&& pkt, const void* data, size_t n,
                                       int qos, bool retain) {
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
    OTA_RETURN_IF_ERROR(keep_locked(topic, shared, qos, id));
  }
  if (!connected_) return Status::ok();
  send_published(topic, std::move(shared));
  return Status::ok();
}

Status NativeTransport::keep_locked(const std::string& topic, const std::shared_ptr<const Packet>& packet,
                                    int qos, uint16_t id) {
  if (qos > 0 && id == 0)
    return Status(Code::kUnavailable, "publish " + topic + ": 65535 messages unacknowledged");
  if (!connected_ && unsent_ >= static_cast<size_t>(std::max(0, o_.offline_buffer))) {
    return Status(Code::kUnavailable, "publish " + topic + ": disconnected and the offline buffer is full");
  }
  Outgoing out{packet, id, !connected_};
  if (out.unsent) ++unsent_;
  outbox_.emplace(next_seq_++, out);
  if (id != 0) seq_of_id_[id] = next_seq_ - 1;
  return Status::ok();
}

void NativeTransport::send_published(const std::string& topic, std::shared_ptr<const Packet> packet) {
  const bool on_reader = std::this_thread::get_id() == reader_id_;
  if (on_reader && corking_ && packet->size() < kCorkMax) {
    // Published from a message callback: goes out with the PUBACK after it, in one write.
    packet->append_to(cork_);
    if (cork_.size() < kCorkMax) return;
    packet = std::make_shared<const Packet>(Packet{std::move(cork_), nullptr, 0});
    cork_.clear();
  } else if (on_reader && !cork_.empty()) {
    (void)send_locked(Packet{std::move(cork_), nullptr, 0});  // keeps the callback's order
    cork_.clear();
  }
  if (!send_locked(*packet)) {
    // The reader sees the broken socket too and reconnects; a QoS 1 packet goes again then.
    OTA_LOGW(kLog, "%s: publish %s: %s", o_.client_id.c_str(), topic.c_str(), errno_text(errno).c_str());
  }
}

uint16_t NativeTransport::next_id_locked() {
  if (seq_of_id_.size() + pending_subscribes_.size() >= 65535) return 0;
  for (;;) {
    if (++last_id_ == 0) last_id_ = 1;
    if (seq_of_id_.count(last_id_) == 0 && pending_subscribes_.count(last_id_) == 0) return last_id_;
  }
}

void NativeTransport::drop_pending_subscribe(uint16_t id) {
  std::lock_guard<std::mutex> lock(state_mu_);
  pending_subscribes_.erase(id);
}

bool NativeTransport::send_locked(const Packet& pkt) {
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

}  // namespace ota::native
