// Images of any size and any length of unchanged stretch: every stream of a delta may stay idle (no
// new bytes) for many blocks in a row, and must still round-trip in the encoder and the streaming
// decoder (the agent's install path, the client's decompression of full payloads).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "delta_support.hpp"
#include "format.hpp"
#include "matcher.hpp"
#include "ota/core/delta.hpp"

namespace {

using ota::delta_test::Bytes;
using ota::delta_test::ExpectSink;
using ota::delta_test::fast_random;
using ota::delta_test::MemoryReader;
using ota::delta_test::MemorySource;
using ota::delta_test::reseal_header;
using ota::delta_test::VectorSink;
namespace delta = ota::delta;

constexpr size_t kBlock = delta::detail::kMaxBlockOutput;
// zstd refuses a stream after 16 calls in a row that make no progress: more idle blocks than that.
constexpr size_t kManyBlocks = 20;
constexpr size_t kHeaderLen = 96 + 8;  // a header without transform regions

Bytes encode(const Bytes& base, const Bytes& image, int level = 1, delta::EncodeStats* stats = nullptr) {
  VectorSink sink;
  delta::EncodeOptions opt;
  opt.level = level;
  ota::Status s = delta::make_delta(base.data(), base.size(), image.data(), image.size(), sink, opt, stats);
  INFO(s.to_string());
  REQUIRE(s.is_ok());
  return sink.out;
}

// Applies `d` (read in pieces of `piece` bytes) and checks the result against `image` as it is written.
void check_apply(const Bytes& base, const Bytes& d, const Bytes& image, size_t piece = SIZE_MAX) {
  MemoryReader r(base);
  MemorySource src(d, piece);
  ExpectSink sink(image);
  delta::ApplyStats st;
  ota::Status s =
      base.empty() ? delta::apply_full(src, sink, &st) : delta::apply_delta(r, src, sink, {}, &st);
  INFO(s.to_string());
  REQUIRE(s.is_ok());
  CHECK(sink.matches());
  CHECK(st.blocks == std::max<uint64_t>(1, (image.size() + kBlock - 1) / kBlock));
}

void round_trip(const Bytes& base, const Bytes& image, int level = 1, size_t piece = SIZE_MAX) {
  check_apply(base, encode(base, image, level), image, piece);
}

void scramble(Bytes* b, size_t at, size_t n, uint64_t seed) {
  Bytes r = fast_random(n, seed);
  for (size_t i = 0; i < n; ++i) (*b)[at + i] ^= static_cast<uint8_t>(r[i] | 1);
}

}  // namespace

TEST_CASE("a full image of many blocks round-trips with its difference streams idle", "[unit][delta]") {
  // No base: the four difference streams carry nothing in any block.
  Bytes image = fast_random(kManyBlocks * kBlock + 3, 1);
  for (size_t i = 1 << 20; i < image.size(); ++i) image[i] = static_cast<uint8_t>(i % 251);
  round_trip({}, image);
}

TEST_CASE("an image equal to its base round-trips at every size around a block boundary", "[unit][delta]") {
  for (size_t size : {size_t{1}, size_t{4095}, kBlock - 1, kBlock, kBlock + 1, 2 * kBlock - 1, 2 * kBlock,
                      2 * kBlock + 1}) {
    INFO("size " << size);
    Bytes base = fast_random(size, size);
    delta::EncodeStats st;
    Bytes d = encode(base, base, 1, &st);
    CHECK(st.extra_bytes == 0);
    CHECK(d.size() < 300 + 100 * st.blocks);
    check_apply(base, d, base);
  }
}

TEST_CASE("an image equal to its base over many blocks round-trips", "[unit][delta]") {
  // The difference-literal and extra streams stay idle from the first block to the last.
  Bytes base = fast_random(kManyBlocks * kBlock + 1, 2);
  delta::EncodeStats st;
  Bytes d = encode(base, base, 19, &st);
  CHECK(st.extra_bytes == 0);
  CHECK(st.blocks == kManyBlocks + 1);
  CHECK(d.size() < 2000);
  check_apply(base, d, base, 4093);
}

