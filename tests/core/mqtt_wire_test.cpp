// Unit tests of the native MQTT 3.1.1 client's packet layer (core/src/mqtt_wire.hpp): what it
// builds is checked byte by byte against the OASIS layout, and what it parses is fed complete,
// truncated and malformed packets. A truncated packet must read as "need more" (std::nullopt), never
// as an error, or the client would drop a healthy connection whenever a packet straddles two reads.
#include <catch2/catch.hpp>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt_wire.hpp"

namespace {

namespace mqtt = ota::mqtt;
using ota::Code;

// "30 0a 00 03" -> those bytes; spaces are ignored.
std::string hx(std::string_view text) {
  std::string out;
  int hi = -1;
  for (char c : text) {
    if (c == ' ') continue;
    REQUIRE(std::isxdigit(static_cast<unsigned char>(c)));
    const int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<char>(hi * 16 + v));
      hi = -1;
    }
  }
  REQUIRE(hi < 0);
  return out;
}

// Bytes as "30 0a 00 03", so that a mismatch prints readably.
std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out.push_back(' ');
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

// The first n bytes of s in a buffer of exactly n bytes, so that a sanitizer build sees any read past them.
std::vector<uint8_t> prefix(std::string_view s, size_t n) {
  return std::vector<uint8_t>(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
}

std::string header_bytes(uint8_t first, size_t remaining) {
  uint8_t buf[mqtt::kMaxFixedHeader];
  const size_t n = mqtt::put_fixed_header(buf, first, remaining);
  return std::string(reinterpret_cast<const char*>(buf), n);
}

// The fixed header at the front of a complete, well-formed packet.
mqtt::FixedHeader header_of(std::string_view packet) {
  auto b = prefix(packet, packet.size());
  auto h = mqtt::parse_fixed_header(b.data(), b.size());
  REQUIRE(h.is_ok());
  REQUIRE(h->has_value());
  return **h;
}

Code fixed_header_code(std::string_view bytes) {
  auto b = prefix(bytes, bytes.size());
  return mqtt::parse_fixed_header(b.data(), b.size()).status().code();
}

// A CONNECT's payload walked independently of the builder: each field is a two-byte big-endian
// length and its bytes, in the order of section 3.1.3.
struct ConnectReader {
  std::string_view rest;
  std::string field() {
    REQUIRE(rest.size() >= 2);
    const size_t n = (static_cast<uint8_t>(rest[0]) << 8) | static_cast<uint8_t>(rest[1]);
    REQUIRE(rest.size() >= 2 + n);
    std::string out(rest.substr(2, n));
    rest.remove_prefix(2 + n);
    return out;
  }
};

}  // namespace

TEST_CASE("MQTT remaining length round-trips at every varint boundary", "[unit][core][mqtt]") {
  // Section 2.2.3, table 2.4: the first and last value of each encoded length.
  struct Case {
    size_t value;
    const char* encoded;
  };
  const Case cases[] = {
      {0, "00"},           {127, "7f"},           {128, "80 01"},           {16383, "ff 7f"},
      {16384, "80 80 01"}, {2097151, "ff ff 7f"}, {2097152, "80 80 80 01"}, {268435455, "ff ff ff 7f"},
  };
  static_assert(mqtt::kMaxRemainingLength == 268435455);
  for (const Case& c : cases) {
    for (uint8_t first : {uint8_t{0x30}, uint8_t{0x3b}, uint8_t{0x90}, uint8_t{0x82}}) {
      CAPTURE(c.value, int(first));
      const std::string head = header_bytes(first, c.value);
      CHECK(hex(head) == hex(std::string(1, static_cast<char>(first)) + hx(c.encoded)));

      auto whole = prefix(head, head.size());
      auto h = mqtt::parse_fixed_header(whole.data(), whole.size());
      REQUIRE(h.is_ok());
      REQUIRE(h->has_value());
      CHECK((*h)->first_byte == first);
      CHECK((*h)->remaining == c.value);
      CHECK((*h)->length == head.size());

      // Bytes after the header (the body, the next packet) change nothing.
      const std::string longer = head + hx("ff ff ff ff ff");
      auto more = prefix(longer, longer.size());
      auto h2 = mqtt::parse_fixed_header(more.data(), more.size());
      REQUIRE(h2.is_ok());
      REQUIRE(h2->has_value());
      CHECK((*h2)->remaining == c.value);
      CHECK((*h2)->length == head.size());

      for (size_t n = 0; n < head.size(); ++n) {
        CAPTURE(n);
        auto part = prefix(head, n);
        auto r = mqtt::parse_fixed_header(part.data(), n);
        REQUIRE(r.is_ok());
        CHECK_FALSE(r->has_value());
      }
    }
  }
}

