// Internal: suffix array construction (libdivsufsort), 32-bit indices when they fit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ota/core/status.hpp"

namespace ota::delta::detail {

// REQUIRES: size < 2^31. Returns false if the library fails (out of memory).
bool build_suffix_array32(const uint8_t* data, size_t size, std::vector<int32_t>* sa);
bool build_suffix_array64(const uint8_t* data, size_t size, std::vector<int64_t>* sa);

}  // namespace ota::delta::detail
