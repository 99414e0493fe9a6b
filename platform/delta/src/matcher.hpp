// Internal (encoder): finds the entries that turn a base into an image -- copies from the base with a
// byte-wise difference, new bytes, seeks -- in image order.
//
// Unchanged stretches first: runs of at least kMinStretch bytes where the image equals the base at
// the same offset (or at the same distance from the end, for an image that grew or shrank in front
// of them) become plain copies, found with a linear comparison. Only the rest of the base is
// suffix-sorted and only the rest of the image is searched, bsdiff-style, against it. Firmware images
// with padding and data partitions that did not change are thus diffed in time and memory that grow
// with what changed, not with their size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ota/core/status.hpp"

namespace ota::delta::detail {

// image[image_pos, +diff_len) = base[base_pos, +diff_len) + difference; then extra_len new bytes;
// then the base position moves by seek (from base_pos + diff_len) for the next entry.
struct Entry {
  uint64_t image_pos, base_pos, diff_len, extra_len;
  int64_t seek;
};

// A range where image[image_pos, +len) == base[base_pos, +len).
struct Stretch {
  uint64_t image_pos, base_pos, len;
};

// Grid on which unchanged stretches are looked for, and their minimum length (shorter ones are left
// to the suffix-array matching, which finds them too).
constexpr uint64_t kStretchCell = uint64_t{64} << 10;
constexpr uint64_t kMinStretch = uint64_t{1} << 20;

// Unchanged stretches of at least kMinStretch bytes, in image order, not overlapping in the image.
std::vector<Stretch> find_unchanged_stretches(const uint8_t* base, uint64_t base_size, const uint8_t* image,
                                              uint64_t image_size);

// The entries turning base into image, in image order, each seek leading to the next entry's
// base_pos (the first entry starts at base position 0). *indexed_bytes: how many base bytes were
// suffix-sorted (those outside the unchanged stretches). kInternal if the suffix sort fails.
Status find_entries(const uint8_t* base, uint64_t base_size, const uint8_t* image, uint64_t image_size,
                    std::vector<Entry>* entries, uint64_t* indexed_bytes);

}  // namespace ota::delta::detail