TEST_CASE("changes separated by long unchanged stretches round-trip", "[unit][delta]") {
  const Bytes base = fast_random(kManyBlocks * kBlock + 12345, 3);
  Bytes image = base;
  size_t new_bytes = 0;  // changed or new bytes: what the delta cannot avoid carrying
  SECTION("only the first 5 KiB changed") {
    scramble(&image, 0, 5 << 10, 4);
    new_bytes = 5 << 10;
  }
  SECTION("changed at both ends: the streams resume after many idle blocks") {
    scramble(&image, 100, 5000, 5);
    scramble(&image, image.size() - 7000, 6000, 6);
    new_bytes = 11000;
  }
  SECTION("changes at block boundaries") {
    for (size_t k = 1; k < kManyBlocks; k += 6) scramble(&image, k * kBlock - 2, 4, 7 + k);
    new_bytes = 16;
  }
  SECTION("an insertion moves everything after it; the end changed too") {
    Bytes ins = fast_random(3000, 8);
    image.insert(image.begin() + (1 << 20), ins.begin(), ins.end());
    scramble(&image, image.size() - 100, 50, 9);
    new_bytes = 3050;
  }
  SECTION("a shorter image ending just before a block boundary") {
    image.resize(kManyBlocks * kBlock - 1);
    scramble(&image, kBlock, 10, 10);
    new_bytes = 10;
  }
  SECTION("new bytes appended after a long unchanged stretch") {
    Bytes tail = fast_random(kBlock + 17, 11);
    image.insert(image.end(), tail.begin(), tail.end());
    new_bytes = tail.size();
  }
  delta::EncodeStats st;
  Bytes d = encode(base, image, 3, &st);
  CHECK(d.size() < new_bytes + 200 * st.blocks + 2000);
  check_apply(base, d, image, 65536);
}

TEST_CASE("apply writes nothing past the image size its header states", "[unit][delta]") {
  Bytes base = fast_random(3 * kBlock + 100, 20);
  Bytes image = base;
  scramble(&image, 10, 100, 21);
  Bytes tail = fast_random(1 << 20, 22);
  image.insert(image.end(), tail.begin(), tail.end());
  Bytes d = encode(base, image);
  // The declared size is smaller than what the streams produce: writing stops at the declared size.
  for (uint64_t declared : {uint64_t{0}, uint64_t{1}, uint64_t{kBlock}, uint64_t{image.size() - 1}}) {
    INFO("declared " << declared);
    Bytes bad = d;
    for (int i = 0; i < 8; ++i) bad[20 + i] = static_cast<uint8_t>(declared >> (8 * i));
    reseal_header(&bad, kHeaderLen);
    MemoryReader r(base);
    MemorySource src(bad);
    ExpectSink bank(image, declared);  // a bank exactly as large as the declared image
    ota::Status s = delta::apply_delta(r, src, bank);
    CHECK(s.code() == ota::Code::kCorrupt);
    CHECK(s.message().find("past the image size") != std::string::npos);
    CHECK_FALSE(bank.overrun);
    CHECK(bank.written() <= declared);
    CHECK_FALSE(bank.mismatch);
  }
}

TEST_CASE("an ECU install of a delta with long unchanged stretches stays within its banks", "[unit][delta]") {
  // As the agent installs: the base is the active image inside a larger bank (reads bounded to the
  // image), the delta comes from the staging file in pieces, the result goes to an inactive bank
  // as large as the target.
  struct BoundedReader : ota::RandomReader {
    ota::RandomReader& r;
    uint64_t n;
    BoundedReader(ota::RandomReader& rr, uint64_t nn) : r(rr), n(nn) {}
    uint64_t size() const override { return n; }
    ota::Status read_at(uint64_t off, uint8_t* buf, size_t len) override {
      if (off > n || len > n - off) return ota::make_error(ota::Code::kCorrupt, "read beyond the base image");
      return r.read_at(off, buf, len);
    }
  };
  const size_t image_size = kManyBlocks * kBlock + 4096;
  Bytes active_bank = fast_random(image_size + (1 << 20), 30);
  Bytes base(active_bank.begin(), active_bank.begin() + image_size);
  Bytes image = base;
  scramble(&image, 0, 5 << 10, 31);
  scramble(&image, 8 * kBlock + 5, 300, 32);
  Bytes d = encode(base, image, 19);

  MemoryReader bank_reader(active_bank);
  BoundedReader bounded(bank_reader, image_size);
  MemorySource staging(d, 64 << 10);
  ExpectSink inactive_bank(image, image.size());
  ota::HashingSink hashing(&inactive_bank);
  ota::Status s = delta::apply_delta(bounded, staging, hashing);
  INFO(s.to_string());
  REQUIRE(s.is_ok());
  CHECK(inactive_bank.matches());
  CHECK(hashing.bytes() == image.size());
  CHECK(hashing.finish() == ota::Sha256::of(image.data(), image.size()));
}

