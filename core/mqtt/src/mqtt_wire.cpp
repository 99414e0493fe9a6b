// MQTT 3.1.1 packet building and parsing for the native client (see mqtt_wire.hpp).
#include "mqtt_wire.hpp"

namespace ota::mqtt {
namespace {

using Header = std::optional<FixedHeader>;
using Publish = std::optional<PublishHeader>;

Status corrupt(const std::string& what) { return Status(Code::kCorrupt, "MQTT: " + what); }

// A topic a PUBLISH (or a will) may carry: not empty, not too long, no wildcard, no NUL
// (MQTT-3.3.2-2, MQTT-1.5.3-2). A broker drops the connection of a client that sends one.
bool valid_topic_name(std::string_view topic) {
  static constexpr std::string_view kForbidden("+#\0", 3);
  return !topic.empty() && topic.size() <= kMaxString &&
         topic.find_first_of(kForbidden) == std::string_view::npos;
}

void put_u16(std::string& out, size_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

void put_string(std::string& out, std::string_view s) {
  put_u16(out, s.size());
  out.append(s.data(), s.size());
}

uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint8_t first_byte(PacketType type, uint8_t flags = 0) {
  return static_cast<uint8_t>((static_cast<uint8_t>(type) << 4) | flags);
}

// A packet of only a fixed header and a variable part of `body` bytes.
std::string packet(uint8_t first, std::string_view body) {
  uint8_t head[kMaxFixedHeader];
  size_t n = put_fixed_header(head, first, body.size());
  std::string out(reinterpret_cast<const char*>(head), n);
  out.append(body.data(), body.size());
  return out;
}

}  // namespace

size_t put_fixed_header(uint8_t* out, uint8_t first, size_t remaining) {
  if (remaining > kMaxRemainingLength) return 0;
  size_t n = 0;
  out[n++] = first;
  do {
    uint8_t byte = remaining % 128;
    remaining /= 128;
    if (remaining > 0) byte |= 0x80;
    out[n++] = byte;
  } while (remaining > 0 && n < kMaxFixedHeader);
  return n;
}

Result<Header> parse_fixed_header(const uint8_t* p, size_t n) {
  if (n < 2) return Header();
  FixedHeader h;
  h.first_byte = p[0];
  const uint8_t type = p[0] >> 4;
  const uint8_t flags = p[0] & 0x0f;
  if (type == 0 || type == 15) return corrupt("reserved packet type " + std::to_string(type));
  // Section 2.2.2: only PUBLISH carries flags; PUBREL, SUBSCRIBE and UNSUBSCRIBE must carry 0b0010.
  const auto t = static_cast<PacketType>(type);
  if (t == PacketType::kPubrel || t == PacketType::kSubscribe || t == PacketType::kUnsubscribe) {
    if (flags != 0x2)
      return corrupt("packet type " + std::to_string(type) + " with flags " + std::to_string(flags));
  } else if (t != PacketType::kPublish && flags != 0) {
    return corrupt("packet type " + std::to_string(type) + " with flags " + std::to_string(flags));
  }
  size_t value = 0;
  size_t multiplier = 1;
  for (size_t i = 1; i < kMaxFixedHeader; ++i) {
    if (i >= n) return Header();
    value += static_cast<size_t>(p[i] & 0x7f) * multiplier;
    if ((p[i] & 0x80) == 0) {
      h.remaining = value;
      h.length = i + 1;
      return Header(h);
    }
    multiplier *= 128;
  }
  return corrupt("remaining length longer than four bytes");
}

Result<std::string> connect_packet(const ConnectFields& f) {
  if (f.client_id.size() > kMaxString || f.username.size() > kMaxString || f.password.size() > kMaxString) {
    return Status(Code::kInvalidArgument,
                  "MQTT CONNECT: client id, username or password longer than 65535 bytes");
  }
  std::string body;
  put_string(body, "MQTT");
  body.push_back(4);  // protocol level 3.1.1
  uint8_t flags = 0;
  if (f.clean_session) flags |= 0x02;
  if (f.will) {
    if (!valid_topic_name(f.will->topic) || f.will->payload.size() > kMaxString) {
      return Status(
          Code::kInvalidArgument,
          "MQTT CONNECT: will topic empty, with a wildcard or NUL, or will longer than 65535 bytes");
    }
    if (f.will->qos < 0 || f.will->qos > 2)
      return Status(Code::kInvalidArgument, "MQTT CONNECT: will QoS not 0..2");
    flags |= 0x04 | static_cast<uint8_t>(f.will->qos << 3);
    if (f.will->retain) flags |= 0x20;
  }
  if (!f.username.empty()) flags |= 0x80;
  if (!f.password.empty()) flags |= 0x40;
  if (f.client_id.empty() && !f.clean_session) {
    return Status(Code::kInvalidArgument, "MQTT CONNECT: an empty client id needs a clean session");
  }
  if (f.username.empty() && !f.password.empty()) {
    return Status(Code::kInvalidArgument, "MQTT CONNECT: a password needs a username");
  }
  body.push_back(static_cast<char>(flags));
  put_u16(body, f.keepalive_s);
  put_string(body, f.client_id);
  if (f.will) {
    put_string(body, f.will->topic);
    put_string(body, f.will->payload);
  }
  if (!f.username.empty()) put_string(body, f.username);
  if (!f.password.empty()) put_string(body, f.password);
  return packet(first_byte(PacketType::kConnect), body);
}

Result<uint8_t> parse_connack(const FixedHeader& h, const uint8_t* body, size_t n) {
  if (h.type() != PacketType::kConnack)
    return corrupt("expected CONNACK, got packet type " + std::to_string(int(h.type())));
  if (h.remaining != 2 || n < 2) return corrupt("CONNACK of " + std::to_string(h.remaining) + " bytes");
  if ((body[0] & 0xfe) != 0) return corrupt("CONNACK with reserved flags set");
  return static_cast<uint8_t>(body[1]);
}

const char* connack_reason(int code) {
  switch (code) {
    case 0:
      return "accepted";
    case 1:
      return "unacceptable protocol version";
    case 2:
      return "client identifier rejected";
    case 3:
      return "server unavailable";
    case 4:
      return "bad user name or password";
    case 5:
      return "not authorized";
    case 0x80:
      return "unspecified error";
    case 0x85:
      return "client identifier not valid";
    case 0x86:
      return "bad user name or password";
    case 0x87:
      return "not authorized";
    default:
      return "unknown CONNACK return code";
  }
}

bool connect_refusal_is_final(int code) {
  return code == 2 || code == 4 || code == 5 || code == 0x85 || code == 0x86 || code == 0x87;
}

Status connect_refused(int code, const std::string& what) {
  return Status(connect_refusal_is_final(code) ? Code::kRejected : Code::kUnavailable,
                what + ": broker refused the connection (" + connack_reason(code) + ", code " +
                    std::to_string(code) + ")");
}

Status append_publish_header(std::string& out, std::string_view topic, int qos, bool retain, bool dup,
                             uint16_t id, size_t payload_size) {
  if (!valid_topic_name(topic)) {
    return Status(Code::kInvalidArgument,
                  "MQTT PUBLISH: topic empty, longer than 65535 bytes, or with a wildcard or NUL");
  }
  if (qos != 0 && qos != 1) return Status(Code::kInvalidArgument, "MQTT PUBLISH: QoS " + std::to_string(qos));
  if (dup && qos == 0) return Status(Code::kInvalidArgument, "MQTT PUBLISH: DUP at QoS 0");
  if (qos == 1 && id == 0) return Status(Code::kInvalidArgument, "MQTT PUBLISH: QoS 1 without a packet id");
  const size_t variable = 2 + topic.size() + (qos > 0 ? 2 : 0);
  if (payload_size > kMaxRemainingLength - variable) {
    return Status(Code::kInvalidArgument,
                  "MQTT PUBLISH: payload of " + std::to_string(payload_size) + " bytes too long");
  }
  uint8_t flags = static_cast<uint8_t>(qos << 1);
  if (retain) flags |= 0x01;
  if (dup) flags |= 0x08;
  uint8_t head[kMaxFixedHeader];
  size_t n = put_fixed_header(head, first_byte(PacketType::kPublish, flags), variable + payload_size);
  out.append(reinterpret_cast<const char*>(head), n);
  put_string(out, topic);
  if (qos > 0) put_u16(out, id);
  return Status::ok();
}

void set_publish_dup(std::string& packet) {
  if (packet.empty()) return;
  const auto first = static_cast<uint8_t>(packet[0]);
  if ((first >> 4) != static_cast<uint8_t>(PacketType::kPublish) || (first & 0x06) == 0)
    return;  // QoS 0: never DUP
  packet[0] = static_cast<char>(first | 0x08);
}

Result<Publish> parse_publish_header(const FixedHeader& h, const uint8_t* p, size_t n) {
  if (h.type() != PacketType::kPublish) return corrupt("expected PUBLISH");
  PublishHeader out;
  out.qos = (h.flags() >> 1) & 0x3;
  out.retain = (h.flags() & 0x1) != 0;
  out.dup = (h.flags() & 0x8) != 0;
  if (out.qos == 3) return corrupt("PUBLISH with QoS 3");
  if (out.qos == 2) return corrupt("PUBLISH with QoS 2, never subscribed to");
  if (h.remaining < 2) return corrupt("PUBLISH shorter than its topic length");
  if (n < 2) return Publish();
  const size_t topic_len = get_u16(p);
  out.variable_length = 2 + topic_len + (out.qos > 0 ? 2 : 0);
  if (out.variable_length > h.remaining) {
    return corrupt("PUBLISH topic of " + std::to_string(topic_len) + " bytes in a packet of " +
                   std::to_string(h.remaining));
  }
  if (n < out.variable_length) return Publish();
  if (topic_len == 0) return corrupt("PUBLISH with an empty topic");
  out.topic = std::string_view(reinterpret_cast<const char*>(p + 2), topic_len);
  if (out.topic.find_first_of("+#") != std::string_view::npos)
    return corrupt("PUBLISH topic with a wildcard");
  if (out.topic.find('\0') != std::string_view::npos) return corrupt("PUBLISH topic with a NUL character");
  if (out.qos > 0) {
    out.id = get_u16(p + 2 + topic_len);
    if (out.id == 0) return corrupt("PUBLISH with packet id 0");
  }
  return Publish(out);
}

Result<uint16_t> parse_ack(const FixedHeader& h, const uint8_t* body, size_t n) {
  if (h.type() != PacketType::kPuback && h.type() != PacketType::kUnsuback) {
    return corrupt("expected PUBACK or UNSUBACK, got packet type " + std::to_string(int(h.type())));
  }
  if (h.remaining != 2 || n < 2)
    return corrupt("acknowledgement of " + std::to_string(h.remaining) + " bytes");
  const uint16_t id = get_u16(body);
  if (id == 0) return corrupt("acknowledgement of packet id 0");
  return id;
}

Result<Suback> parse_suback(const FixedHeader& h, const uint8_t* body, size_t n) {
  if (h.type() != PacketType::kSuback) return corrupt("expected SUBACK");
  if (h.remaining < 3 || n < h.remaining)
    return corrupt("SUBACK of " + std::to_string(h.remaining) + " bytes");
  Suback s;
  s.id = get_u16(body);
  if (s.id == 0) return corrupt("SUBACK of packet id 0");
  for (size_t i = 2; i < h.remaining; ++i) {
    const uint8_t g = body[i];
    if (g > 2 && g != 0x80) return corrupt("SUBACK return code " + std::to_string(g));
    s.granted.push_back(g);
  }
  return s;
}

Result<std::string> subscribe_packet(uint16_t id, std::string_view filter, int qos) {
  if (filter.empty() || filter.size() > kMaxString) {
    return Status(Code::kInvalidArgument, "MQTT SUBSCRIBE: filter empty or longer than 65535 bytes");
  }
  if (qos < 0 || qos > 2) return Status(Code::kInvalidArgument, "MQTT SUBSCRIBE: QoS " + std::to_string(qos));
  if (id == 0) return Status(Code::kInvalidArgument, "MQTT SUBSCRIBE: packet id 0");
  std::string body;
  put_u16(body, id);
  put_string(body, filter);
  body.push_back(static_cast<char>(qos));
  return packet(first_byte(PacketType::kSubscribe, 0x2), body);
}

std::string puback_packet(uint16_t id) {
  std::string body;
  put_u16(body, id);
  return packet(first_byte(PacketType::kPuback), body);
}

std::string pingreq_packet() { return packet(first_byte(PacketType::kPingreq), {}); }

std::string disconnect_packet() { return packet(first_byte(PacketType::kDisconnect), {}); }

}  // namespace ota::mqtt
