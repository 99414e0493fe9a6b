#include "transform.hpp"

#include <algorithm>
#include <cstring>

#include "format.hpp"

namespace ota::delta {

const char* image_kind_name(ImageKind kind) {
  switch (kind) {
    case ImageKind::kRaw:
      return "raw";
    case ImageKind::kElfX86_64:
      return "elf-x86-64";
    case ImageKind::kElfAArch64:
      return "elf-aarch64";
    case ImageKind::kCompressed:
      return "compressed";
  }
  return "unknown";
}

const char* transform_name(Transform t) {
  switch (t) {
    case Transform::kNone:
      return "none";
    case Transform::kX86_64:
      return "x86-64";
    case Transform::kAArch64:
      return "aarch64";
  }
  return "unknown";
}

ImageKind detect_image_kind(const uint8_t* d, size_t n) {
  if (n >= 64 && d[0] == 0x7f && d[1] == 'E' && d[2] == 'L' && d[3] == 'F' && d[4] == 2 && d[5] == 1) {
    uint16_t machine = detail::get_u16(d + 18);
    if (machine == 62) return ImageKind::kElfX86_64;
    if (machine == 183) return ImageKind::kElfAArch64;
    return ImageKind::kRaw;
  }
  auto starts = [&](const char* magic, size_t len) { return n >= len && std::memcmp(d, magic, len) == 0; };
  if (starts("\x1f\x8b", 2) || starts("\x28\xb5\x2f\xfd", 4) ||
      starts("\xfd"
             "7zXZ\x00",
             6) ||
      starts("BZh", 3) || starts("PK\x03\x04", 4)) {
    return ImageKind::kCompressed;
  }
  return ImageKind::kRaw;
}

namespace detail {
namespace {

std::vector<Region> normalize(std::vector<Region> r, uint64_t size) {
  std::vector<Region> out;
  for (auto& x : r) {
    if (x.offset >= size || x.size == 0) continue;
    x.size = std::min(x.size, size - x.offset);
    out.push_back(x);
  }
  std::sort(out.begin(), out.end(), [](const Region& a, const Region& b) { return a.offset < b.offset; });
  std::vector<Region> merged;
  for (const auto& x : out) {
    if (!merged.empty() && x.offset <= merged.back().offset + merged.back().size) {
      uint64_t end = std::max(merged.back().offset + merged.back().size, x.offset + x.size);
      merged.back().size = end - merged.back().offset;
    } else {
      merged.push_back(x);
    }
  }
  if (merged.size() > kMaxRegions) {
    // Too fragmented to list: cover them all with one region (the transform is harmless on data).
    Region all{merged.front().offset, merged.back().offset + merged.back().size - merged.front().offset};
    merged.assign(1, all);
  }
  return merged;
}

// Rewrites a 32-bit little-endian displacement at p between relative and absolute form, if it lies
// in the sign-extended `bits`-bit range (top bits all equal). That range is kept by the rewrite
// (addition modulo 2^bits), so forward and inverse select the same fields.
inline void convert(uint8_t* p, uint32_t pos, int bits, bool forward, const AddressMap* map) {
  uint32_t v = get_u32(p);
  uint32_t high = v >> (bits - 1);
  uint32_t all_ones = 0xffffffffu >> (bits - 1);
  if (high != 0 && high != all_ones) return;
  uint32_t mask = (bits == 32) ? 0xffffffffu : ((1u << bits) - 1);
  uint32_t x = (forward ? v + pos : v - pos) & mask;
  if (map) x = static_cast<uint32_t>(map->map(x)) & mask;
  if (x & (1u << (bits - 1))) x |= ~mask;
  set_u32(p, x);
}

constexpr int kCallBits = 26;  // E8/E9 rel32: targets within +-32 MiB
constexpr int kRipBits = 26;   // RIP-relative disp32
static_assert(kCallBits == kRipBits, "target_at() decodes both with one width");

// x86-64: CALL/JMP rel32 (E8/E9), RIP-relative MOV/LEA/store with a REX.W prefix
// (48/4C 8B/8D/89 modrm with mod=00 rm=101) and RIP-relative compares with an imm8 (83/80 3D).
// Decisions to skip over an instruction depend only on bytes that no transform changes (opcodes,
// and the modrm byte only after an opcode byte that cannot start a pattern), which is what makes
// the inverse exact.
void x86_range(uint8_t* buf, uint64_t buf_offset, size_t start, size_t end, bool forward,
               const AddressMap* map) {
  size_t i = start;
  while (i < end) {
    uint8_t b = buf[i];
    if ((b == 0x48 || b == 0x4c) && i + 7 <= end) {
      uint8_t op = buf[i + 1];
      if ((op == 0x8d || op == 0x8b || op == 0x89) && (buf[i + 2] & 0xc7) == 0x05) {
        convert(buf + i + 3, static_cast<uint32_t>(buf_offset + i + 7), kRipBits, forward, map);
        i += 7;
        continue;
      }
    } else if ((b == 0x83 || b == 0x80) && i + 7 <= end && buf[i + 1] == 0x3d) {
      convert(buf + i + 2, static_cast<uint32_t>(buf_offset + i + 7), kRipBits, forward, map);
      i += 7;
      continue;
    } else if ((b == 0xe8 || b == 0xe9) && i + 5 <= end) {
      convert(buf + i + 1, static_cast<uint32_t>(buf_offset + i + 5), kCallBits, forward, map);
      i += 5;
      continue;
    }
    ++i;
  }
}

// AArch64: B/BL imm26 (word offsets) and ADRP imm21 (page offsets), at 4-aligned file offsets.
void arm64_range(uint8_t* buf, uint64_t buf_offset, size_t start, size_t end, bool forward,
                 const AddressMap* map) {
  size_t i = start + static_cast<size_t>((4 - ((buf_offset + start) & 3)) & 3);
  for (; i + 4 <= end; i += 4) {
    uint32_t w = get_u32(buf + i);
    uint64_t pc = buf_offset + i;
    if ((w & 0x7c000000u) == 0x14000000u) {  // B (0x14..) and BL (0x94..)
      uint32_t imm = w & 0x03ffffffu;
      uint32_t pcw = static_cast<uint32_t>(pc >> 2);
      imm = (forward ? imm + pcw : imm - pcw) & 0x03ffffffu;
      if (map) imm = static_cast<uint32_t>(map->map(uint64_t{imm} << 2) >> 2) & 0x03ffffffu;
      set_u32(buf + i, (w & 0xfc000000u) | imm);
    } else if ((w & 0x9f000000u) == 0x90000000u) {  // ADRP
      uint32_t imm = (((w >> 5) & 0x7ffffu) << 2) | ((w >> 29) & 3u);
      uint32_t page = static_cast<uint32_t>(pc >> 12);
      imm = (forward ? imm + page : imm - page) & 0x1fffffu;
      if (map) imm = static_cast<uint32_t>(map->map((uint64_t{imm} << 12) + 0x800) >> 12) & 0x1fffffu;
      w = (w & 0x9f00001fu) | ((imm & 3u) << 29) | ((imm >> 2) << 5);
      set_u32(buf + i, w);
    }
  }
}

}  // namespace

std::vector<Region> exec_regions(const uint8_t* d, size_t n, ImageKind kind) {
  if (kind != ImageKind::kElfX86_64 && kind != ImageKind::kElfAArch64) return {};
  if (n < 64) return {};
  std::vector<Region> r;
  uint64_t shoff = get_u64(d + 0x28);
  uint16_t shentsize = get_u16(d + 0x3a), shnum = get_u16(d + 0x3c);
  if (shoff != 0 && shnum != 0 && shentsize >= 64 && shoff < n && (n - shoff) / shentsize >= shnum) {
    for (uint16_t k = 0; k < shnum; ++k) {
      const uint8_t* s = d + shoff + uint64_t{k} * shentsize;
      uint32_t type = get_u32(s + 4);
      uint64_t flags = get_u64(s + 8);
      if (type == 8 /* SHT_NOBITS */ || !(flags & 0x4 /* SHF_EXECINSTR */)) continue;
      r.push_back({get_u64(s + 24), get_u64(s + 32)});
    }
  } else {
    uint64_t phoff = get_u64(d + 0x20);
    uint16_t phentsize = get_u16(d + 0x36), phnum = get_u16(d + 0x38);
    if (phoff == 0 || phentsize < 56 || phoff >= n || (n - phoff) / phentsize < phnum) return {};
    for (uint16_t k = 0; k < phnum; ++k) {
      const uint8_t* p = d + phoff + uint64_t{k} * phentsize;
      if (get_u32(p) != 1 /* PT_LOAD */ || !(get_u32(p + 4) & 1 /* PF_X */)) continue;
      r.push_back({get_u64(p + 8), get_u64(p + 32)});
    }
  }
  return normalize(std::move(r), n);
}

bool regions_valid(const std::vector<Region>& regions, uint64_t image_size) {
  uint64_t prev_end = 0;
  for (const auto& r : regions) {
    if (r.size == 0 || r.offset < prev_end || r.offset > image_size || r.size > image_size - r.offset) {
      return false;
    }
    prev_end = r.offset + r.size;
  }
  return regions.size() <= kMaxRegions;
}

bool target_at(Transform t, const uint8_t* p, uint64_t* target) {
  uint32_t v = get_u32(p);
  if (t == Transform::kX86_64) {
    uint32_t high = v >> (kRipBits - 1);
    if (high != 0 && high != (0xffffffffu >> (kRipBits - 1))) return false;
    *target = v & ((1u << kRipBits) - 1);
    return true;
  }
  if (t == Transform::kAArch64 && (v & 0x7c000000u) == 0x14000000u) {
    *target = uint64_t{v & 0x03ffffffu} << 2;
    return true;
  }
  return false;
}

uint64_t AddressMap::map(uint64_t t) const {
  auto it = std::upper_bound(base_offset.begin(), base_offset.end(), t);
  if (it == base_offset.begin()) return t;
  return t + static_cast<uint64_t>(shift[static_cast<size_t>(it - base_offset.begin()) - 1]);
}

void AddressMap::build_inverse() {
  inverse.clear();
  for (size_t k = 0; k < base_offset.size(); ++k) {
    inverse.emplace_back(base_offset[k] + static_cast<uint64_t>(shift[k]), shift[k]);
  }
  std::stable_sort(inverse.begin(), inverse.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
}

uint64_t AddressMap::predict_base(uint64_t image_offset) const {
  auto it = std::upper_bound(inverse.begin(), inverse.end(), image_offset,
                             [](uint64_t x, const std::pair<uint64_t, int64_t>& e) { return x < e.first; });
  if (it == inverse.begin()) return image_offset;
  return image_offset - static_cast<uint64_t>(std::prev(it)->second);
}

uint64_t AddressMap::map_pointer(uint64_t v) const {
  // Small values are far more often integers than pointers to the first pages of an image.
  if (v < 0x10000) return v;
  for (const auto& b : base_segments) {
    if (v - b.vaddr >= b.filesz) continue;  // unsigned: also rejects v < vaddr
    uint64_t off = map(v - b.vaddr + b.offset);
    for (const auto& n : image_segments) {
      if (off - n.offset < n.filesz) return off - n.offset + n.vaddr;
    }
    return v;
  }
  return v;
}

std::vector<Segment> load_segments(const uint8_t* d, size_t n) {
  if (n < 64) return {};
  std::vector<Segment> out;
  uint64_t phoff = get_u64(d + 0x20);
  uint16_t phentsize = get_u16(d + 0x36), phnum = get_u16(d + 0x38);
  if (phoff == 0 || phentsize < 56 || phoff >= n || (n - phoff) / phentsize < phnum) return {};
  for (uint16_t k = 0; k < phnum; ++k) {
    const uint8_t* p = d + phoff + uint64_t{k} * phentsize;
    if (get_u32(p) != 1 /* PT_LOAD */) continue;
    Segment s{get_u64(p + 16), get_u64(p + 8), get_u64(p + 32)};
    if (s.filesz == 0) continue;
    out.push_back(s);
  }
  if (out.size() > kMaxSegments) return {};
  std::sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) { return a.vaddr < b.vaddr; });
  return out;
}

namespace {
void remap_pointers(uint8_t* buf, uint64_t buf_offset, size_t start, size_t end, const AddressMap& map) {
  size_t i = start + static_cast<size_t>((8 - ((buf_offset + start) & 7)) & 7);
  for (; i + 8 <= end; i += 8) {
    uint64_t v = get_u64(buf + i);
    uint64_t w = map.map_pointer(v);
    if (w != v) {
      set_u32(buf + i, static_cast<uint32_t>(w));
      set_u32(buf + i + 4, static_cast<uint32_t>(w >> 32));
    }
  }
}
}  // namespace

void transform_span(Transform t, bool forward, uint8_t* buf, uint64_t buf_offset, size_t len,
                    const std::vector<Region>& regions, const AddressMap* map) {
  if (!forward) map = nullptr;
  if (map && !map->base_segments.empty() && !map->image_segments.empty() && t != Transform::kNone) {
    // Data pointers: everything outside the code regions, one grid block at a time.
    for (uint64_t bs = buf_offset; bs < buf_offset + len; bs += kTransformBlock) {
      uint64_t be = std::min<uint64_t>(bs + kTransformBlock, buf_offset + len);
      uint64_t at = bs;
      for (const auto& r : regions) {
        uint64_t rs = std::max(bs, std::min(be, r.offset)),
                 re = std::max(bs, std::min(be, r.offset + r.size));
        if (rs > at) remap_pointers(buf, buf_offset, at - buf_offset, rs - buf_offset, *map);
        at = std::max(at, re);
      }
      if (be > at) remap_pointers(buf, buf_offset, at - buf_offset, be - buf_offset, *map);
    }
  }
  if (t == Transform::kNone || regions.empty()) return;
  for (uint64_t bs = buf_offset; bs < buf_offset + len; bs += kTransformBlock) {
    uint64_t be = std::min<uint64_t>(bs + kTransformBlock, buf_offset + len);
    for (const auto& r : regions) {
      uint64_t s = std::max(bs, r.offset), e = std::min(be, r.offset + r.size);
      if (s >= e) continue;
      size_t rs = static_cast<size_t>(s - buf_offset), re = static_cast<size_t>(e - buf_offset);
      if (t == Transform::kX86_64) {
        x86_range(buf, buf_offset, rs, re, forward, map);
      } else {
        arm64_range(buf, buf_offset, rs, re, forward, map);
      }
    }
  }
}

}  // namespace detail
}  // namespace ota::delta
