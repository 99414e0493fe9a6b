// Synthetic firmware images for the simulators, tests and benchmarks: deterministic, generated in
// bounded memory, and shaped like firmware (code-like runs, tables, padding) so that compression
// and deltas behave as they would on real images.
#pragma once

#include <cstdint>
#include <string>

#include "ota/core/sha256.hpp"
#include "ota/core/status.hpp"

namespace ota::sim {

struct ImageFile {
  std::string path;
  uint64_t size = 0;
  Digest sha256{};
};

// Writes an image of `size` bytes derived from `seed`.
Result<ImageFile> write_base_image(const std::string& path, uint64_t size, uint64_t seed);

// Copies an image to `path` (e.g. into the other bank: an ECU flashed at the factory holds its
// image in both banks, so an update rewrites bank B in place rather than growing a new file).
Status copy_image(const ImageFile& image, const std::string& path);

// Writes the "next version" of `base`: the same image with scattered patches (about 1 % of the
// bytes changed) and a few insertions that shift what follows, as a new release would.
Result<ImageFile> write_next_image(const ImageFile& base, const std::string& path, uint64_t seed);

// Makes a delta from base to next with the project's codec (whole images in memory: platform side).
Result<ImageFile> write_delta(const ImageFile& base, const ImageFile& next, const std::string& path);

// Parses "8MiB", "512KiB", "1GiB", "1000" (bytes). False on anything else.
bool parse_size(const std::string& text, uint64_t* out);

}  // namespace ota::sim
