// Delta encoder: bsdiff-style approximate matching over a suffix array of the (transformed) base,
// with the control, difference and extra streams zstd-compressed separately.
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getCParams: size-dependent parameters
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "format.hpp"
#include "ota/core/delta.hpp"
#include "suffix_array.hpp"
#include "transform.hpp"

namespace ota::delta {
namespace {

using detail::kMaxBlockEntries;
using detail::kMaxBlockOutput;

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
using CCtxPtr = std::unique_ptr<ZSTD_CCtx, CCtxDeleter>;

Status zstd_error(const char* what, size_t code) {
  return make_error(Code::kInternal, std::string("zstd ") + what + ": " + ZSTD_getErrorName(code));
}

// One of the streams: raw bytes of the current block, compressed on block end.
class Stream {
 public:
  // Parameters follow the level, tuned down to the stream's total size (size_hint) so that small
  // streams do not get level-19 tables sized for 16 MiB windows.
  Status init(int level, int window_log_max, uint64_t size_hint) {
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
  std::string& raw() { return raw_; }
  // Compresses the pending raw bytes into `out` and flushes (or ends the frame on the last block).
  Status compress(bool last, std::string* out) {
    out->clear();
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

 private:
  CCtxPtr cctx_;
  std::string raw_;
};

// Groups control entries into blocks and writes them to the sink.
class BlockWriter {
 public:
  BlockWriter(ByteSink& out, EncodeStats* stats) : out_(out), stats_(stats) {}

  Status init(int level, int extra_level, uint64_t entries, uint64_t diff_total, uint64_t extra_total) {
    using namespace detail;
    const uint64_t hints[kStreamCount] = {entries * 2,     entries,         entries * 3,    diff_total / 16,
                                          diff_total / 64, diff_total / 16, diff_total / 8, extra_total};
    for (int k = 0; k < kStreamCount; ++k) {
      OTA_RETURN_IF_ERROR(streams_[k].init(k == kExtra ? extra_level : level, kStreamWindowLog[k],
                                           std::max<uint64_t>(hints[k], 1024)));
    }
    return Status::ok();
  }

  // Entry: diff_len bytes of image (new) against base (old) at the current base position, then
  // extra_len bytes of image from `extra`, then the seek (encoded, see format.hpp). Split across
  // blocks as needed.
  Status add(const uint8_t* img, const uint8_t* old, uint64_t diff_len, const uint8_t* extra,
             uint64_t extra_len, uint64_t seek_field) {
    using namespace detail;
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

  Status flush(bool last) {
    using namespace detail;
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

 private:
  // Turns the block's difference bytes (mostly zero) into zero runs and literal segments.
  void sparse_diff() {
    using namespace detail;
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

  ByteSink& out_;
  EncodeStats* stats_;
  Stream streams_[detail::kStreamCount];
  std::vector<uint8_t> diff_;
  uint64_t block_output_ = 0;
  uint64_t block_entries_ = 0;
};

inline int64_t match_len(const uint8_t* a, int64_t alen, const uint8_t* b, int64_t blen) {
  int64_t n = std::min(alen, blen), i = 0;
  while (i + 8 <= n) {
    uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) return i + (__builtin_ctzll(x ^ y) >> 3);
    i += 8;
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Longest match of img[0, ilen) among the base's suffixes.
template <typename Idx>
int64_t search(const std::vector<Idx>& sa, const uint8_t* old, int64_t oldsize, const uint8_t* img,
               int64_t ilen, int64_t* pos) {
  int64_t st = 0, en = oldsize - 1;
  while (en - st >= 2) {
    int64_t x = st + (en - st) / 2;
    int64_t ox = sa[x];
    int64_t n = std::min(oldsize - ox, ilen);
    int c = std::memcmp(old + ox, img, static_cast<size_t>(n));
    if (c < 0 || (c == 0 && n < ilen)) {
      st = x;
    } else {
      en = x;
    }
  }
  int64_t x = match_len(old + sa[st], oldsize - sa[st], img, ilen);
  int64_t y = match_len(old + sa[en], oldsize - sa[en], img, ilen);
  if (x > y) {
    *pos = sa[st];
    return x;
  }
  *pos = sa[en];
  return y;
}

// The bsdiff 4 scan (Colin Percival's algorithm): find exact matches with the suffix array, extend
// them approximately forwards and backwards, and emit (diff, extra, seek) entries.
struct Entry {
  uint64_t image_pos, base_pos, diff_len, extra_len;
  int64_t seek;
};

template <typename Idx>
void diff_scan(const std::vector<Idx>& sa, const uint8_t* old, int64_t oldsize, const uint8_t* img,
               int64_t newsize, std::vector<Entry>* entries) {
  // A new match must beat the current alignment by this many bytes to be taken (bsdiff uses 8;
  // 16 trades fewer, costlier control entries for a little more extra data, measured smaller).
  const int64_t min_gain = 16;
  // Filter of the base's 8-byte substrings: where the image's next 8 bytes occur nowhere in the
  // base, no match can be long enough to be taken, so the suffix array search is skipped. This is
  // what keeps new (unmatched) data from costing a binary search per byte.
  const int bits = std::max(16, 64 - __builtin_clzll(static_cast<uint64_t>(oldsize)) + 3);
  std::vector<uint64_t> seen(size_t{1} << (bits - 6), 0);
  auto gram = [bits](const uint8_t* p) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    return (x * 0x9e3779b97f4a7c15ull) >> (64 - bits);
  };
  for (int64_t i = 0; i + 8 <= oldsize; ++i) {
    uint64_t g = gram(old + i);
    seen[g >> 6] |= uint64_t{1} << (g & 63);
  }
  int64_t scan = 0, len = 0, pos = 0, lastscan = 0, lastpos = 0, lastoffset = 0;
  while (scan < newsize) {
    int64_t oldscore = 0;
    int64_t scsc;
    for (scsc = scan += len; scan < newsize; scan++) {
      if (scan + 8 <= newsize) {
        uint64_t g = gram(img + scan);
        if (!(seen[g >> 6] & (uint64_t{1} << (g & 63)))) {
          // No match of 8 bytes or more here: nothing to take (a shorter one is never taken).
          len = 0;
          if (scan + lastoffset < oldsize && old[scan + lastoffset] == img[scan]) oldscore--;
          if (scsc < scan + 1) {
            if (scsc + lastoffset < oldsize && old[scsc + lastoffset] == img[scsc]) oldscore++;
            scsc++;
          }
          continue;
        }
      }
      len = search(sa, old, oldsize, img + scan, newsize - scan, &pos);
      for (; scsc < scan + len; scsc++) {
        if (scsc + lastoffset < oldsize && old[scsc + lastoffset] == img[scsc]) oldscore++;
      }
      if ((len == oldscore && len != 0) || len > oldscore + min_gain) break;
      if (scan + lastoffset < oldsize && old[scan + lastoffset] == img[scan]) oldscore--;
    }
    if (len != oldscore || scan == newsize) {
      int64_t s = 0, sf = 0, lenf = 0;
      for (int64_t i = 0; lastscan + i < scan && lastpos + i < oldsize;) {
        if (old[lastpos + i] == img[lastscan + i]) s++;
        i++;
        if (s * 2 - i > sf * 2 - lenf) {
          sf = s;
          lenf = i;
        }
      }
      int64_t lenb = 0;
      if (scan < newsize) {
        int64_t sb = 0;
        s = 0;
        for (int64_t i = 1; scan >= lastscan + i && pos >= i; i++) {
          if (old[pos - i] == img[scan - i]) s++;
          if (s * 2 - i > sb * 2 - lenb) {
            sb = s;
            lenb = i;
          }
        }
      }
      if (lastscan + lenf > scan - lenb) {
        int64_t overlap = (lastscan + lenf) - (scan - lenb);
        int64_t ss = 0, lens = 0;
        s = 0;
        for (int64_t i = 0; i < overlap; i++) {
          if (img[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i]) s++;
          if (img[scan - lenb + i] == old[pos - lenb + i]) s--;
          if (s > ss) {
            ss = s;
            lens = i + 1;
          }
        }
        lenf += lens - overlap;
        lenb -= lens;
      }
      int64_t extra_len = (scan - lenb) - (lastscan + lenf);
      int64_t seek = (pos - lenb) - (lastpos + lenf);
      entries->push_back(Entry{static_cast<uint64_t>(lastscan), static_cast<uint64_t>(lastpos),
                               static_cast<uint64_t>(lenf), static_cast<uint64_t>(extra_len), seek});
      lastscan = scan - lenb;
      lastpos = pos - lenb;
      lastoffset = pos - scan;
    }
  }
}

// Refines the map where it matters: every reference inside a match votes for where its base
// target went (the target its counterpart in the image has), and so does every pair of matching
// data pointers. A target's majority vote becomes a breakpoint of the map; breakpoints that do not
// change the shift are dropped, so the map grows only where the matches alone predicted wrong.
constexpr size_t kMinVotes = 2;

void refine_map_with_votes(const DeltaHeader& h, const std::vector<Entry>& entries, const uint8_t* tbase,
                           size_t base_size, const uint8_t* timage, size_t image_size, const uint8_t* base,
                           const uint8_t* image, detail::AddressMap* amap) {
  std::vector<std::pair<uint64_t, int64_t>> votes;
  // Entry covering image offset q, if any (entries are in image order).
  auto covering = [&](uint64_t q) -> const Entry* {
    auto it = std::upper_bound(entries.begin(), entries.end(), q,
                               [](uint64_t x, const Entry& e) { return x < e.image_pos; });
    if (it == entries.begin()) return nullptr;
    --it;
    return q - it->image_pos < it->diff_len ? &*it : nullptr;
  };
  detail::for_each_target(
      h.transform, timage, image_size, h.image_regions, [&](uint64_t field, uint64_t target) {
        const Entry* e = covering(field);
        if (!e || field < e->image_pos + 1 || field + 4 > e->image_pos + e->diff_len) return;
        uint64_t fb = e->base_pos + (field - e->image_pos);
        uint64_t base_target;
        if (tbase[fb - 1] != timage[field - 1] || !detail::target_at(h.transform, tbase + fb, &base_target))
          return;
        votes.emplace_back(base_target, static_cast<int64_t>(target) - static_cast<int64_t>(base_target));
      });
  std::vector<detail::Segment> bseg = detail::load_segments(base, base_size);
  std::vector<detail::Segment> iseg = detail::load_segments(image, image_size);
  auto to_offset = [](const std::vector<detail::Segment>& segs, uint64_t v, uint64_t* off) {
    if (v < 0x10000) return false;
    for (const auto& sg : segs) {
      if (v - sg.vaddr < sg.filesz) {
        *off = v - sg.vaddr + sg.offset;
        return true;
      }
    }
    return false;
  };
  if (!bseg.empty() && !iseg.empty()) {
    for (const auto& e : entries) {
      for (uint64_t q = (e.base_pos + 7) & ~uint64_t{7}; q + 8 <= e.base_pos + e.diff_len; q += 8) {
        uint64_t ob, oi;
        if (to_offset(bseg, detail::get_u64(base + q), &ob) &&
            to_offset(iseg, detail::get_u64(image + e.image_pos + (q - e.base_pos)), &oi)) {
          votes.emplace_back(ob, static_cast<int64_t>(oi) - static_cast<int64_t>(ob));
        }
      }
    }
  }
  if (votes.empty()) return;
  std::sort(votes.begin(), votes.end());
  // Majority shift per target, merged with the map's own breakpoints (votes win at equal offsets).
  std::vector<std::pair<uint64_t, int64_t>> points;
  for (size_t i = 0; i < votes.size();) {
    size_t j = i, best = i, best_n = 0;
    while (j < votes.size() && votes[j].first == votes[i].first) {
      size_t k = j;
      while (k < votes.size() && votes[k] == votes[j]) ++k;
      if (k - j > best_n) {
        best_n = k - j;
        best = j;
      }
      j = k;
    }
    // A correction confirmed by a single reference rarely pays for its breakpoint; targets the map
    // already predicts are kept as anchors (they cost nothing once equal shifts are merged).
    bool agrees =
        amap->map(votes[best].first) == votes[best].first + static_cast<uint64_t>(votes[best].second);
    if (agrees || best_n >= kMinVotes) points.push_back(votes[best]);
    i = j;
  }
  std::vector<std::pair<uint64_t, int64_t>> merged;
  size_t a = 0, b = 0;
  while (a < amap->base_offset.size() || b < points.size()) {
    if (b == points.size() || (a < amap->base_offset.size() && amap->base_offset[a] < points[b].first)) {
      merged.emplace_back(amap->base_offset[a], amap->shift[a]);
      ++a;
    } else {
      if (a < amap->base_offset.size() && amap->base_offset[a] == points[b].first) ++a;
      merged.push_back(points[b++]);
    }
  }
  amap->base_offset.clear();
  amap->shift.clear();
  for (const auto& [off, shift] : merged) {
    if (!amap->shift.empty() && amap->shift.back() == shift) continue;
    if (amap->base_offset.size() == detail::kMaxMapEntries) break;
    amap->base_offset.push_back(off);
    amap->shift.push_back(shift);
  }
}

std::string encode_header(const DeltaHeader& h) {
  std::string s(detail::kMagic, sizeof(detail::kMagic));
  detail::put_u16(s, detail::kFormatVersion);
  s.push_back(static_cast<char>(h.transform));
  s.push_back(0);
  detail::put_u64(s, h.base_size);
  detail::put_u64(s, h.image_size);
  s.append(reinterpret_cast<const char*>(h.base_sha256.data()), 32);
  s.append(reinterpret_cast<const char*>(h.image_sha256.data()), 32);
  detail::put_u16(s, static_cast<uint16_t>(h.base_regions.size()));
  detail::put_u16(s, static_cast<uint16_t>(h.image_regions.size()));
  for (const auto* list : {&h.base_regions, &h.image_regions}) {
    for (const auto& r : *list) {
      detail::put_u64(s, r.offset);
      detail::put_u64(s, r.size);
    }
  }
  Digest check = Sha256::of(s.data(), s.size());
  s.append(reinterpret_cast<const char*>(check.data()), detail::kHeaderCheckSize);
  return s;
}

}  // namespace

Status make_delta(const uint8_t* base, size_t base_size, const uint8_t* image, size_t image_size,
                  ByteSink& sink, const EncodeOptions& options, EncodeStats* stats) {
  HashingSink out(&sink);  // the trailer is the SHA-256 of everything before it
  if (options.level < 1 || options.level > ZSTD_maxCLevel()) {
    return make_error(Code::kInvalidArgument, "zstd level must be 1.." + std::to_string(ZSTD_maxCLevel()));
  }
  if ((base_size && !base) || (image_size && !image)) {
    return make_error(Code::kInvalidArgument, "null base or image with a non-zero size");
  }
  EncodeStats local;
  if (!stats) stats = &local;
  *stats = EncodeStats{};
  stats->base_kind = detect_image_kind(base, base_size);
  stats->image_kind = detect_image_kind(image, image_size);

  DeltaHeader h;
  h.format_version = detail::kFormatVersion;
  h.base_size = base_size;
  h.image_size = image_size;
  h.base_sha256 = Sha256::of(base, base_size);
  h.image_sha256 = Sha256::of(image, image_size);
  if (options.exec_transform &&
      (stats->image_kind == ImageKind::kElfX86_64 || stats->image_kind == ImageKind::kElfAArch64) &&
      (base_size == 0 || stats->base_kind == stats->image_kind)) {
    h.transform = stats->image_kind == ImageKind::kElfX86_64 ? Transform::kX86_64 : Transform::kAArch64;
    h.base_regions = detail::exec_regions(base, base_size, stats->base_kind);
    h.image_regions = detail::exec_regions(image, image_size, stats->image_kind);
  }

  // Transformed copies (only when a transform applies); the caller's buffers stay untouched.
  std::vector<uint8_t> tbase, timage;
  const uint8_t* old = base;
  const uint8_t* img = image;
  if (h.transform != Transform::kNone) {
    tbase.assign(base, base + base_size);
    timage.assign(image, image + image_size);
    detail::transform_span(h.transform, true, tbase.data(), 0, tbase.size(), h.base_regions);
    detail::transform_span(h.transform, true, timage.data(), 0, timage.size(), h.image_regions);
    // The decoder rebuilds the image by inverting the transform: make sure that is exact.
    std::vector<uint8_t> check(detail::kTransformBlock);
    bool exact = true;
    for (uint64_t off = 0; off < image_size && exact; off += detail::kTransformBlock) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(detail::kTransformBlock, image_size - off));
      std::memcpy(check.data(), timage.data() + off, n);
      detail::transform_span(h.transform, false, check.data(), off, n, h.image_regions);
      exact = std::memcmp(check.data(), image + off, n) == 0;
    }
    if (exact) {
      old = tbase.data();
      img = timage.data();
    } else {
      h.transform = Transform::kNone;
      h.base_regions.clear();
      h.image_regions.clear();
      std::vector<uint8_t>().swap(tbase);
      std::vector<uint8_t>().swap(timage);
    }
  }
  stats->transform = h.transform;

  std::string header = encode_header(h);
  OTA_RETURN_IF_ERROR(out.write(reinterpret_cast<const uint8_t*>(header.data()), header.size()));
  stats->delta_size += header.size();

  const int64_t oldsize = static_cast<int64_t>(base_size), newsize = static_cast<int64_t>(image_size);
  std::vector<Entry> entries;
  if (base_size == 0) {
    if (image_size) entries.push_back(Entry{0, 0, 0, image_size, 0});
  } else if (base_size < (size_t{1} << 31)) {
    std::vector<int32_t> sa;
    if (!detail::build_suffix_array32(old, base_size, &sa))
      return make_error(Code::kInternal, "suffix array failed");
    diff_scan(sa, old, oldsize, img, newsize, &entries);
  } else {
    std::vector<int64_t> sa;
    if (!detail::build_suffix_array64(old, base_size, &sa))
      return make_error(Code::kInternal, "suffix array failed");
    diff_scan(sa, old, oldsize, img, newsize, &entries);
  }

  // Address map: where the base's code and data went, predicted from the matches, so that the
  // decoder can rewrite the base's references to moved targets before adding the difference.
  detail::AddressMap amap;
  if (h.transform != Transform::kNone) {
    // Each match maps its base range by its shift; where matches overlap in the base, the longer
    // one wins. Between matches the previous shift carries on (gaps are usually changed code that
    // moved with its neighbours).
    std::vector<const Entry*> m;
    for (const auto& e : entries) {
      if (e.diff_len >= detail::kMinMapMatch) m.push_back(&e);
    }
    std::stable_sort(m.begin(), m.end(),
                     [](const Entry* a, const Entry* b) { return a->base_pos < b->base_pos; });
    auto add = [&](uint64_t off, int64_t shift) {
      // A later breakpoint before the last one overrides it (a longer match starting inside).
      while (amap.base_offset.size() > 1 && amap.base_offset.back() > off) {
        amap.base_offset.pop_back();
        amap.shift.pop_back();
      }
      if (amap.base_offset.size() == 1 && amap.base_offset.back() > off) {
        amap.base_offset.back() = off;
        amap.shift.back() = shift;
        return;
      }
      if (!amap.empty() && amap.base_offset.back() == off) {
        amap.shift.back() = shift;
        if (amap.shift.size() >= 2 && amap.shift[amap.shift.size() - 2] == shift) {
          amap.base_offset.pop_back();
          amap.shift.pop_back();
        }
        return;
      }
      if (!amap.empty() && amap.shift.back() == shift) return;
      if (amap.base_offset.size() < detail::kMaxMapEntries) {
        amap.base_offset.push_back(off);
        amap.shift.push_back(shift);
      }
    };
    uint64_t active_end = 0, active_len = 0;
    for (const Entry* e : m) {
      int64_t shift = static_cast<int64_t>(e->image_pos) - static_cast<int64_t>(e->base_pos);
      uint64_t end = e->base_pos + e->diff_len;
      if (e->base_pos >= active_end || e->diff_len > active_len) {
        add(e->base_pos, shift);
        active_end = end;
        active_len = e->diff_len;
      } else if (end > active_end) {
        add(active_end, shift);
        active_len = end - active_end;
        active_end = end;
      }
    }
    refine_map_with_votes(h, entries, tbase.data(), base_size, img, image_size, base, image, &amap);
  }
  {
    std::string raw;
    detail::put_varint(raw, amap.base_offset.size());
    uint64_t prev_off = 0;
    int64_t prev_shift = 0;
    for (size_t k = 0; k < amap.base_offset.size(); ++k) {
      detail::put_varint(raw, amap.base_offset[k] - prev_off);
      detail::put_varint(raw, detail::zigzag(amap.shift[k] - prev_shift));
      prev_off = amap.base_offset[k];
      prev_shift = amap.shift[k];
    }
    if (!amap.empty()) {
      // The decoder's view of the base: transformed, with code targets moved as the map predicts.
      std::memcpy(tbase.data(), base, base_size);
      detail::transform_span(h.transform, true, tbase.data(), 0, tbase.size(), h.base_regions, &amap);
      // Data pointers too, if that predicts the matched image bytes better than leaving them be
      // (it does for most executables; in some the targets' moves are too scattered).
      detail::AddressMap with_ptrs = amap;
      with_ptrs.base_segments = detail::load_segments(base, base_size);
      with_ptrs.image_segments = detail::load_segments(image, image_size);
      if (!with_ptrs.base_segments.empty() && !with_ptrs.image_segments.empty()) {
        int64_t gain = 0;
        for (const auto& e : entries) {
          uint64_t q = (e.base_pos + 7) & ~uint64_t{7};
          for (; q + 8 <= e.base_pos + e.diff_len; q += 8) {
            bool in_code = false;
            for (const auto& r : h.base_regions) in_code |= q + 8 > r.offset && q < r.offset + r.size;
            if (in_code) continue;
            uint64_t v = detail::get_u64(tbase.data() + q);
            uint64_t w = with_ptrs.map_pointer(v);
            if (w == v) continue;
            // Count qwords the rewrite makes exact against those it changes without hitting: a
            // wrong prediction turns a regular difference into noise, so it must win clearly.
            uint64_t t = detail::get_u64(img + e.image_pos + (q - e.base_pos));
            if (w == t) {
              ++gain;
            } else {
              --gain;
            }
          }
        }
        if (gain > 0) {
          stats->data_pointers = true;
          amap = std::move(with_ptrs);
          std::memcpy(tbase.data(), base, base_size);
          detail::transform_span(h.transform, true, tbase.data(), 0, tbase.size(), h.base_regions, &amap);
        }
      }
    }
    for (const auto* list : {&amap.base_segments, &amap.image_segments}) {
      detail::put_varint(raw, list->size());
      for (const auto& seg : *list) {
        detail::put_varint(raw, seg.vaddr);
        detail::put_varint(raw, seg.offset);
        detail::put_varint(raw, seg.filesz);
      }
    }
    std::string z(ZSTD_compressBound(raw.size()), '\0');
    size_t zn = ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), options.level);
    if (ZSTD_isError(zn)) return zstd_error("map", zn);
    z.resize(zn);
    std::string sec;
    detail::put_u32(sec, static_cast<uint32_t>(z.size()));
    sec += z;
    OTA_RETURN_IF_ERROR(out.write(reinterpret_cast<const uint8_t*>(sec.data()), sec.size()));
    stats->delta_size += sec.size();
    stats->map_entries = amap.base_offset.size();
    stats->map_compressed = sec.size();
  }

