#include "ota/core/sha256.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "ota/core/file.hpp"

namespace ota {

// OpenSSL's EVP SHA-256 is about twice as fast as mbedTLS 2.28 on CPUs without SHA extensions,
// and bulk hashing is on every image's critical path; signatures stay with mbedTLS.
struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  Impl() : ctx(EVP_MD_CTX_new()) {
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) std::abort();
  }
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t n) {
  if (n > 0) EVP_DigestUpdate(impl_->ctx, data, n);
}

Digest Sha256::finish() {
  Digest d{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, d.data(), &len);
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
  return d;
}

Digest Sha256::of(const void* data, size_t n) {
  Sha256 h;
  h.update(data, n);
  return h.finish();
}

const char* Sha256::backend() { return "openssl"; }

Result<Digest> sha256_file(const std::string& path) {
  auto reader = FileReader::open(path);
  if (!reader) return reader.status();
  return sha256_reader(**reader, (*reader)->size());
}

Result<Digest> sha256_reader(RandomReader& reader, uint64_t n) {
  constexpr size_t kBlock = 256 * 1024;
  std::vector<uint8_t> buf(kBlock);
  Sha256 h;
  uint64_t off = 0;
  while (off < n) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(kBlock, n - off));
    OTA_RETURN_IF_ERROR(reader.read_at(off, buf.data(), len));
    h.update(buf.data(), len);
    off += len;
  }
  return h.finish();
}

std::string to_hex(const uint8_t* data, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xf];
  }
  return out;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool digest_from_hex(std::string_view hex, Digest* out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int hi = hex_value(hex[2 * i]);
    int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool digest_from_bytes(std::string_view bytes, Digest* out) {
  if (bytes.size() != out->size()) return false;
  std::copy(bytes.begin(), bytes.end(), out->begin());
  return true;
}

Status HashingSink::write(const uint8_t* data, size_t n) {
  sha_.update(data, n);
  bytes_ += n;
  return next_ ? next_->write(data, n) : Status::ok();
}

}  // namespace ota
