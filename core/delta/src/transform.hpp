// Internal: file-type detection and the executable branch transform.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ota/core/delta.hpp"

namespace ota::delta::detail {

// Executable regions (file offsets) of an ELF image of the given kind: sections with SHF_EXECINSTR,
// or executable PT_LOAD segments when there are no section headers. Sorted, disjoint, clamped to
// the file, at most kMaxRegions. Empty for other kinds or malformed headers.
std::vector<Region> exec_regions(const uint8_t* data, size_t size, ImageKind kind);

// Predicts where the base's branch/reference targets went in the new image: a sorted list of
// (base offset, shift) pairs; a target t at or after base_offset[k] (and before base_offset[k+1])
// is predicted to be at t + shift[k] in the new image. Built by the encoder from its matches and
// sent in the delta; only a prediction (a wrong one costs size, never correctness).
// A loadable ELF segment: file bytes [offset, offset + filesz) appear at vaddr.
struct Segment {
  uint64_t vaddr = 0, offset = 0, filesz = 0;
};

struct AddressMap {
  std::vector<uint64_t> base_offset;
  std::vector<int64_t> shift;
  // With both lists set, 64-bit pointers in the base's data (outside the transform regions) are
  // rewritten to where their targets went too: vaddr -> base offset -> map -> new vaddr.
  std::vector<Segment> base_segments, image_segments;
  bool empty() const { return base_offset.empty(); }
  uint64_t map(uint64_t t) const;
  // Predicted new value of a base qword, or the qword itself when it does not look like a pointer.
  uint64_t map_pointer(uint64_t v) const;
  // The other way: the base offset an image offset most likely came from (for control entries).
  // Valid after build_inverse(); with an empty map it returns image_offset.
  void build_inverse();
  uint64_t predict_base(uint64_t image_offset) const;
  std::vector<std::pair<uint64_t, int64_t>> inverse;  // (image offset, shift), sorted
};

// PT_LOAD segments with file content, sorted by vaddr; at most kMaxSegments, else empty.
std::vector<Segment> load_segments(const uint8_t* data, size_t size);
constexpr size_t kMaxSegments = 16;

// Transforms (forward: relative -> absolute; inverse: back) the bytes of an image held in
// buf = image[buf_offset, buf_offset + len). buf_offset must be a multiple of kTransformBlock and
// len a multiple of it too unless the span ends the image. regions are those of this image.
// inverse(forward(x)) == x for every input (checked by the encoder and the tests).
// With a non-null map (forward only), each converted target is replaced by its predicted new
// target: the result is the base as the new image is expected to look (the decoder's prediction).
void transform_span(Transform t, bool forward, uint8_t* buf, uint64_t buf_offset, size_t len,
                    const std::vector<Region>& regions, const AddressMap* map = nullptr);

// Visits the converted reference fields of an image already transformed forward (whole image in
// data[0, size)): fn(field_offset, target) with target the field's absolute target (a file offset
// modulo 2^26 for x86-64; a byte offset for AArch64 B/BL).
template <typename Fn>
void for_each_target(Transform t, const uint8_t* data, size_t size, const std::vector<Region>& regions,
                     Fn fn);
// Decodes a transformed field at p the way for_each_target reports it; false if it is not one.
bool target_at(Transform t, const uint8_t* p, uint64_t* target);

// Validates regions read from an untrusted header: sorted, disjoint, inside [0, image_size).
bool regions_valid(const std::vector<Region>& regions, uint64_t image_size);

}  // namespace ota::delta::detail

namespace ota::delta::detail {

template <typename Fn>
void for_each_target(Transform t, const uint8_t* data, size_t size, const std::vector<Region>& regions,
                     Fn fn) {
  constexpr uint64_t kGrid = 4096;  // == kTransformBlock (format.hpp)
  uint64_t target = 0;
  for (const auto& r : regions) {
    for (uint64_t bs = r.offset / kGrid * kGrid; bs < r.offset + r.size && bs < size; bs += kGrid) {
      uint64_t s = std::max<uint64_t>(bs, r.offset);
      uint64_t e = std::min<uint64_t>({bs + kGrid, r.offset + r.size, size});
      if (t == Transform::kAArch64) {
        for (uint64_t i = (s + 3) & ~uint64_t{3}; i + 4 <= e; i += 4) {
          if (target_at(t, data + i, &target)) fn(i, target);
        }
        continue;
      }
      uint64_t i = s;
      while (i < e) {  // the same walk as the x86-64 transform
        uint8_t b = data[i];
        if ((b == 0x48 || b == 0x4c) && i + 7 <= e) {
          uint8_t op = data[i + 1];
          if ((op == 0x8d || op == 0x8b || op == 0x89) && (data[i + 2] & 0xc7) == 0x05) {
            if (target_at(t, data + i + 3, &target)) fn(i + 3, target);
            i += 7;
            continue;
          }
        } else if ((b == 0x83 || b == 0x80) && i + 7 <= e && data[i + 1] == 0x3d) {
          if (target_at(t, data + i + 2, &target)) fn(i + 2, target);
          i += 7;
          continue;
        } else if ((b == 0xe8 || b == 0xe9) && i + 5 <= e) {
          if (target_at(t, data + i + 1, &target)) fn(i + 1, target);
          i += 5;
          continue;
        }
        ++i;
      }
    }
  }
}

}  // namespace ota::delta::detail
