// Internal: the delta container's layout, limits and little-endian/varint helpers.
//
// Layout (all integers little-endian):
//   header:  "OTADELTA" | u16 version | u8 transform | u8 reserved(0) | u64 base_size | u64 image_size
//            | base_sha256[32] | image_sha256[32] | u16 n_base_regions | u16 n_image_regions
//            | (u64 offset, u64 size) x n_base_regions | (u64 offset, u64 size) x n_image_regions
//            | header_check[8] = first 8 bytes of SHA-256 over everything before it
//   map:     u32 length | zstd frame of: varint count, then count x (varint base_offset delta,
//            zigzag-varint shift delta), offsets increasing; then varint n_base_segments,
//            (varint vaddr, offset, filesz) x n, the same for the image -- the AddressMap
//            (see transform.hpp)
//   blocks:  u8 tag ('B', or 'L' for the last block) | u32 chunk_len x kStreamCount
//            | the chunks, in StreamId order
// Each of the zstd streams is one zstd frame across all blocks; a block carries the part of each
// frame flushed at the block's end, so it decodes on its own once the previous blocks have. The
// last block ends the frames; nothing may follow it.
// Control entries: diff_len (varint, kCtrlDiffLen), extra_len (varint, kCtrlExtraLen), seek
// (varint, kCtrlSeek: zigzag(delta) << 1 | mode):
//   image += base[pos .. pos+diff_len) + diff bytes; pos += diff_len; image += extra bytes;
//   pos = (mode ? map.predict_base(image size so far) : pos) + delta.
// (Bytes are those of the transformed base/image when a transform is in use.)
// Diff bytes are sent sparsely, per block, as segments: a run of zeros (u8 in kDiffRun, 255 meaning
// 255 + a varint in kDiffRunLong), then a count (varint, kDiffLitLen) of literal bytes (kDiffLit).
// Extra bytes go to kExtra as they are.
//   trailer: SHA-256 of every delta byte before it (damage is named as such, not as a bad result).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ota::delta::detail {

constexpr char kMagic[8] = {'O', 'T', 'A', 'D', 'E', 'L', 'T', 'A'};
constexpr uint16_t kFormatVersion = 1;
constexpr size_t kFixedHeaderSize = 8 + 2 + 1 + 1 + 8 + 8 + 32 + 32 + 2 + 2;
constexpr size_t kHeaderCheckSize = 8;
constexpr size_t kMaxRegions = 64;

// Address map: matches shorter than this do not enter it; at most this many entries.
constexpr uint64_t kMinMapMatch = 64;
constexpr size_t kMaxMapEntries = size_t{1} << 18;
constexpr uint32_t kMaxMapSection = 4u << 20;
constexpr size_t kMaxMapRaw = kMaxMapEntries * 20 + 1024;

constexpr uint8_t kTagBlock = 'B';
constexpr uint8_t kTagLastBlock = 'L';

enum StreamId : int {
  kCtrlDiffLen = 0,
  kCtrlExtraLen,
  kCtrlSeek,
  kDiffRun,
  kDiffRunLong,
  kDiffLitLen,
  kDiffLit,
  kExtra,
  kStreamCount
};
constexpr const char* kStreamNames[kStreamCount] = {
    "control diff-length", "control extra-length",      "control seek",       "difference run",
    "difference long-run", "difference literal-length", "difference literal", "extra"};
// zstd window limits (log2 bytes) per stream: the encoder stays within them, the decoder refuses
// more. Their sum (36 MiB) is most of the apply heap bound.
constexpr int kStreamWindowLog[kStreamCount] = {20, 20, 20, 22, 20, 22, 23, 24};
constexpr size_t kBlockHeaderSize = 1 + 4 * kStreamCount;

// Per block: image bytes produced (diff + extra), control entries, and compressed chunk sizes.
constexpr uint64_t kMaxBlockOutput = uint64_t{4} << 20;
constexpr uint64_t kMaxBlockEntries = 65536;
constexpr uint32_t kMaxChunk = 5u << 20;
constexpr uint64_t kMaxBlockChunks = uint64_t{10} << 20;
constexpr uint8_t kRunEscape = 255;

// Grid on which the executable transform works: each block of the image is transformed on its own
// so the decoder can transform any piece of the base after reading just that block.
constexpr uint64_t kTransformBlock = 4096;

inline void put_u16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
inline void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t get_u32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
inline uint64_t get_u64(const uint8_t* p) { return uint64_t{get_u32(p)} | (uint64_t{get_u32(p + 4)} << 32); }
inline void set_u32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

inline void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
inline uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Parses a varint from [*p, end); false if truncated or longer than 10 bytes / 64 bits.
inline bool get_varint(const uint8_t** p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end) return false;
    uint8_t b = *(*p)++;
    if (shift == 63 && (b & 0x7e)) return false;
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

}  // namespace ota::delta::detail
