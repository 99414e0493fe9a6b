// Streaming byte interfaces shared by transfer, hashing, delta reconstruction and flash writing.
// Nothing in the pipeline holds a whole image: data moves through these in bounded pieces.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ota/core/status.hpp"

namespace ota {

// Sequential output (an inactive bank, a staging file, a hash). Not thread-safe.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Appends n bytes. On error the sink is left in an unspecified state; the caller abandons it.
  virtual Status write(const uint8_t* data, size_t n) = 0;
};

// Sequential input (a delta or payload being read). Not thread-safe.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to cap bytes into buf; sets *got to the number read, 0 only at end of stream.
  virtual Status read(uint8_t* buf, size_t cap, size_t* got) = 0;
};

// Random-access input (the active bank as the base of a delta). Not thread-safe.
class RandomReader {
 public:
  virtual ~RandomReader() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset; kCorrupt if [offset, offset+n) is beyond size().
  virtual Status read_at(uint64_t offset, uint8_t* buf, size_t n) = 0;
};

}  // namespace ota
