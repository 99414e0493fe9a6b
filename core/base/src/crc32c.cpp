#include "ota/core/crc32c.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ota {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t crc32c_table(const uint8_t* p, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_table();
  while (n--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

// Shifting a CRC register over n zero bytes is a multiplication by x^(8n) modulo the polynomial
// (GF(2), reflected bit order: x^0 is the top bit). Used to join CRCs computed side by side.
uint32_t mult_mod_p(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

uint32_t x_pow_8n_mod_p(uint64_t n) {
  uint32_t x2k = 1u << 30;  // x^1, then squared: x^2, x^4, ...
  uint32_t p = 1u << 31;    // x^0
  for (uint64_t e = n * 8; e != 0; e >>= 1) {
    if (e & 1) p = mult_mod_p(x2k, p);
    x2k = mult_mod_p(x2k, x2k);
  }
  return p;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint64_t crc_words(const uint8_t* p, size_t words, uint64_t c) {
  for (size_t i = 0; i < words; ++i) {
    uint64_t v;
    std::memcpy(&v, p + 8 * i, 8);
    c = _mm_crc32_u64(c, v);
  }
  return c;
}

// The crc32 instruction takes 3 cycles and can start one per cycle: three independent streams over
// three thirds of a block keep it busy, and their CRCs are joined by shifting.
constexpr size_t kStripe = 4096;  // bytes per stream and block

__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(const uint8_t* p, size_t n, uint32_t crc) {
  static const uint32_t shift1 = x_pow_8n_mod_p(kStripe);
  static const uint32_t shift2 = x_pow_8n_mod_p(2 * kStripe);
  uint64_t c = crc;
  while (n >= 3 * kStripe) {
    uint64_t c0 = c, c1 = 0, c2 = 0;
    for (size_t i = 0; i < kStripe; i += 8) {
      uint64_t v0, v1, v2;
      std::memcpy(&v0, p + i, 8);
      std::memcpy(&v1, p + kStripe + i, 8);
      std::memcpy(&v2, p + 2 * kStripe + i, 8);
      c0 = _mm_crc32_u64(c0, v0);
      c1 = _mm_crc32_u64(c1, v1);
      c2 = _mm_crc32_u64(c2, v2);
    }
    c = mult_mod_p(shift2, static_cast<uint32_t>(c0)) ^ mult_mod_p(shift1, static_cast<uint32_t>(c1)) ^
        static_cast<uint32_t>(c2);
    p += 3 * kStripe;
    n -= 3 * kStripe;
  }
  c = crc_words(p, n / 8, c);
  p += n / 8 * 8;
  n %= 8;
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
  crc = has_sse42 ? crc32c_sse42(p, n, crc) : crc32c_table(p, n, crc);
#else
  crc = crc32c_table(p, n, crc);
#endif
  return ~crc;
}

}  // namespace ota