  uint64_t diff_total = 0, extra_total = 0;
  for (const auto& e : entries) {
    diff_total += e.diff_len;
    extra_total += e.extra_len;
  }
  BlockWriter w(out, stats);
  int extra_level = stats->image_kind == ImageKind::kCompressed ? std::min(options.level, 3) : options.level;
  OTA_RETURN_IF_ERROR(w.init(options.level, extra_level, entries.size(), diff_total, extra_total));
  amap.build_inverse();
  for (const auto& e : entries) {
    // The next base position, relative to this one or to where the map says the next image
    // bytes came from, whichever is closer.
    uint64_t next_base = e.base_pos + e.diff_len + static_cast<uint64_t>(e.seek);
    uint64_t field = detail::zigzag(e.seek) << 1;
    if (!amap.empty()) {
      uint64_t predicted = amap.predict_base(e.image_pos + e.diff_len + e.extra_len);
      uint64_t by_map = (detail::zigzag(static_cast<int64_t>(next_base - predicted)) << 1) | 1;
      field = std::min(field, by_map);
    }
    OTA_RETURN_IF_ERROR(w.add(img + e.image_pos, old + e.base_pos, e.diff_len, img + e.image_pos + e.diff_len,
                              e.extra_len, field));
  }
  OTA_RETURN_IF_ERROR(w.flush(true));
  Digest trailer = out.finish();
  stats->delta_size += trailer.size();
  return sink.write(trailer.data(), trailer.size());
}

}  // namespace ota::delta