TEST_CASE("MQTT fixed header is not written for a length MQTT cannot carry", "[unit][core][mqtt]") {
  uint8_t out[mqtt::kMaxFixedHeader] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
  CHECK(mqtt::put_fixed_header(out, 0x30, mqtt::kMaxRemainingLength + 1) == 0);
  CHECK(out[0] == 0xaa);
  CHECK(mqtt::put_fixed_header(out, 0x30, mqtt::kMaxRemainingLength) == 5);
}

TEST_CASE("MQTT fixed header with a fifth length byte is corrupt, its prefixes need more",
          "[unit][core][mqtt]") {
  const std::string five = hx("30 80 80 80 80 01");
  CHECK(fixed_header_code(five) == Code::kCorrupt);
  CHECK(fixed_header_code(five.substr(0, 5)) == Code::kCorrupt);  // the fourth length byte says "more"
  CHECK(fixed_header_code(hx("30 ff ff ff ff")) == Code::kCorrupt);
  for (size_t n = 0; n < 5; ++n) {
    CAPTURE(n);
    auto part = prefix(five, n);
    auto r = mqtt::parse_fixed_header(part.data(), n);
    REQUIRE(r.is_ok());
    CHECK_FALSE(r->has_value());
  }
}

TEST_CASE("MQTT fixed header refuses reserved types and flags a type forbids", "[unit][core][mqtt]") {
  CHECK(fixed_header_code(hx("00 00")) == Code::kCorrupt);
  CHECK(fixed_header_code(hx("f0 00")) == Code::kCorrupt);
  CHECK(fixed_header_code(hx("40 02 00 01")) == Code::kOk);       // PUBACK
  CHECK(fixed_header_code(hx("41 02 00 01")) == Code::kCorrupt);  // PUBACK with a flag
  CHECK(fixed_header_code(hx("48 02 00 01")) == Code::kCorrupt);
  CHECK(fixed_header_code(hx("82 00")) == Code::kOk);       // SUBSCRIBE with 0b0010
  CHECK(fixed_header_code(hx("80 00")) == Code::kCorrupt);  // SUBSCRIBE without
  CHECK(fixed_header_code(hx("83 00")) == Code::kCorrupt);
  CHECK(fixed_header_code(hx("c1 00")) == Code::kCorrupt);  // PINGREQ with a flag

  // Section 2.2.2, table 2.2, for every first byte: PUBLISH carries any flags (its QoS is judged
  // by parse_publish_header), PUBREL, SUBSCRIBE and UNSUBSCRIBE exactly 0b0010, the rest none.
  for (int first = 0; first < 256; ++first) {
    const int type = first >> 4;
    const int flags = first & 0xf;
    bool allowed;
    if (type == 0 || type == 15) {
      allowed = false;
    } else if (type == 3) {
      allowed = true;
    } else if (type == 6 || type == 8 || type == 10) {
      allowed = flags == 2;
    } else {
      allowed = flags == 0;
    }
    CAPTURE(type, flags);
    const Code code = fixed_header_code(std::string{static_cast<char>(first), '\0'});
    CHECK(code == (allowed ? Code::kOk : Code::kCorrupt));
  }
}

