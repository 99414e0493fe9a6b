// NativeTransport's reader: receives packets from the broker on the reader thread, hands each
// PUBLISH to the message callback in arrival order and acknowledges it afterwards, and settles
// PUBACKs and SUBACKs. Every length from the network is checked before it is trusted.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "native_transport.hpp"
#include "ota/core/log.hpp"

namespace ota::native {

Status NativeTransport::read_loop() {
  int fd;
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    fd = fd_;
  }
  if (fd < 0) return Status(Code::kUnavailable, "no socket");
  Inbound in;
  while (!stopping_) {
    mqtt::FixedHeader h;
    OTA_RETURN_IF_ERROR(read_fixed_header(fd, in, &h));
    if (h.remaining > kMaxIncomingPacket) {
      return Status(Code::kCorrupt, "MQTT: incoming packet of " + std::to_string(h.remaining) +
                                        " bytes, more than the " + std::to_string(kMaxIncomingPacket) +
                                        " allowed");
    }
    in.begin += h.length;
    OTA_RETURN_IF_ERROR(h.type() == mqtt::PacketType::kPublish ? read_publish(fd, in, h)
                                                               : read_control(fd, in, h));
  }
  return Status(Code::kAborted, "stopped");
}

Status NativeTransport::fill(int fd, Inbound& in, size_t need) {
  std::vector<uint8_t>& buf = in.buf;
  while (in.end - in.begin < need) {
    if (in.begin > 0 && buf.size() - in.begin < need + kStagingRead) {
      std::memmove(buf.data(), buf.data() + in.begin, in.end - in.begin);
      in.end -= in.begin;
      in.begin = 0;
    }
    size_t room = std::min(buf.size() - in.end, std::max(kStagingRead, need - (in.end - in.begin)));
    ssize_t r = ::recv(fd, buf.data() + in.end, room, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status(Code::kUnavailable, "recv: " + errno_text(errno));
    if (r == 0) return Status(Code::kUnavailable, "the broker closed the connection");
    last_received_ms_ = now_ms();
    in.end += static_cast<size_t>(r);
  }
  return Status::ok();
}

Status NativeTransport::read_fixed_header(int fd, Inbound& in, mqtt::FixedHeader* h) {
  OTA_RETURN_IF_ERROR(fill(fd, in, 2));
  for (size_t need = 2;; ++need) {
    auto parsed = mqtt::parse_fixed_header(in.buf.data() + in.begin, in.end - in.begin);
    if (!parsed.is_ok()) return parsed.status();
    if (parsed->has_value()) {
      *h = **parsed;
      return Status::ok();
    }
    OTA_RETURN_IF_ERROR(fill(fd, in, need + 1));
  }
}

Status NativeTransport::read_publish(int fd, Inbound& in, const mqtt::FixedHeader& h) {
  std::optional<mqtt::PublishHeader> ph;
  for (size_t need = 2;;) {
    OTA_RETURN_IF_ERROR(fill(fd, in, std::min(need, h.remaining)));
    auto parsed = mqtt::parse_publish_header(h, in.buf.data() + in.begin, in.end - in.begin);
    if (!parsed.is_ok()) return parsed.status();
    if (parsed->has_value()) {
      ph = **parsed;
      break;
    }
    need = 2 + ((static_cast<size_t>(in.buf[in.begin]) << 8) | in.buf[in.begin + 1]) + 2;
  }
  TransportMessage m;
  m.topic.assign(ph->topic.data(), ph->topic.size());
  m.retained = ph->retain;
  in.begin += ph->variable_length;
  OTA_RETURN_IF_ERROR(receive_payload(fd, in, h.remaining - ph->variable_length, &m.payload));
  deliver(std::move(m), ph->qos, ph->id);
  return Status::ok();
}

// The payload's first bytes come from the staging buffer, the rest straight from the socket into
// the message: one copy of a large payload.
Status NativeTransport::receive_payload(int fd, Inbound& in, size_t payload, std::string* out) {
  out->resize(payload);
  size_t have = std::min(payload, in.end - in.begin);
  if (have > 0) std::memcpy(&(*out)[0], in.buf.data() + in.begin, have);
  in.begin += have;
  while (have < payload) {
    ssize_t r = ::recv(fd, &(*out)[have], payload - have, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status(Code::kUnavailable, "recv: " + errno_text(errno));
    if (r == 0) return Status(Code::kUnavailable, "the broker closed the connection mid-message");
    last_received_ms_ = now_ms();
    have += static_cast<size_t>(r);
  }
  if (in.begin == in.end) in.begin = in.end = 0;
  return Status::ok();
}

Status NativeTransport::read_control(int fd, Inbound& in, const mqtt::FixedHeader& h) {
  // The broker sends small control packets only (PUBACK, SUBACK of one filter, PINGRESP).
  if (h.remaining > kMaxControlPacket) {
    return Status(Code::kCorrupt, "MQTT: control packet of type " + std::to_string(int(h.type())) + " of " +
                                      std::to_string(h.remaining) + " bytes");
  }
  OTA_RETURN_IF_ERROR(fill(fd, in, h.remaining));
  const uint8_t* body = in.buf.data() + in.begin;
  Status st = handle_control(h, body, h.remaining);
  in.begin += h.remaining;
  if (in.begin == in.end) in.begin = in.end = 0;
  return st;
}

Status NativeTransport::handle_control(const mqtt::FixedHeader& h, const uint8_t* body, size_t n) {
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

void NativeTransport::deliver(TransportMessage&& m, int qos, uint16_t id) {
  corking_ = true;
  dispatch(std::move(m));
  corking_ = false;
  if (qos == 1) cork_ += mqtt::puback_packet(id);
  if (!cork_.empty()) {
    std::lock_guard<std::mutex> send(send_mu_);
    if (connected_) (void)send_locked(Packet{std::move(cork_), nullptr, 0});
    cork_.clear();
  }
}

void NativeTransport::dispatch(TransportMessage&& m) {
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

}  // namespace ota::native
