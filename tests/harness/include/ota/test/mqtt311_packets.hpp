// The MQTT 3.1.1 packets a broker sends and reads, built and parsed from the text of the standard
// for tests that play the broker's side of a connection (FakeBroker). Written apart from
// core/mqtt/src/mqtt_wire on purpose, so that a mistake in the codec under test is not repeated on both
// ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

namespace ota::test::mqtt311 {

enum PacketType : int {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

// Section 2.2.3: base-128, least significant group first, high bit = more bytes follow.
inline std::string remaining_length(std::size_t n) {
  std::string out;
  do {
    auto byte = static_cast<uint8_t>(n % 128);
    n /= 128;
    if (n > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (n > 0);
  return out;
}

inline std::string u16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }

inline std::string mqtt_string(const std::string& s) { return u16(static_cast<uint16_t>(s.size())) + s; }

inline std::string packet(uint8_t first_byte, const std::string& body) {
  return std::string(1, static_cast<char>(first_byte)) + remaining_length(body.size()) + body;
}

inline std::string publish_packet(const std::string& topic, const std::string& payload, int qos,
                                  uint16_t id) {
  const auto first = static_cast<uint8_t>((kPublish << 4) | (qos << 1));
  return packet(first, mqtt_string(topic) + (qos > 0 ? u16(id) : "") + payload);
}

inline std::string puback_packet(uint16_t id) { return packet(kPuback << 4, u16(id)); }
inline std::string pingresp_packet() { return packet(kPingresp << 4, ""); }
inline std::string connack_packet(uint8_t code) {
  return packet(kConnack << 4, std::string{'\0', static_cast<char>(code)});
}

struct WirePacket {
  uint8_t first_byte = 0;
  std::string body;  // everything after the fixed header

  int type() const { return first_byte >> 4; }
};

struct Publish {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool dup = false;
  bool retain = false;
  uint16_t id = 0;
};

inline uint16_t get_u16(const std::string& s, std::size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(s[at]) << 8) | static_cast<uint8_t>(s[at + 1]));
}

// A PUBLISH the client sent, or nullopt when the packet is not a well-formed one.
inline std::optional<Publish> parse_publish(const WirePacket& p) {
  if (p.type() != kPublish || p.body.size() < 2) return std::nullopt;
  Publish out;
  out.qos = (p.first_byte >> 1) & 0x3;
  out.dup = (p.first_byte & 0x08) != 0;
  out.retain = (p.first_byte & 0x01) != 0;
  const std::size_t topic_len = get_u16(p.body, 0);
  const std::size_t variable = 2 + topic_len + (out.qos > 0 ? 2 : 0);
  if (out.qos == 3 || p.body.size() < variable) return std::nullopt;
  out.topic = p.body.substr(2, topic_len);
  if (out.qos > 0) out.id = get_u16(p.body, 2 + topic_len);
  out.payload = p.body.substr(variable);
  return out;
}

struct Connect {
  std::string client_id;
  uint16_t keepalive_s = 0;
};

// A CONNECT (3.1) of protocol "MQTT" level 4, or nullopt.
inline std::optional<Connect> parse_connect(const WirePacket& p) {
  const std::string& b = p.body;
  if (p.type() != kConnect || b.size() < 12 || b.compare(0, 6, std::string("\0\4MQTT", 6)) != 0 ||
      b[6] != 4) {
    return std::nullopt;
  }
  Connect c;
  c.keepalive_s = get_u16(b, 8);
  const std::size_t id_len = get_u16(b, 10);
  if (b.size() < 12 + id_len) return std::nullopt;
  c.client_id = b.substr(12, id_len);
  return c;
}

// One line about a packet, for failure messages.
inline std::string describe(const WirePacket& p) {
  std::ostringstream s;
  s << "packet type " << p.type() << " flags " << (p.first_byte & 0x0f) << ", " << p.body.size() << " bytes";
  if (auto pub = parse_publish(p)) {
    s << ": PUBLISH QoS " << pub->qos << (pub->dup ? " DUP" : "") << " id " << pub->id << " on '"
      << pub->topic << "', payload '" << pub->payload << "'";
  } else if (p.type() == kPuback && p.body.size() == 2) {
    s << ": PUBACK id " << get_u16(p.body, 0);
  }
  return s.str();
}

}  // namespace ota::test::mqtt311