TEST_CASE("MQTT CONNECT with only a client id follows the spec's layout", "[unit][core][mqtt]") {
  mqtt::ConnectFields f;
  f.client_id = "ecu-1";
  f.keepalive_s = 60;
  auto pkt = mqtt::connect_packet(f);
  REQUIRE(pkt.is_ok());
  const std::string expected = hx("10 11")             // CONNECT, 17 bytes follow
                               + hx("00 04") + "MQTT"  // protocol name
                               + hx("04")              // level 4: 3.1.1
                               + hx("02")              // clean session only
                               + hx("00 3c")           // keepalive 60 s
                               + hx("00 05") + "ecu-1";
  CHECK(hex(*pkt) == hex(expected));

  f.clean_session = false;
  f.keepalive_s = 0x1234;
  f.client_id = "c";
  pkt = mqtt::connect_packet(f);
  REQUIRE(pkt.is_ok());
  CHECK(hex(*pkt) == hex(hx("10 0d 00 04") + "MQTT" + hx("04 00 12 34 00 01") + "c"));
}

TEST_CASE("MQTT CONNECT with will, username and password puts every field in order", "[unit][core][mqtt]") {
  mqtt::ConnectFields f;
  f.client_id = "vin-7";
  f.username = "user";
  f.password = "secret";
  f.keepalive_s = 0x1234;
  f.clean_session = false;
  f.will = ota::WillMessage{"v/s", "gone", 1, true};
  auto pkt = mqtt::connect_packet(f);
  REQUIRE(pkt.is_ok());
  const std::string expected =
      hx("10 2a") + hx("00 04") + "MQTT" + hx("04") +
      hx("ec")                   // username, password, will retain, will QoS 1, will; no clean session
      + hx("12 34")              //
      + hx("00 05") + "vin-7"    // client id
      + hx("00 03") + "v/s"      // will topic
      + hx("00 04") + "gone"     // will message
      + hx("00 04") + "user"     // username
      + hx("00 06") + "secret";  // password
  CHECK(hex(*pkt) == hex(expected));
}

TEST_CASE("MQTT CONNECT flag bits follow each field, for every combination", "[unit][core][mqtt]") {
  const std::string will_payload("off\0line\xff", 9);  // binary: counted, not NUL-terminated
  for (bool clean : {false, true}) {
    for (int will_qos = -1; will_qos <= 2; ++will_qos) {  // -1: no will
      for (bool will_retain : {false, true}) {
        if (will_qos < 0 && will_retain) continue;
        for (bool user : {false, true}) {
          for (bool pass : {false, true}) {
            if (pass && !user) continue;
            CAPTURE(clean, will_qos, will_retain, user, pass);
            mqtt::ConnectFields f;
            f.client_id = "client";
            f.clean_session = clean;
            f.keepalive_s = 0xbeef;
            if (will_qos >= 0) f.will = ota::WillMessage{"ota/will", will_payload, will_qos, will_retain};
            if (user) f.username = "name";
            if (pass) f.password = "pass";
            auto pkt = mqtt::connect_packet(f);
            REQUIRE(pkt.is_ok());

            const mqtt::FixedHeader h = header_of(*pkt);
            CHECK(h.type() == mqtt::PacketType::kConnect);
            CHECK(h.flags() == 0);
            REQUIRE(h.length + h.remaining == pkt->size());
            std::string_view body(pkt->data() + h.length, h.remaining);
            REQUIRE(body.size() >= 10);
            CHECK(hex(body.substr(0, 7)) == hex(hx("00 04") + "MQTT" + hx("04")));
            uint8_t expected_flags = 0;
            if (user) expected_flags |= 0x80;
            if (pass) expected_flags |= 0x40;
            if (will_qos >= 0) {
              expected_flags |= 0x04 | static_cast<uint8_t>(will_qos << 3);
              if (will_retain) expected_flags |= 0x20;
            }
            if (clean) expected_flags |= 0x02;
            CHECK(int(static_cast<uint8_t>(body[7])) == int(expected_flags));
            CHECK(hex(body.substr(8, 2)) == "be ef");

            ConnectReader rd{body.substr(10)};
            CHECK(rd.field() == "client");
            if (will_qos >= 0) {
              CHECK(rd.field() == "ota/will");
              CHECK(hex(rd.field()) == hex(will_payload));
            }
            if (user) CHECK(rd.field() == "name");
            if (pass) CHECK(rd.field() == "pass");
            CHECK(rd.rest.empty());
          }
        }
      }
    }
  }
}