TEST_CASE("unchanged stretches are found exactly: in place and at the same distance from the end",
          "[unit][delta]") {
  const uint64_t mib = 1 << 20;
  Bytes base = fast_random(6 * mib, 40);
  Bytes image = base;
  scramble(&image, 2 * mib + 3, 100, 41);  // changed in place: [2 MiB + 3, +100)
  Bytes ins = fast_random(777, 42);        // an insertion: what follows keeps its distance from the end
  image.insert(image.begin() + 4 * mib, ins.begin(), ins.end());
  auto found = delta::detail::find_unchanged_stretches(base.data(), base.size(), image.data(), image.size());
  REQUIRE(found.size() == 3);
  CHECK(found[0].image_pos == 0);
  CHECK(found[0].base_pos == 0);
  CHECK(found[0].len == 2 * mib + 3);
  CHECK(found[1].image_pos == 2 * mib + 103);
  CHECK(found[1].base_pos == 2 * mib + 103);
  CHECK(found[1].len == 4 * mib - (2 * mib + 103));
  CHECK(found[2].image_pos == 4 * mib + 777);
  CHECK(found[2].base_pos == 4 * mib);
  CHECK(found[2].len == 2 * mib);
  // Shorter runs are left to the suffix-array matching.
  Bytes small = fast_random(delta::detail::kMinStretch - 1, 43);
  CHECK(delta::detail::find_unchanged_stretches(small.data(), small.size(), small.data(), small.size())
            .empty());
}

TEST_CASE("a match spanning two changed ranges of the base becomes a copy from each", "[unit][delta]") {
  // Base A x1 B x2 C, image A z1 B z2 C: A, B and C are unchanged stretches, so only x1 and x2 are
  // indexed, one after the other. z2 = the end of x1 then the start of x2: a single match there,
  // which must come out as a copy from x1's end and one from x2's start.
  const uint64_t mib = 1 << 20;
  Bytes a = fast_random(2 * mib, 50), x1 = fast_random(3000, 51), b = fast_random(2 * mib, 52),
        x2 = fast_random(3000, 53), c = fast_random(2 * mib, 54), z1 = fast_random(3000, 55);
  Bytes z2(x1.begin() + 1000, x1.end());
  z2.insert(z2.end(), x2.begin(), x2.begin() + 1000);
  Bytes base, image;
  for (const Bytes* part : {&a, &x1, &b, &x2, &c}) base.insert(base.end(), part->begin(), part->end());
  for (const Bytes* part : {&a, &z1, &b, &z2, &c}) image.insert(image.end(), part->begin(), part->end());
  std::vector<delta::detail::Entry> entries;
  uint64_t indexed = 0;
  REQUIRE(
      delta::detail::find_entries(base.data(), base.size(), image.data(), image.size(), &entries, &indexed)
          .is_ok());
  CHECK(indexed == x1.size() + x2.size());
  const uint64_t x1_end = a.size() + x1.size(), x2_at = x1_end + b.size();
  bool split = false;
  for (size_t k = 0; k + 1 < entries.size(); ++k) {
    const auto &e = entries[k], &f = entries[k + 1];
    split |= e.base_pos + e.diff_len == x1_end && e.extra_len == 0 && f.base_pos == x2_at &&
             f.image_pos == e.image_pos + e.diff_len && e.seek == static_cast<int64_t>(x2_at - x1_end);
  }
  CHECK(split);
  round_trip(base, image);
}
