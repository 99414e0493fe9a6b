// CRC-32C (Castagnoli), the per-chunk integrity check on the data path. Uses the SSE4.2 crc32
// instruction when the CPU has it (several GB/s), a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ota {

// Extends crc (0 for a fresh computation) over n bytes.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace ota