TEST_CASE("MQTT CONNECT refuses what the spec cannot carry", "[unit][core][mqtt]") {
  const std::string longest(mqtt::kMaxString, 'x');
  const std::string too_long(mqtt::kMaxString + 1, 'x');
  auto code = [](const mqtt::ConnectFields& f) { return mqtt::connect_packet(f).status().code(); };

  mqtt::ConnectFields f;
  f.client_id = "c";
  f.password = "pw";  // section 3.1.2.9: a password needs a username
  CHECK(code(f) == Code::kInvalidArgument);

  for (int qos : {-1, 3, 4}) {
    CAPTURE(qos);
    mqtt::ConnectFields w;
    w.will = ota::WillMessage{"t", "p", qos, false};
    CHECK(code(w) == Code::kInvalidArgument);
  }
  {
    mqtt::ConnectFields w;
    w.will = ota::WillMessage{"", "p", 0, false};
    CHECK(code(w) == Code::kInvalidArgument);
  }
  // A will topic is a topic name: no wildcard, no NUL (MQTT-3.3.2-2).
  for (const std::string& topic : {std::string("a/#"), std::string("a/+"), std::string("a\0b", 3)}) {
    mqtt::ConnectFields w;
    w.will = ota::WillMessage{topic, "p", 1, true};
    CHECK(code(w) == Code::kInvalidArgument);
  }
  {
    mqtt::ConnectFields anonymous_session;  // section 3.1.3.1: an empty client id needs a clean session
    anonymous_session.clean_session = false;
    CHECK(code(anonymous_session) == Code::kInvalidArgument);
    anonymous_session.clean_session = true;
    CHECK(code(anonymous_session) == Code::kOk);
  }

  mqtt::ConnectFields g;
  g.client_id = too_long;
  CHECK(code(g) == Code::kInvalidArgument);
  g.client_id = "c";
  g.username = too_long;
  CHECK(code(g) == Code::kInvalidArgument);
  g.username = "u";
  g.password = too_long;
  CHECK(code(g) == Code::kInvalidArgument);
  g.password = "p";
  g.will = ota::WillMessage{too_long, "p", 1, false};
  CHECK(code(g) == Code::kInvalidArgument);
  g.will = ota::WillMessage{"t", too_long, 1, false};
  CHECK(code(g) == Code::kInvalidArgument);

  // The longest of each is accepted, and its length prefix is ff ff.
  mqtt::ConnectFields max;
  max.client_id = longest;
  max.username = longest;
  max.password = longest;
  max.will = ota::WillMessage{longest, longest, 2, true};
  auto pkt = mqtt::connect_packet(max);
  REQUIRE(pkt.is_ok());
  const mqtt::FixedHeader h = header_of(*pkt);
  CHECK(h.length == 4);  // 10 + 5 * (2 + 65535) bytes follow: a three-byte remaining length
  CHECK(h.remaining == 10 + 5 * (2 + mqtt::kMaxString));
  CHECK(h.length + h.remaining == pkt->size());
  ConnectReader rd{std::string_view(*pkt).substr(h.length + 10)};
  for (int i = 0; i < 5; ++i) CHECK(rd.field().size() == mqtt::kMaxString);
  CHECK(rd.rest.empty());
}

