// Delta updates: a binary delta codec for firmware/executable images, shared by the platform side
// (ota-pack makes deltas) and the vehicle side (the SDK and the client rebuild images from them).
//
// What a delta is: a header (format version, base and image sizes, SHA-256 of both, the executable
// transform in use and the file regions it covers) followed by blocks, each carrying a piece of three
// zstd streams: control (copy/insert/seek instructions), difference (bytes to add to the base) and
// extra (new bytes). A delta with an empty base is a plain compressed full image; it takes the same
// apply path, so one reconstruction routine serves both payload kinds.
//
// Executables: for ELF x86-64 and AArch64 images, relative branch/call targets (and, on x86-64,
// RIP-relative data references) inside executable sections are rewritten to absolute form before
// diffing, so that code which merely moved produces identical bytes; apply undoes the rewrite.
//
// Threading: every function is reentrant; none of the objects passed in may be used concurrently.
// Errors: ota::Status; malformed deltas give kCorrupt, an unsupported format kUnsupported, a base
// or result whose size/SHA-256 differs from the header kHashMismatch, and the messages name the field
// or block that was wrong. On any error the bytes already written to the sink must be discarded by
// the caller (e.g. the inactive bank is not activated).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ota/core/io.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/status.hpp"

namespace ota::delta {

// Name of this codec's format, for Capabilities.delta_methods and package manifests.
constexpr const char* kDeltaMethod = "ota-delta-1";

// Upper bound of heap memory used by apply_delta()/apply_full(), whatever the image size: zstd
// windows of the eight streams (at most 36 MiB in total, plus about 2 MiB of zstd state), one
// block's compressed chunks (at most 10 MiB), the address map and its inverse (at most 8 MiB; 9 MiB
// more while it is decoded, before any block), the transformed-base cache (2 MiB) and small
// buffers: under 60 MiB. Deltas asking for more are rejected.
// Measured: 10-24 MB peak RSS applying the benchmark corpus (bench/delta/RESULTS.md).
constexpr size_t kMaxApplyHeapBytes = size_t{64} << 20;

// File types the encoder distinguishes to choose its method.
enum class ImageKind : uint8_t {
  kRaw = 0,         // anything else: plain byte-wise diff
  kElfX86_64 = 1,   // ELF64 little-endian, EM_X86_64: x86-64 branch/RIP transform
  kElfAArch64 = 2,  // ELF64 little-endian, EM_AARCH64: BL/B/ADRP transform
  kCompressed = 3,  // gzip/zstd/xz/bzip2/zip: diffing rarely helps, cheap zstd level for new bytes
};
const char* image_kind_name(ImageKind kind);
ImageKind detect_image_kind(const uint8_t* data, size_t size);

enum class Transform : uint8_t { kNone = 0, kX86_64 = 1, kAArch64 = 2 };
const char* transform_name(Transform t);

// A byte range of an image [offset, offset + size) to which the transform applies.
struct Region {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct DeltaHeader {
  uint16_t format_version = 0;
  Transform transform = Transform::kNone;
  uint64_t base_size = 0;             // 0: a full image (no base needed)
  uint64_t image_size = 0;            // size of the result
  Digest base_sha256{};               // SHA-256 of the whole base (of the empty string for a full image)
  Digest image_sha256{};              // SHA-256 of the whole result
  std::vector<Region> base_regions;   // where the transform applies in the base
  std::vector<Region> image_regions;  // where it applies in the result
  bool is_full() const { return base_size == 0; }
};

struct EncodeOptions {
  int level = 19;              // zstd level of the streams, 1..22
  bool exec_transform = true;  // use the branch transform when both images are ELF of one machine
};

// What the encoder did, for benchmarks and `ota-pack info`-like reporting.
struct EncodeStats {
  ImageKind base_kind = ImageKind::kRaw;
  ImageKind image_kind = ImageKind::kRaw;
  Transform transform = Transform::kNone;
  uint64_t entries = 0;      // control entries
  uint64_t diff_bytes = 0;   // bytes taken from the base (plus difference)
  uint64_t extra_bytes = 0;  // new bytes
  uint64_t ctrl_compressed = 0, diff_compressed = 0, extra_compressed = 0;
  uint64_t map_entries = 0, map_compressed = 0;  // address map (executables)
  bool data_pointers = false;                    // 64-bit data pointers predicted through the map too
  uint64_t delta_size = 0;                       // total bytes written to the sink
  uint64_t blocks = 0;
  uint64_t indexed_base_bytes = 0;  // base bytes suffix-sorted: those outside the unchanged stretches
};

// Builds a delta that turns `base` into `image` and writes it to `out`. Platform side: defined in
// ota_delta_make (platform/delta), which vehicle code does not link. `base` may be empty
// (base_size == 0, base may then be null): the delta is then the compressed full image.
// Unchanged stretches -- at least 1 MiB where the image equals the base at the same offset, or at
// the same distance from the end -- are found by plain comparison and cost neither matching memory
// nor matching time; only the rest of the base is suffix-sorted (EncodeStats.indexed_base_bytes).
// Memory (platform side; the encoder works on whole images): see encode_memory_bound(). Measured:
// 124 MB peak RSS for an 11 MB executable pair, 266 MB for a 26 MB -> 28 MB pair (bsdiff 4.3: 99 MB
// and 228 MB); 1.1 GB for a 512 MiB pair with three small changes 200 MiB apart (the images
// themselves, memory-mapped, are 1 GiB of it).
// Time: about 1 s of CPU for an 11 MB patch release, 15 s for a 28 MB minor release (bench/delta),
// 2 s for the 512 MiB pair (docs/DELTA.md, Large images).
// Errors: whatever `out` returns; kInvalidArgument for a bad level.
Status make_delta(const uint8_t* base, size_t base_size, const uint8_t* image, size_t image_size,
                  ByteSink& out, const EncodeOptions& options = {}, EncodeStats* stats = nullptr);

// Upper bound of the encoder's peak memory, the images included (the caller holds them, e.g.
// memory-mapped), for images without the executable transform: the images; per base byte outside
// the unchanged stretches (`indexed_base_bytes`) a copy of it, its suffix-array entry (4 bytes, 8
// above 2 GiB) and at most 2 bytes of substring filter; 96 bytes per control entry
// (EncodeStats.entries; typically one per few KiB of changed bytes); and kEncodeFixedBytes of zstd
// tables and block buffers. With the transform add a transformed copy of each image and the address
// map's votes (16 bytes per reference inside matched code).
constexpr uint64_t kEncodeFixedBytes = uint64_t{192} << 20;
constexpr uint64_t encode_memory_bound(uint64_t base_size, uint64_t image_size, uint64_t indexed_base_bytes,
                                       uint64_t entries) {
  const uint64_t per_indexed = indexed_base_bytes < (uint64_t{1} << 31) ? 7 : 11;
  return base_size + image_size + per_indexed * indexed_base_bytes + 96 * entries + kEncodeFixedBytes;
}

// Reads and validates only the header of a delta (consumes the header bytes from `delta`).
Result<DeltaHeader> read_delta_header(ByteSource& delta);

struct ApplyOptions {
  // Hash the whole base before applying (one extra sequential pass over it). Turn off only when the
  // caller has just verified it; the size is always checked.
  bool verify_base = true;
};

struct ApplyStats {
  DeltaHeader header;
  uint64_t delta_bytes = 0;  // bytes read from the delta
  uint64_t blocks = 0;
};

// Rebuilds the image from `base` (random reads; e.g. the active bank, possibly memory-mapped) and
// `delta` (read once, sequentially, e.g. straight from the network or a staging file) into `out`
// (written once, sequentially, e.g. the inactive bank). Checks the base's size and SHA-256 before
// writing anything, and the result's size and SHA-256 at the end: a result that fails is reported
// as kHashMismatch after it was written, so the caller must not activate it.
// Every length and offset in the delta is checked before use; heap use stays under
// kMaxApplyHeapBytes whatever the delta says.
Status apply_delta(RandomReader& base, ByteSource& delta, ByteSink& out, const ApplyOptions& options = {},
                   ApplyStats* stats = nullptr);

// Same for a full image (a delta made with an empty base): no base needed. A delta that needs a base
// is rejected with kInvalidArgument.
Status apply_full(ByteSource& delta, ByteSink& out, ApplyStats* stats = nullptr);

}  // namespace ota::delta
