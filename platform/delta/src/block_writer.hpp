// Internal (encoder): the eight zstd streams of a delta and their grouping into blocks (format.hpp):
// entries go in, blocks of at most kMaxBlockOutput image bytes and kMaxBlockEntries entries come out.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format.hpp"
#include "ota/core/delta.hpp"
#include "ota/core/io.hpp"
#include "ota/core/status.hpp"

namespace ota::delta::detail {

Status zstd_error(const char* what, size_t code);

// One of the streams: raw bytes of the current block, compressed at the block's end into one piece
// of the stream's single zstd frame.
class StreamEncoder {
 public:
  // Parameters follow the level, tuned down to the stream's total size (size_hint) so that small
  // streams do not get level-19 tables sized for 16 MiB windows.
  Status init(int level, int window_log_max, uint64_t size_hint);
  std::string& raw() { return raw_; }
  // Compresses the pending raw bytes into `out` and flushes (or ends the frame on the last block).
  Status compress(bool last, std::string* out);

 private:
  struct CCtxDeleter {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx_;
  std::string raw_;
};

// Groups control entries into blocks and writes them to the sink. Errors: the sink's, or kInternal
// if zstd fails or a block would break the format's limits.
class BlockWriter {
 public:
  BlockWriter(ByteSink& out, EncodeStats* stats) : out_(out), stats_(stats) {}

  // Sizes the streams for the totals of the whole delta.
  Status init(int level, int extra_level, uint64_t entries, uint64_t diff_total, uint64_t extra_total);

  // Entry: diff_len bytes of image (new) against base (old) at the current base position, then
  // extra_len bytes of image from `extra`, then the seek (encoded, see format.hpp). Split across
  // blocks as needed.
  Status add(const uint8_t* img, const uint8_t* old, uint64_t diff_len, const uint8_t* extra,
             uint64_t extra_len, uint64_t seek_field);

  // Writes the pending block (`last`: ends every stream's frame; nothing may follow).
  Status flush(bool last);

 private:
  // Turns the block's difference bytes (mostly zero) into zero runs and literal segments.
  void sparse_diff();

  ByteSink& out_;
  EncodeStats* stats_;
  StreamEncoder streams_[kStreamCount];
  std::vector<uint8_t> diff_;
  uint64_t block_output_ = 0;
  uint64_t block_entries_ = 0;
};

}  // namespace ota::delta::detail