TEST_CASE("MQTT PUBLISH header at QoS 0 and 1, retain and DUP, parsed back from the same bytes",
          "[unit][core][mqtt]") {
  struct Case {
    int qos;
    bool retain;
    bool dup;
    uint16_t id;
    const char* topic;
    size_t payload;
    const char* header;  // what append_publish_header must write
  };
  const Case cases[] = {
      {0, false, false, 0, "a/b", 5, "30 0a 00 03 61 2f 62"},
      {0, true, false, 0, "a/b", 0, "31 05 00 03 61 2f 62"},
      {1, false, false, 0x1234, "a/b", 5, "32 0c 00 03 61 2f 62 12 34"},
      {1, true, false, 1, "a/b", 0, "33 07 00 03 61 2f 62 00 01"},
      {1, false, true, 0xffff, "a/b", 0, "3a 07 00 03 61 2f 62 ff ff"},
      {1, true, true, 7, "t", 200, "3b cd 01 00 01 74 00 07"},  // 205 bytes follow: two length bytes
  };
  for (const Case& c : cases) {
    CAPTURE(c.qos, c.retain, c.dup, c.id, c.payload);
    std::string pkt;
    REQUIRE(mqtt::append_publish_header(pkt, c.topic, c.qos, c.retain, c.dup, c.id, c.payload).is_ok());
    CHECK(hex(pkt) == hex(hx(c.header)));
    const size_t header_size = pkt.size();
    pkt.append(c.payload, 'p');

    const mqtt::FixedHeader h = header_of(pkt);
    REQUIRE(h.type() == mqtt::PacketType::kPublish);
    REQUIRE(h.length + h.remaining == pkt.size());
    const std::string body = pkt.substr(h.length);
    const size_t variable = header_size - h.length;

    for (size_t n = 0; n < variable; ++n) {
      CAPTURE(n);
      auto part = prefix(body, n);
      auto r = mqtt::parse_publish_header(h, part.data(), n);
      REQUIRE(r.is_ok());
      CHECK_FALSE(r->has_value());
    }
    for (size_t n : {variable, body.size()}) {
      CAPTURE(n);
      auto part = prefix(body, n);
      auto r = mqtt::parse_publish_header(h, part.data(), n);
      REQUIRE(r.is_ok());
      REQUIRE(r->has_value());
      const mqtt::PublishHeader& p = **r;
      CHECK(p.topic == c.topic);
      CHECK(reinterpret_cast<const uint8_t*>(p.topic.data()) == part.data() + 2);
      CHECK(p.qos == c.qos);
      CHECK(p.retain == c.retain);
      CHECK(p.dup == c.dup);
      CHECK(p.id == (c.qos > 0 ? c.id : 0));
      CHECK(p.variable_length == variable);
      CHECK(h.remaining - p.variable_length == c.payload);
    }
  }
}

TEST_CASE("MQTT set_publish_dup marks a re-delivery and nothing else", "[unit][core][mqtt]") {
  std::string pkt;
  REQUIRE(mqtt::append_publish_header(pkt, "a/b", 1, true, false, 9, 3).is_ok());
  pkt += "xyz";
  const std::string before = pkt;
  mqtt::set_publish_dup(pkt);
  CHECK(hex(pkt) == hex(hx("3b") + before.substr(1)));
  mqtt::set_publish_dup(pkt);  // idempotent
  CHECK(hex(pkt) == hex(hx("3b") + before.substr(1)));

  const mqtt::FixedHeader h = header_of(pkt);
  auto body = prefix(pkt.substr(h.length), h.remaining);
  auto r = mqtt::parse_publish_header(h, body.data(), body.size());
  REQUIRE(r.is_ok());
  REQUIRE(r->has_value());
  CHECK((*r)->dup);
  CHECK((*r)->retain);
  CHECK((*r)->qos == 1);
  CHECK((*r)->id == 9);

  std::string empty;
  mqtt::set_publish_dup(empty);
  CHECK(empty.empty());

  std::string qos0;  // DUP stays 0 at QoS 0
  REQUIRE(mqtt::append_publish_header(qos0, "a/b", 0, false, false, 0, 0).is_ok());
  const std::string qos0_before = qos0;
  mqtt::set_publish_dup(qos0);
  CHECK(hex(qos0) == hex(qos0_before));
}

