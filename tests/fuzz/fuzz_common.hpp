// Shared set-up of the libFuzzer targets: quiet protobuf logging, fixed keys (so that the committed
// seeds carry valid signatures and the fuzzer starts from inputs that reach past the signature
// checks), and in-memory byte streams.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <google/protobuf/stubs/logging.h>

#include "fixture.hpp"
#include "fuzz_keys.hpp"
#include "ota/core/io.hpp"

namespace ota_fuzz {

inline void quiet_protobuf() {
  // Invalid UTF-8 in string fields makes protobuf log an error per input: noise, and slow.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
}

inline void use_fixed_keys() {
  auto k = [](int i) { return ota::trust::PrivateKey::from_pem(kFuzzKeyPems[i]).value(); };
  trust_test::Keys::use(trust_test::Keys{k(0), k(1), k(2), k(3), k(4), k(5), k(6), k(7), k(8), k(9)});
}

inline void init() {
  quiet_protobuf();
  use_fixed_keys();
}

// The base image the delta target applies to (and its seeds were made against): fixed bytes.
inline std::string fuzz_base() {
  std::string b(4096, '\0');
  uint32_t x = 12345;
  for (auto& c : b) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return b;
}

class MemSource : public ota::ByteSource {
 public:
  MemSource(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  ota::Status read(uint8_t* buf, size_t cap, size_t* got) override {
    size_t k = cap < n_ - pos_ ? cap : n_ - pos_;
    if (k) std::memcpy(buf, p_ + pos_, k);
    pos_ += k;
    *got = k;
    return ota::Status::ok();
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

class MemReader : public ota::RandomReader {
 public:
  explicit MemReader(std::string data) : d_(std::move(data)) {}
  uint64_t size() const override { return d_.size(); }
  ota::Status read_at(uint64_t off, uint8_t* buf, size_t n) override {
    if (off > d_.size() || n > d_.size() - off)
      return ota::make_error(ota::Code::kCorrupt, "read beyond end");
    std::memcpy(buf, d_.data() + off, n);
    return ota::Status::ok();
  }

 private:
  std::string d_;
};

// Discards what it is given, but refuses to grow beyond a bound: a result larger than that is
// reported as an error rather than burning the fuzzer's time.
class NullSink : public ota::ByteSink {
 public:
  explicit NullSink(uint64_t cap) : cap_(cap) {}
  ota::Status write(const uint8_t*, size_t n) override {
    total_ += n;
    if (total_ > cap_) return ota::make_error(ota::Code::kNoSpace, "fuzz sink full");
    return ota::Status::ok();
  }

 private:
  uint64_t cap_;
  uint64_t total_ = 0;
};

}  // namespace ota_fuzz
