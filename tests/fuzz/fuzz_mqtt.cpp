// MQTT 3.1.1 packets from the broker (core/src/mqtt_wire.hpp), read as the native client reads its
// socket: the input is a stream of packets, each a fixed header then a body, and every parser the
// client has is run on the bytes of each packet that are there. Built when mqtt_wire.hpp exists.
//
// Beyond "no crash, no read out of bounds", what the client's read loop relies on:
// - a parser says "need more" only when more bytes could change its answer (else the loop waits
//   forever for bytes it already has);
// - an accepted PUBLISH header lies within the packet and within the input: variable_length <=
//   remaining, the topic inside the bytes parsed;
// - what is accepted is what the builders would have written (the PUBLISH header round-trips).
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "mqtt_wire.hpp"

namespace {

namespace mqtt = ota::mqtt;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// p[0..n) copied to a heap block of exactly n bytes, so that ASan reports a read one byte past it.
struct Exact {
  Exact(const uint8_t* p, size_t n) : bytes(new uint8_t[n]), size(n) {
    if (n > 0) std::memcpy(bytes.get(), p, n);
  }
  std::unique_ptr<uint8_t[]> bytes;
  size_t size;
  const uint8_t* data() const { return bytes.get(); }
};

bool same(const mqtt::PublishHeader& a, const mqtt::PublishHeader& b) {
  return a.topic == b.topic && a.qos == b.qos && a.retain == b.retain && a.dup == b.dup && a.id == b.id &&
         a.variable_length == b.variable_length;
}

// The fixed header at the front of the stream, or nothing when the stream ends or is malformed.
std::optional<mqtt::FixedHeader> fixed_header(const uint8_t* p, size_t left) {
  // The parser reads at most kMaxFixedHeader bytes; give it no more, so that a read past them shows.
  const Exact head(p, left < mqtt::kMaxFixedHeader ? left : mqtt::kMaxFixedHeader);
  auto r = mqtt::parse_fixed_header(head.data(), head.size);
  if (!r.is_ok()) {
    check(r.status().code() == ota::Code::kCorrupt);
    return std::nullopt;
  }
  if (!r->has_value()) {
    check(head.size < mqtt::kMaxFixedHeader);  // five bytes always decide
    return std::nullopt;
  }
  const mqtt::FixedHeader h = **r;
  check(h.length >= 2 && h.length <= mqtt::kMaxFixedHeader && h.length <= head.size);
  check(h.remaining <= mqtt::kMaxRemainingLength);
  check(h.first_byte == p[0]);
  const uint8_t type = h.first_byte >> 4;
  check(type != 0 && type != 15);
  // Every shorter prefix needs more: none is an error, none a different header.
  for (size_t n = 0; n < h.length; ++n) {
    const Exact part(p, n);
    auto q = mqtt::parse_fixed_header(part.data(), n);
    check(q.is_ok() && !q->has_value());
  }
  // The builder writes the same header, in as many bytes or fewer (a non-minimal length is read).
  uint8_t again[mqtt::kMaxFixedHeader];
  const size_t k = mqtt::put_fixed_header(again, h.first_byte, h.remaining);
  check(k <= h.length);
  auto back = mqtt::parse_fixed_header(again, k);
  check(back.is_ok() && back->has_value() && (*back)->remaining == h.remaining && (*back)->length == k);
  return h;
}

void publish(const mqtt::FixedHeader& h, const uint8_t* body, size_t avail) {
  // What the client passes: everything buffered, which may run past this packet into the next. The
  // input itself is an exact heap block (libFuzzer's copy), so reads past it show as well.
  auto r = mqtt::parse_publish_header(h, body, avail);
  // The same packet cut at its own end must read the same.
  const size_t own = avail < h.remaining ? avail : h.remaining;
  const Exact mine(body, own);
  auto r_own = mqtt::parse_publish_header(h, mine.data(), mine.size);
  check(r.is_ok() == r_own.is_ok());
  if (!r.is_ok()) {
    check(r.status().code() == ota::Code::kCorrupt && r_own.status().code() == ota::Code::kCorrupt);
    return;
  }
  check(r->has_value() == r_own->has_value());
  if (!r->has_value()) {
    check(avail < h.remaining);  // with the whole packet there, "need more" would never end
    return;
  }
  const mqtt::PublishHeader& p = **r;
  check(same(p, **r_own));
  check(p.variable_length <= h.remaining);
  check(p.variable_length <= own);
  check(p.qos == 0 || p.qos == 1);
  check((p.qos == 1) == (p.id != 0));
  check(p.qos == ((h.flags() >> 1) & 3) && p.retain == ((h.flags() & 1) != 0) &&
        p.dup == ((h.flags() & 8) != 0));
  check(!p.topic.empty() && p.variable_length == 2 + p.topic.size() + (p.qos > 0 ? 2 : 0));
  const auto* t = reinterpret_cast<const uint8_t*>(p.topic.data());
  check(t == body + 2 && t + p.topic.size() <= body + avail);
  check(p.topic.find_first_of(std::string("+#\0", 3)) == std::string_view::npos);
  const auto* t_own = reinterpret_cast<const uint8_t*>((*r_own)->topic.data());
  check(t_own == mine.data() + 2 && t_own + p.topic.size() <= mine.data() + mine.size);

  // One byte short of the variable header needs more.
  {
    const Exact part(body, p.variable_length - 1);
    auto q = mqtt::parse_publish_header(h, part.data(), part.size);
    check(q.is_ok() && !q->has_value());
  }

  // The builder accepts what was parsed and writes a header that parses back the same. The one
  // exception: DUP at QoS 0, which the parser lets pass (a broker's harmless slip) but the builder
  // never writes (MQTT-3.3.1-2).
  std::string built;
  const size_t payload = h.remaining - p.variable_length;
  if (p.dup && p.qos == 0) {
    check(mqtt::append_publish_header(built, p.topic, 0, p.retain, true, 0, payload).code() ==
          ota::Code::kInvalidArgument);
    return;
  }
  auto st = mqtt::append_publish_header(built, p.topic, p.qos, p.retain, p.dup, p.id, payload);
  check(st.is_ok());
  const Exact b(reinterpret_cast<const uint8_t*>(built.data()), built.size());
  auto bh = mqtt::parse_fixed_header(b.data(), b.size);
  check(bh.is_ok() && bh->has_value());
  const mqtt::FixedHeader h2 = **bh;
  check(h2.first_byte == h.first_byte && h2.remaining == h.remaining &&
        h2.length + p.variable_length == b.size);
  auto p2 = mqtt::parse_publish_header(h2, b.data() + h2.length, b.size - h2.length);
  check(p2.is_ok() && p2->has_value() && same(**p2, p));
}

// The control packets: the client hands them over whole, but every parser must also survive a body
// cut short and a packet of another type.
void control(const mqtt::FixedHeader& h, const uint8_t* body, size_t n) {
  const Exact b(body, n);
  const bool whole = n == h.remaining;

  auto ack = mqtt::parse_ack(h, b.data(), b.size);
  if (ack.is_ok()) check(whole && h.remaining == 2 && *ack != 0);

  auto connack = mqtt::parse_connack(h, b.data(), b.size);
  if (connack.is_ok()) {
    check(whole && h.type() == mqtt::PacketType::kConnack && h.remaining == 2);
    check(mqtt::connack_reason(*connack) != nullptr);
  }

  auto suback = mqtt::parse_suback(h, b.data(), b.size);
  if (suback.is_ok()) {
    check(whole && h.type() == mqtt::PacketType::kSuback);
    check(suback->id != 0 && suback->granted.size() == h.remaining - 2 && !suback->granted.empty());
    for (uint8_t g : suback->granted) check(g <= 2 || g == 0x80);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t off = 0;
  while (off < size) {
    const auto h = fixed_header(data + off, size - off);
    if (!h) break;  // the client drops the connection, or waits for bytes that never come
    off += h->length;
    const size_t avail = size - off;
    const size_t there = avail < h->remaining ? avail : h->remaining;
    if (h->type() == mqtt::PacketType::kPublish) {
      publish(*h, data + off, avail);
    }
    control(*h, data + off, there);
    if (there < h->remaining) break;
    off += there;
  }
  return 0;
}