TEST_CASE("MQTT PUBLISH header refuses what MQTT or this client does not allow", "[unit][core][mqtt]") {
  auto code = [](std::string_view topic, int qos, uint16_t id, size_t payload) {
    std::string out;
    return mqtt::append_publish_header(out, topic, qos, false, false, id, payload).code();
  };
  CHECK(code("", 0, 0, 0) == Code::kInvalidArgument);
  CHECK(code(std::string(mqtt::kMaxString + 1, 't'), 0, 0, 0) == Code::kInvalidArgument);
  CHECK(code("t", 2, 1, 0) == Code::kInvalidArgument);
  CHECK(code("t", 3, 1, 0) == Code::kInvalidArgument);
  CHECK(code("t", -1, 1, 0) == Code::kInvalidArgument);
  CHECK(code("t", 1, 0, 0) == Code::kInvalidArgument);
  // A topic name carries no wildcard and no NUL (MQTT-3.3.2-2): a broker drops the connection.
  CHECK(code("a/+", 1, 1, 0) == Code::kInvalidArgument);
  CHECK(code("a/#", 0, 0, 0) == Code::kInvalidArgument);
  CHECK(code(std::string_view("a\0b", 3), 0, 0, 0) == Code::kInvalidArgument);
  {
    std::string out;  // DUP only ever marks a QoS 1 re-delivery (MQTT-3.3.1-2)
    CHECK(mqtt::append_publish_header(out, "t", 0, false, true, 0, 0).code() == Code::kInvalidArgument);
  }
  // The whole packet must fit a remaining length of 268435455: 2 + 1 topic bytes (+ 2 for the id).
  CHECK(code("t", 0, 0, mqtt::kMaxRemainingLength - 3) == Code::kOk);
  CHECK(code("t", 0, 0, mqtt::kMaxRemainingLength - 2) == Code::kInvalidArgument);
  CHECK(code("t", 1, 1, mqtt::kMaxRemainingLength - 5) == Code::kOk);
  CHECK(code("t", 1, 1, mqtt::kMaxRemainingLength - 4) == Code::kInvalidArgument);
  CHECK(code("t", 0, 0, SIZE_MAX) == Code::kInvalidArgument);

  std::string out = "kept";
  REQUIRE(mqtt::append_publish_header(out, "t", 0, false, false, 0, mqtt::kMaxRemainingLength - 3).is_ok());
  CHECK(hex(out) == hex("kept" + hx("30 ff ff ff 7f 00 01 74")));
  out = "kept";
  CHECK_FALSE(mqtt::append_publish_header(out, "t", 3, false, false, 1, 0).is_ok());
  CHECK(out == "kept");  // nothing appended on refusal

  // The longest topic at QoS 1 parses back.
  const std::string topic(mqtt::kMaxString, 'a');
  std::string pkt;
  REQUIRE(mqtt::append_publish_header(pkt, topic, 1, false, false, 0x0102, 0).is_ok());
  const mqtt::FixedHeader h = header_of(pkt);
  CHECK(h.remaining == 2 + mqtt::kMaxString + 2);
  auto body = prefix(pkt.substr(h.length), h.remaining);
  auto r = mqtt::parse_publish_header(h, body.data(), body.size());
  REQUIRE(r.is_ok());
  REQUIRE(r->has_value());
  CHECK((*r)->topic.size() == mqtt::kMaxString);
  CHECK((*r)->id == 0x0102);
}

