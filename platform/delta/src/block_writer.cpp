// The delta's zstd streams and their blocks (block_writer.hpp).
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getCParams: size-dependent parameters
#include "block_writer.hpp"

#include <algorithm>
#include <utility>

namespace ota::delta::detail {

Status zstd_error(const char* what, size_t code) {
  return make_error(Code::kInternal, std::string("zstd ") + what + ": " + ZSTD_getErrorName(code));
}

Status StreamEncoder::init(int level, int window_log_max, uint64_t size_hint) {
  cctx_.reset(ZSTD_createCCtx());
  if (!cctx_) return make_error(Code::kInternal, "zstd: out of memory");
  ZSTD_compressionParameters cp = ZSTD_getCParams(level, std::max<uint64_t>(size_hint, 1), 0);
  cp.windowLog = std::min<unsigned>(cp.windowLog, static_cast<unsigned>(window_log_max));
  // Bounded tables keep the encoder's memory near that of the images it holds (8 streams are
  // open at once); measured to cost under 0.5% of delta size against level-19 defaults.
  const unsigned cap = 22;
  cp.chainLog = std::min({cp.chainLog, cp.windowLog + 1, cap});
  cp.hashLog = std::min({cp.hashLog, cp.windowLog + 1, cap - 1});
  const std::pair<ZSTD_cParameter, int> params[] = {
      {ZSTD_c_compressionLevel, level},
      {ZSTD_c_windowLog, static_cast<int>(cp.windowLog)},
      {ZSTD_c_chainLog, static_cast<int>(cp.chainLog)},
      {ZSTD_c_hashLog, static_cast<int>(cp.hashLog)},
      {ZSTD_c_searchLog, static_cast<int>(cp.searchLog)},
      {ZSTD_c_minMatch, static_cast<int>(cp.minMatch)},
      {ZSTD_c_targetLength, static_cast<int>(cp.targetLength)},
      {ZSTD_c_strategy, static_cast<int>(cp.strategy)},
      {ZSTD_c_checksumFlag, 1},
  };
  for (const auto& [param, value] : params) {
    size_t r = ZSTD_CCtx_setParameter(cctx_.get(), param, value);
    if (ZSTD_isError(r)) return zstd_error("parameters", r);
  }
  return Status::ok();
}

Status StreamEncoder::compress(bool last, std::string* out) {
  out->clear();
  // An idle stream (nothing new in this block) gets an empty chunk without a call: after a complete
  // flush zstd holds nothing, so the call could only add an empty flush to the frame. The decoder
  // then skips the stream's empty chunks the same way (decoder.cpp, StreamReader::step).
  if (raw_.empty() && !last) return Status::ok();
  ZSTD_inBuffer in{raw_.data(), raw_.size(), 0};
  std::vector<char> buf(ZSTD_CStreamOutSize());
  ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_flush;
  for (;;) {
    ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
    size_t left = ZSTD_compressStream2(cctx_.get(), &ob, &in, mode);
    if (ZSTD_isError(left)) return zstd_error("compress", left);
    out->append(buf.data(), ob.pos);
    if (left == 0 && in.pos == in.size) break;
  }
  raw_.clear();
  return Status::ok();
}

Status BlockWriter::init(int level, int extra_level, uint64_t entries, uint64_t diff_total,
                         uint64_t extra_total) {
  const uint64_t hints[kStreamCount] = {entries * 2,     entries,         entries * 3,    diff_total / 16,
                                        diff_total / 64, diff_total / 16, diff_total / 8, extra_total};
  for (int k = 0; k < kStreamCount; ++k) {
    OTA_RETURN_IF_ERROR(streams_[k].init(k == kExtra ? extra_level : level, kStreamWindowLog[k],
                                         std::max<uint64_t>(hints[k], 1024)));
  }
  return Status::ok();
}

Status BlockWriter::add(const uint8_t* img, const uint8_t* old, uint64_t diff_len, const uint8_t* extra,
                        uint64_t extra_len, uint64_t seek_field) {
  for (;;) {
    if (block_output_ == kMaxBlockOutput || block_entries_ == kMaxBlockEntries) {
      OTA_RETURN_IF_ERROR(flush(false));
    }
    uint64_t room = kMaxBlockOutput - block_output_;
    uint64_t dt = std::min(diff_len, room);
    room -= dt;
    uint64_t et = std::min(extra_len, room);
    bool last_piece = dt == diff_len && et == extra_len;
    put_varint(streams_[kCtrlDiffLen].raw(), dt);
    put_varint(streams_[kCtrlExtraLen].raw(), et);
    put_varint(streams_[kCtrlSeek].raw(), last_piece ? seek_field : 0);
    size_t at = diff_.size();
    diff_.resize(at + dt);
    for (uint64_t i = 0; i < dt; ++i) diff_[at + i] = static_cast<uint8_t>(img[i] - old[i]);
    streams_[kExtra].raw().append(reinterpret_cast<const char*>(extra), et);
    block_output_ += dt + et;
    ++block_entries_;
    if (stats_) {
      ++stats_->entries;
      stats_->diff_bytes += dt;
      stats_->extra_bytes += et;
    }
    if (last_piece) return Status::ok();
    img += dt;
    old += dt;
    diff_len -= dt;
    extra += et;
    extra_len -= et;
  }
}

Status BlockWriter::flush(bool last) {
  sparse_diff();
  std::string chunks[kStreamCount];
  uint64_t total = 0;
  for (int k = 0; k < kStreamCount; ++k) {
    OTA_RETURN_IF_ERROR(streams_[k].compress(last, &chunks[k]));
    if (chunks[k].size() > kMaxChunk)
      return make_error(Code::kInternal, "delta block chunk over the format's limit");
    total += chunks[k].size();
  }
  if (total > kMaxBlockChunks) return make_error(Code::kInternal, "delta block over the format's limit");
  std::string h;
  h.push_back(static_cast<char>(last ? kTagLastBlock : kTagBlock));
  for (const auto& c : chunks) put_u32(h, static_cast<uint32_t>(c.size()));
  OTA_RETURN_IF_ERROR(out_.write(reinterpret_cast<const uint8_t*>(h.data()), h.size()));
  for (const auto& c : chunks) {
    OTA_RETURN_IF_ERROR(out_.write(reinterpret_cast<const uint8_t*>(c.data()), c.size()));
  }
  if (stats_) {
    stats_->ctrl_compressed +=
        chunks[kCtrlDiffLen].size() + chunks[kCtrlExtraLen].size() + chunks[kCtrlSeek].size();
    stats_->diff_compressed += chunks[kDiffRun].size() + chunks[kDiffRunLong].size() +
                               chunks[kDiffLitLen].size() + chunks[kDiffLit].size();
    stats_->extra_compressed += chunks[kExtra].size();
    stats_->delta_size += h.size() + total;
    ++stats_->blocks;
  }
  block_output_ = 0;
  block_entries_ = 0;
  return Status::ok();
}

void BlockWriter::sparse_diff() {
  size_t i = 0, n = diff_.size();
  while (i < n) {
    size_t z = i;
    while (z < n && diff_[z] == 0) ++z;
    size_t l = z;
    while (l < n && diff_[l] != 0) ++l;
    uint64_t run = z - i;
    if (run < kRunEscape) {
      streams_[kDiffRun].raw().push_back(static_cast<char>(run));
    } else {
      streams_[kDiffRun].raw().push_back(static_cast<char>(kRunEscape));
      put_varint(streams_[kDiffRunLong].raw(), run - kRunEscape);
    }
    put_varint(streams_[kDiffLitLen].raw(), l - z);
    streams_[kDiffLit].raw().append(reinterpret_cast<const char*>(diff_.data() + z), l - z);
    i = l;
  }
  diff_.clear();
}

}  // namespace ota::delta::detail
