// SHA-256 behind one interface. The backend is the fastest the build found (OpenSSL's libcrypto
// when present, mbedTLS otherwise); callers never see which.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ota/core/io.hpp"
#include "ota/core/status.hpp"

namespace ota {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t n);
  // Returns the digest and resets the object for reuse.
  Digest finish();

  static Digest of(const void* data, size_t n);
  static Digest of(std::string_view s) { return of(s.data(), s.size()); }
  // Name of the backend ("openssl" or "mbedtls"), for benchmarks.
  static const char* backend();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Hashes a whole file in bounded memory.
Result<Digest> sha256_file(const std::string& path);
// Hashes n bytes from a random reader starting at 0, in bounded memory.
Result<Digest> sha256_reader(RandomReader& reader, uint64_t n);

std::string to_hex(const uint8_t* data, size_t n);
inline std::string to_hex(const Digest& d) { return to_hex(d.data(), d.size()); }
// Parses 64 hex characters; false on any other input.
bool digest_from_hex(std::string_view hex, Digest* out);
// Digest from raw bytes (e.g. a protobuf bytes field); false unless exactly 32 bytes.
bool digest_from_bytes(std::string_view bytes, Digest* out);
// The digest as raw bytes, as protobuf bytes fields and state files hold it (digest_from_bytes's inverse).
inline std::string digest_to_bytes(const Digest& d) { return std::string(d.begin(), d.end()); }
// Lower-case hex of raw bytes (a digest read from a bytes field), for messages and reports.
inline std::string bytes_to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// A sink that hashes what passes through it on its way to another sink (which may be null).
class HashingSink : public ByteSink {
 public:
  explicit HashingSink(ByteSink* next) : next_(next) {}
  Status write(const uint8_t* data, size_t n) override;
  Digest finish() { return sha_.finish(); }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink* next_;
  Sha256 sha_;
  uint64_t bytes_ = 0;
};

}  // namespace ota