TEST_CASE("MQTT incoming PUBLISH with a bad QoS, id or topic is corrupt", "[unit][core][mqtt]") {
  auto code = [](std::string_view packet, size_t body_bytes) {
    const mqtt::FixedHeader h = header_of(packet);
    auto body = prefix(packet.substr(h.length), body_bytes);
    return mqtt::parse_publish_header(h, body.data(), body.size()).status().code();
  };
  const std::string qos1 = hx("32 09 00 03 61 2f 62 00 05 68 69");  // a/b, id 5, payload "hi"
  CHECK(code(qos1, 9) == Code::kOk);
  CHECK(code(hx("36 09 00 03 61 2f 62 00 05 68 69"), 9) == Code::kCorrupt);  // QoS 3
  CHECK(code(hx("36 09"), 0) == Code::kCorrupt);  // known from the fixed header alone
  CHECK(code(hx("34 09 00 03 61 2f 62 00 05 68 69"), 9) == Code::kCorrupt);  // QoS 2
  CHECK(code(hx("3c 09 00 03 61 2f 62 00 05 68 69"), 9) == Code::kCorrupt);  // QoS 2 with DUP
  CHECK(code(hx("32 09 00 03 61 2f 62 00 00 68 69"), 9) == Code::kCorrupt);  // id 0
  CHECK(code(hx("30 02 00 00"), 2) == Code::kCorrupt);                       // empty topic
  CHECK(code(hx("30 04 00 00 68 69"), 4) == Code::kCorrupt);                 // empty topic, with payload
  CHECK(code(hx("30 05 00 03 61 2f 2b"), 5) == Code::kCorrupt);              // a/+
  CHECK(code(hx("30 05 00 03 61 2f 23"), 5) == Code::kCorrupt);              // a/#
  CHECK(code(hx("30 05 00 03 61 00 62"), 5) == Code::kCorrupt);              // NUL in the topic
  CHECK(code(hx("30 00"), 0) == Code::kCorrupt);                             // no room for a topic length
  CHECK(code(hx("30 01 00"), 1) == Code::kCorrupt);
  // A topic longer than the packet: refused as soon as its length is there, not waited for.
  CHECK(code(hx("30 05 00 0a 61 62 63"), 2) == Code::kCorrupt);
  CHECK(code(hx("30 05 00 0a 61 62 63"), 5) == Code::kCorrupt);
  CHECK(code(hx("30 05 ff ff 61 62 63"), 2) == Code::kCorrupt);
  // At QoS 1 the packet id must fit too.
  CHECK(code(hx("32 05 00 03 61 2f 62"), 5) == Code::kCorrupt);
  CHECK(code(hx("32 06 00 03 61 2f 62 00"), 6) == Code::kCorrupt);
  // Not a PUBLISH at all.
  CHECK(code(hx("40 02 00 01"), 2) == Code::kCorrupt);
}

TEST_CASE("MQTT SUBACK with granted QoS 0, 1, 2 and a refusal, and a bad code is corrupt",
          "[unit][core][mqtt]") {
  auto parse = [](std::string_view packet) {
    const mqtt::FixedHeader h = header_of(packet);
    auto body = prefix(packet.substr(h.length), packet.size() - h.length);
    return mqtt::parse_suback(h, body.data(), body.size());
  };
  auto s = parse(hx("90 06 00 07 00 01 80 02"));
  REQUIRE(s.is_ok());
  CHECK(s->id == 7);
  CHECK(s->granted == std::vector<uint8_t>{0x00, 0x01, 0x80, 0x02});
  s = parse(hx("90 03 ff fe 80"));
  REQUIRE(s.is_ok());
  CHECK(s->id == 0xfffe);
  CHECK(s->granted == std::vector<uint8_t>{0x80});

  CHECK(parse(hx("90 03 00 07 03")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("90 04 00 07 01 81")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("90 04 00 07 01 ff")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("90 03 00 00 01")).status().code() == Code::kCorrupt);  // packet id 0
  CHECK(parse(hx("90 02 00 07")).status().code() == Code::kCorrupt);     // no return code
  CHECK(parse(hx("90 03 00 07")).status().code() == Code::kCorrupt);     // body shorter than announced
  CHECK(parse(hx("b0 03 00 07 01")).status().code() == Code::kCorrupt);  // UNSUBACK, not SUBACK
}

TEST_CASE("MQTT PUBACK carries a packet id, never 0", "[unit][core][mqtt]") {
  CHECK(hex(mqtt::puback_packet(0x1234)) == "40 02 12 34");
  CHECK(hex(mqtt::puback_packet(1)) == "40 02 00 01");
  auto parse = [](std::string_view packet) {
    const mqtt::FixedHeader h = header_of(packet);
    auto body = prefix(packet.substr(h.length), packet.size() - h.length);
    return mqtt::parse_ack(h, body.data(), body.size());
  };
  auto id = parse(mqtt::puback_packet(0xbeef));
  REQUIRE(id.is_ok());
  CHECK(*id == 0xbeef);
  CHECK(parse(hx("40 02 00 00")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("40 03 00 01 00")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("40 01 01")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("40 02 00")).status().code() == Code::kCorrupt);  // body shorter than announced
  CHECK(parse(hx("40 00")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("d0 02 00 05")).status().code() == Code::kCorrupt);  // a PINGRESP is no acknowledgement
}

