// Test doubles for the delta codec's byte interfaces, in memory: a base, a delta handed out in pieces,
// and sinks that keep, or only check, what apply writes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ota/core/io.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/status.hpp"

namespace ota::delta_test {

using Bytes = std::vector<uint8_t>;

class MemoryReader : public RandomReader {
 public:
  explicit MemoryReader(const Bytes& b) : b_(b) {}
  uint64_t size() const override { return b_.size(); }
  Status read_at(uint64_t off, uint8_t* buf, size_t n) override {
    if (off > b_.size() || n > b_.size() - off) return make_error(Code::kCorrupt, "read beyond base");
    if (n) std::memcpy(buf, b_.data() + off, n);
    return Status::ok();
  }

 private:
  const Bytes& b_;
};

// Hands out the delta in pieces of at most `piece` bytes, to exercise the streaming reader.
class MemorySource : public ByteSource {
 public:
  MemorySource(const Bytes& b, size_t piece = SIZE_MAX) : b_(b), piece_(piece) {}
  Status read(uint8_t* buf, size_t cap, size_t* got) override {
    *got = std::min({cap, piece_, b_.size() - pos_});
    if (*got) std::memcpy(buf, b_.data() + pos_, *got);
    pos_ += *got;
    return Status::ok();
  }

 private:
  const Bytes& b_;
  size_t piece_;
  size_t pos_ = 0;
};

class VectorSink : public ByteSink {
 public:
  Status write(const uint8_t* d, size_t n) override {
    out.insert(out.end(), d, d + n);
    return Status::ok();
  }
  Bytes out;
};

// Compares what is written with the expected image as it arrives (no copy of a large result), and
// refuses, like a bank of that size, any byte past `capacity`.
class ExpectSink : public ByteSink {
 public:
  ExpectSink(const Bytes& expected, uint64_t capacity) : expected_(expected), capacity_(capacity) {}
  explicit ExpectSink(const Bytes& expected) : ExpectSink(expected, expected.size()) {}
  Status write(const uint8_t* d, size_t n) override {
    if (n > capacity_ - written_) {
      overrun = true;
      return make_error(Code::kNoSpace, "write past the sink's capacity");
    }
    if (written_ + n > expected_.size() || std::memcmp(expected_.data() + written_, d, n) != 0)
      mismatch = true;
    written_ += n;
    return Status::ok();
  }
  uint64_t written() const { return written_; }
  bool matches() const { return !mismatch && !overrun && written_ == expected_.size(); }
  bool mismatch = false;
  bool overrun = false;

 private:
  const Bytes& expected_;
  uint64_t capacity_;
  uint64_t written_ = 0;
};

// n bytes of cheap pseudo-random data (xorshift64*): large test images in a fraction of a second.
inline Bytes fast_random(size_t n, uint64_t seed) {
  Bytes b(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545f4914f6cdd1dull;
    std::memcpy(b.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return b;
}

// Rewrites the header check value after a deliberate header edit, as an attacker could.
inline void reseal_header(Bytes* d, size_t header_len) {
  Digest check = Sha256::of(d->data(), header_len - 8);
  std::memcpy(d->data() + header_len - 8, check.data(), 8);
}

}  // namespace ota::delta_test
