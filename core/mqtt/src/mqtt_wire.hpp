// MQTT 3.1.1 packets (OASIS Standard, 29 October 2014): building the few the native client sends
// and parsing the few it receives. Everything parsed comes from the network, so every length is
// checked against what is there; a parser either returns the packet, says it needs more bytes, or
// names what is malformed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"

namespace ota::mqtt {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

// The remaining length is a base-128 varint of at most four bytes (section 2.2.3).
constexpr size_t kMaxRemainingLength = 268435455;
constexpr size_t kMaxFixedHeader = 5;
constexpr size_t kMaxString = 65535;

struct FixedHeader {
  uint8_t first_byte = 0;
  size_t remaining = 0;  // bytes after the fixed header
  size_t length = 0;     // bytes of the fixed header itself (2..5)

  PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
  uint8_t flags() const { return first_byte & 0x0f; }
};

// Writes the fixed header to out (kMaxFixedHeader bytes of room); returns its length, or 0 (and
// writes nothing) when remaining is above kMaxRemainingLength.
size_t put_fixed_header(uint8_t* out, uint8_t first_byte, size_t remaining);

// Parses the fixed header at the front of p[0..n): the header, std::nullopt when more bytes are
// needed, or kCorrupt when it is malformed (reserved type, flags a packet type forbids, a fifth
// length byte).
Result<std::optional<FixedHeader>> parse_fixed_header(const uint8_t* p, size_t n);

struct ConnectFields {
  std::string client_id;
  std::string username;
  std::string password;
  uint16_t keepalive_s = 0;
  bool clean_session = true;
  std::optional<WillMessage> will;
};

// CONNECT (3.1). kInvalidArgument when a string is longer than MQTT allows or a QoS is not 0..2.
Result<std::string> connect_packet(const ConnectFields& fields);

// CONNACK (3.2): the return code (0 = accepted).
Result<uint8_t> parse_connack(const FixedHeader& h, const uint8_t* body, size_t n);
// What a broker's refusal code means, in words: CONNACK return codes of MQTT 3.1.1 and the
// reason codes of MQTT 5 (CONNACK, SUBACK) that Paho hands back.
const char* connack_reason(int code);
// The one rule for a refused CONNECT, for both MQTT clients: kRejected when the same CONNECT can
// never succeed (client identifier rejected, bad user name or password, not authorised: 3.1.1
// codes 2, 4, 5; MQTT 5 reason codes 0x85, 0x86, 0x87), so a caller stops retrying and says so;
// kUnavailable otherwise (server unavailable, ...), worth retrying. `what` prefixes the message.
bool connect_refusal_is_final(int code);
Status connect_refused(int code, const std::string& what);

// The PUBLISH fixed header and variable header (topic, packet id), appended to out; the payload
// follows it on the wire. kInvalidArgument for an empty or overlong topic, a wildcard or NUL in
// it, a QoS other than 0/1 (QoS 2 is not spoken), a missing packet id at QoS 1, DUP at QoS 0, or a
// packet longer than MQTT allows.
Status append_publish_header(std::string& out, std::string_view topic, int qos, bool retain, bool dup,
                             uint16_t id, size_t payload_size);
// Sets the DUP flag of a QoS 1 PUBLISH packet built by append_publish_header (a re-delivery); a
// QoS 0 packet is left as it is (DUP must stay 0 there).
void set_publish_dup(std::string& packet);

struct PublishHeader {
  std::string_view topic;  // points into the bytes parsed
  int qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t id = 0;             // 0 at QoS 0
  size_t variable_length = 0;  // bytes of the body before the payload
};

// The variable header of a PUBLISH whose body starts at p[0..n) (n may be less than the body):
// std::nullopt when more bytes are needed. kCorrupt for QoS 3, QoS 2 (never subscribed to), a
// packet id of 0, an empty topic, a wildcard in the topic, or a header longer than the packet.
// DUP at QoS 0, which MQTT forbids but which harms nothing, is let through.
Result<std::optional<PublishHeader>> parse_publish_header(const FixedHeader& h, const uint8_t* p, size_t n);

// PUBACK (3.4), UNSUBACK (3.11): the packet id.
Result<uint16_t> parse_ack(const FixedHeader& h, const uint8_t* body, size_t n);

struct Suback {
  uint16_t id = 0;
  std::vector<uint8_t> granted;  // per filter: 0..2, or 0x80 for refused
};
// SUBACK (3.9).
Result<Suback> parse_suback(const FixedHeader& h, const uint8_t* body, size_t n);

// SUBSCRIBE (3.8) of one filter.
Result<std::string> subscribe_packet(uint16_t id, std::string_view filter, int qos);
// PUBACK of an incoming QoS 1 PUBLISH.
std::string puback_packet(uint16_t id);
std::string pingreq_packet();
std::string disconnect_packet();

}  // namespace ota::mqtt