TEST_CASE("MQTT CONNACK return codes and their meaning", "[unit][core][mqtt]") {
  auto parse = [](std::string_view packet) {
    const mqtt::FixedHeader h = header_of(packet);
    auto body = prefix(packet.substr(h.length), packet.size() - h.length);
    return mqtt::parse_connack(h, body.data(), body.size());
  };
  for (int rc = 0; rc <= 5; ++rc) {
    CAPTURE(rc);
    auto r = parse(hx("20 02 00") + std::string(1, static_cast<char>(rc)));
    REQUIRE(r.is_ok());
    CHECK(int(*r) == rc);
  }
  auto present = parse(hx("20 02 01 00"));  // session present
  REQUIRE(present.is_ok());
  CHECK(int(*present) == 0);
  CHECK(parse(hx("20 02 02 00")).status().code() == Code::kCorrupt);  // reserved acknowledge flag
  CHECK(parse(hx("20 02 80 00")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("20 03 00 00 00")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("20 01 00")).status().code() == Code::kCorrupt);
  CHECK(parse(hx("20 02 00")).status().code() == Code::kCorrupt);  // body shorter than announced
  CHECK(parse(hx("40 02 00 00")).status().code() == Code::kCorrupt);

  CHECK(std::string(mqtt::connack_reason(0)) == "accepted");
  CHECK(std::string(mqtt::connack_reason(1)) == "unacceptable protocol version");
  CHECK(std::string(mqtt::connack_reason(2)) == "client identifier rejected");
  CHECK(std::string(mqtt::connack_reason(3)) == "server unavailable");
  CHECK(std::string(mqtt::connack_reason(4)) == "bad user name or password");
  CHECK(std::string(mqtt::connack_reason(5)) == "not authorized");
  CHECK(std::string(mqtt::connack_reason(6)) == "unknown CONNACK return code");
  CHECK(std::string(mqtt::connack_reason(255)) == "unknown CONNACK return code");
  CHECK(std::string(mqtt::connack_reason(0x86)) == "bad user name or password");
}

TEST_CASE("A refused CONNECT is final only when the same CONNECT can never succeed", "[unit][core][mqtt]") {
  // Both MQTT clients (native and Paho) turn a refusal into a Status through this one rule.
  for (int final_code : {2, 4, 5, 0x85, 0x86, 0x87}) {
    ota::Status st = mqtt::connect_refused(final_code, "connect x");
    CHECK(st.code() == Code::kRejected);
    CHECK(st.message().find("connect x: broker refused the connection (") == 0);
  }
  for (int transient : {1, 3, 0x80, 0x88, 0x89}) {
    CHECK(mqtt::connect_refused(transient, "connect x").code() == Code::kUnavailable);
  }
  CHECK(mqtt::connect_refused(4, "c").message() ==
        "c: broker refused the connection (bad user name or password, code 4)");
}

TEST_CASE("MQTT SUBSCRIBE, PINGREQ and DISCONNECT bytes", "[unit][core][mqtt]") {
  auto sub = mqtt::subscribe_packet(10, "a/#", 1);
  REQUIRE(sub.is_ok());
  CHECK(hex(*sub) == "82 08 00 0a 00 03 61 2f 23 01");
  CHECK(header_of(*sub).type() == mqtt::PacketType::kSubscribe);
  CHECK(mqtt::subscribe_packet(0, "a", 1).status().code() == Code::kInvalidArgument);
  CHECK(mqtt::subscribe_packet(1, "", 1).status().code() == Code::kInvalidArgument);
  CHECK(mqtt::subscribe_packet(1, std::string(mqtt::kMaxString + 1, 'f'), 1).status().code() ==
        Code::kInvalidArgument);
  CHECK(mqtt::subscribe_packet(1, "a", 3).status().code() == Code::kInvalidArgument);
  CHECK(mqtt::subscribe_packet(1, "a", -1).status().code() == Code::kInvalidArgument);
  CHECK(hex(mqtt::pingreq_packet()) == "c0 00");
  CHECK(hex(mqtt::disconnect_packet()) == "e0 00");
}
