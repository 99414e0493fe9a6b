// Internal (decoder): the compressed streams of a delta as apply reads them, block by block, and the
// difference bytes rebuilt from three of them (format.hpp).
#pragma once

#include <zstd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ota/core/status.hpp"

namespace ota::delta::detail {

// kCorrupt with "delta: " + what.
Status corrupt(const std::string& what);

// One of the compressed streams; its input is the current block's chunk. Reads are buffered.
// Errors: kCorrupt naming the stream and the block.
class StreamReader {
 public:
  // Decoding needs at most 2^window_log_max bytes of window; a frame asking for more is refused.
  Status init(const char* name, int window_log_max);
  // Where the block's chunk is read into, before start_block.
  std::vector<uint8_t>& chunk() { return chunk_; }
  void start_block(uint64_t block);
  // Exactly n bytes; kCorrupt if this block's part of the stream ends first.
  Status read(uint8_t* dst, size_t n);
  // A varint; *eof set (and OK) if the block's part of the stream ended before its first byte.
  Status read_varint(uint64_t* v, bool* eof);
  Status read_varint(uint64_t* v);
  // At the end of a block: the chunk must be fully used, with nothing decoded left over (and, in
  // the last block, the stream's frame complete).
  Status end_block(bool last);
  Status error(const std::string& what) const;

 private:
  Status decompress(uint8_t* dst, size_t cap, size_t* got);
  Status step(ZSTD_outBuffer* out, bool* progress);

  struct DCtxDeleter {
    void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
  };
  const char* name_ = "";
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx_;
  std::vector<uint8_t> chunk_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  size_t last_ret_ = 1;
  bool drained_ = false;  // nothing more comes out of the stream without new input
  uint64_t block_ = 0;
  uint8_t buf_[4096];
  size_t buf_pos_ = 0, buf_len_ = 0;
};

// Rebuilds the difference bytes from zero runs and literal segments (streams kDiffRun,
// kDiffRunLong, kDiffLitLen, kDiffLit of the array it is given).
class DiffReader {
 public:
  explicit DiffReader(StreamReader* s) : s_(s) {}
  Status read(uint8_t* dst, size_t n);
  // No segment may cross a block's end.
  Status end_block();

 private:
  StreamReader* s_;
  uint64_t zeros_ = 0, literals_ = 0;
};

}  // namespace ota::delta::detail
