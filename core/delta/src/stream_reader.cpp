// The delta's compressed streams as apply reads them (stream_reader.hpp).
#include "stream_reader.hpp"

#include <algorithm>
#include <cstring>

#include "format.hpp"

namespace ota::delta::detail {

Status corrupt(const std::string& what) { return make_error(Code::kCorrupt, "delta: " + what); }

Status StreamReader::init(const char* name, int window_log_max) {
  name_ = name;
  dctx_.reset(ZSTD_createDCtx());
  if (!dctx_) return make_error(Code::kInternal, "zstd: out of memory");
  size_t r = ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_windowLogMax, window_log_max);
  if (ZSTD_isError(r)) return make_error(Code::kInternal, "zstd: cannot limit the window");
  return Status::ok();
}

void StreamReader::start_block(uint64_t block) {
  block_ = block;
  in_ = ZSTD_inBuffer{chunk_.data(), chunk_.size(), 0};
  if (!chunk_.empty()) drained_ = false;
}

Status StreamReader::read(uint8_t* dst, size_t n) {
  size_t take = std::min(n, buf_len_ - buf_pos_);
  std::memcpy(dst, buf_ + buf_pos_, take);
  buf_pos_ += take;
  dst += take;
  n -= take;
  while (n) {
    size_t got = 0;
    if (n >= sizeof(buf_)) {
      OTA_RETURN_IF_ERROR(decompress(dst, n, &got));
      dst += got;
      n -= got;
    } else {
      OTA_RETURN_IF_ERROR(decompress(buf_, sizeof(buf_), &got));
      buf_pos_ = 0;
      buf_len_ = got;
      take = std::min(n, got);
      std::memcpy(dst, buf_, take);
      buf_pos_ = take;
      dst += take;
      n -= take;
    }
    if (got == 0) return error("ends before the data its control entries need");
  }
  return Status::ok();
}

Status StreamReader::read_varint(uint64_t* v, bool* eof) {
  *v = 0;
  *eof = false;
  for (int shift = 0; shift < 64; shift += 7) {
    if (buf_pos_ == buf_len_) {
      OTA_RETURN_IF_ERROR(decompress(buf_, sizeof(buf_), &buf_len_));
      buf_pos_ = 0;
      if (buf_len_ == 0) {
        if (shift == 0) {
          *eof = true;
          return Status::ok();
        }
        return error("ends inside a number");
      }
    }
    uint8_t b = buf_[buf_pos_++];
    if (shift == 63 && (b & 0x7e)) return error("holds a number over 64 bits");
    *v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return Status::ok();
  }
  return error("holds a number over 64 bits");
}

Status StreamReader::read_varint(uint64_t* v) {
  bool eof = false;
  OTA_RETURN_IF_ERROR(read_varint(v, &eof));
  return eof ? error("ends before the data its control entries need") : Status::ok();
}

Status StreamReader::end_block(bool last) {
  if (buf_pos_ != buf_len_) return error("holds more data than its control entries use");
  uint8_t extra_byte;
  for (bool progress = true; progress;) {
    ZSTD_outBuffer out{&extra_byte, 1, 0};
    OTA_RETURN_IF_ERROR(step(&out, &progress));
    if (out.pos) return error("holds more data than its control entries use");
  }
  if (in_.pos != in_.size) return error("has unused bytes");
  if (last && last_ret_ != 0) return error("does not end its zstd frame in the last block");
  return Status::ok();
}

Status StreamReader::error(const std::string& what) const {
  return corrupt(std::string(name_) + " stream of block " + std::to_string(block_) + " " + what);
}

// Decompresses what the current chunk holds, up to cap bytes; *got == 0 once it is exhausted.
Status StreamReader::decompress(uint8_t* dst, size_t cap, size_t* got) {
  ZSTD_outBuffer out{dst, cap, 0};
  for (bool progress = true; progress && out.pos < cap;) OTA_RETURN_IF_ERROR(step(&out, &progress));
  *got = out.pos;
  return Status::ok();
}

// One call of ZSTD_decompressStream, or none when it could not produce anything. zstd fails a
// stream after 16 calls in a row without progress, and a stream may stay idle (an empty chunk) for
// any number of blocks: so it is called with no new input only when the previous call left its
// output buffer full, i.e. when zstd may still hold decoded bytes. A call without progress thus
// always follows one with progress, whatever the number of blocks.
Status StreamReader::step(ZSTD_outBuffer* out, bool* progress) {
  *progress = false;
  if (drained_ && in_.pos == in_.size) return Status::ok();
  size_t in_before = in_.pos, out_before = out->pos;
  size_t r = ZSTD_decompressStream(dctx_.get(), out, &in_);
  if (ZSTD_isError(r)) return error(std::string("zstd: ") + ZSTD_getErrorName(r));
  *progress = in_.pos != in_before || out->pos != out_before;
  if (*progress || r == 0) last_ret_ = r;  // 0: the frame is complete
  // Input used up with room left in the output: zstd has flushed all it can until more input.
  drained_ = in_.pos == in_.size && out->pos < out->size;
  return Status::ok();
}

Status DiffReader::read(uint8_t* dst, size_t n) {
  while (n) {
    if (zeros_) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, zeros_));
      std::memset(dst, 0, k);
      zeros_ -= k;
      dst += k;
      n -= k;
    } else if (literals_) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, literals_));
      OTA_RETURN_IF_ERROR(s_[kDiffLit].read(dst, k));
      literals_ -= k;
      dst += k;
      n -= k;
    } else {
      uint8_t run;
      OTA_RETURN_IF_ERROR(s_[kDiffRun].read(&run, 1));
      zeros_ = run;
      if (run == kRunEscape) {
        uint64_t more;
        OTA_RETURN_IF_ERROR(s_[kDiffRunLong].read_varint(&more));
        if (more > kMaxBlockOutput) return s_[kDiffRunLong].error("has a run longer than a block");
        zeros_ += more;
      }
      OTA_RETURN_IF_ERROR(s_[kDiffLitLen].read_varint(&literals_));
      if (literals_ > kMaxBlockOutput) return s_[kDiffLitLen].error("has a segment longer than a block");
    }
  }
  return Status::ok();
}

Status DiffReader::end_block() {
  if (zeros_ || literals_) return s_[kDiffRun].error("has a segment crossing the block's end");
  return Status::ok();
}

}  // namespace ota::delta::detail
