// Delta decoder: streams the image out of a sequentially read delta and a randomly read base, in
// bounded memory, checking every length and offset taken from the delta before using it.
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "format.hpp"
#include "ota/core/delta.hpp"
#include "stream_reader.hpp"
#include "transform.hpp"

namespace ota::delta {
namespace {

using detail::corrupt;
using detail::DiffReader;
using detail::kTransformBlock;
using detail::StreamReader;

// Reads exactly n bytes; kCorrupt naming `what` if the delta ends first.
Status read_exact(ByteSource& src, uint8_t* buf, size_t n, const char* what, uint64_t* counter) {
  size_t done = 0;
  while (done < n) {
    size_t got = 0;
    OTA_RETURN_IF_ERROR(src.read(buf + done, n - done, &got));
    if (got == 0) return corrupt(std::string("truncated in ") + what);
    done += got;
  }
  *counter += n;
  return Status::ok();
}

// Transformed view of the base: caches transform blocks (copies from the base are mostly
// sequential or revisit recent places, so a modest cache hits most of the time).
constexpr size_t kBaseCacheSlots = 512;
class BaseView {
 public:
  BaseView(RandomReader& base, Transform t, const std::vector<Region>& regions, const detail::AddressMap* map)
      : base_(base), t_(t), regions_(regions), map_(map) {}

  Status read(uint64_t off, uint8_t* dst, size_t n) {
    if (t_ == Transform::kNone) return base_.read_at(off, dst, n);
    while (n) {
      uint64_t blk = off / kTransformBlock;
      Slot* s = nullptr;
      OTA_RETURN_IF_ERROR(get(blk, &s));
      size_t in_blk = static_cast<size_t>(off - blk * kTransformBlock);
      size_t take = std::min(n, s->len - in_blk);
      std::memcpy(dst, s->data.data() + in_blk, take);
      dst += take;
      off += take;
      n -= take;
    }
    return Status::ok();
  }

 private:
  struct Slot {
    uint64_t block = ~uint64_t{0};
    size_t len = 0;
    std::vector<uint8_t> data;
  };
  // Direct-mapped: a block has one possible slot, so a hit costs one comparison.
  Status get(uint64_t blk, Slot** out) {
    Slot* slot = &slots_[blk % slots_.size()];
    if (slot->block != blk) {
      uint64_t start = blk * kTransformBlock;
      size_t len = static_cast<size_t>(std::min<uint64_t>(kTransformBlock, base_.size() - start));
      slot->data.resize(kTransformBlock);
      slot->block = ~uint64_t{0};
      OTA_RETURN_IF_ERROR(base_.read_at(start, slot->data.data(), len));
      detail::transform_span(t_, true, slot->data.data(), start, len, regions_,
                             map_->empty() ? nullptr : map_);
      slot->block = blk;
      slot->len = len;
    }
    *out = slot;
    return Status::ok();
  }
  RandomReader& base_;
  Transform t_;
  const std::vector<Region>& regions_;
  const detail::AddressMap* map_;
  std::array<Slot, kBaseCacheSlots> slots_;
};

// Collects the transformed image, undoes the transform one grid block at a time, hashes and writes.
// Never more than `limit` bytes (the image size the header states) reach the sink: a write that
// would pass it fails before anything of it is written.
class ImageOut {
 public:
  ImageOut(ByteSink& sink, Transform t, const std::vector<Region>& regions, uint64_t limit)
      : hashing_(&sink), t_(regions.empty() ? Transform::kNone : t), regions_(regions), limit_(limit) {
    if (t_ != Transform::kNone) buf_.resize(16 * kTransformBlock);  // whole grid blocks
  }
  Status write(const uint8_t* p, size_t n) {
    if (n > limit_ - written_) return corrupt("result would exceed the image size the header states");
    written_ += n;
    if (t_ == Transform::kNone) return hashing_.write(p, n);
    while (n) {
      size_t take = std::min(n, buf_.size() - fill_);
      std::memcpy(buf_.data() + fill_, p, take);
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ == buf_.size()) OTA_RETURN_IF_ERROR(flush());
    }
    return Status::ok();
  }
  Status flush() {
    if (fill_ == 0) return Status::ok();
    detail::transform_span(t_, false, buf_.data(), block_start_, fill_, regions_);
    OTA_RETURN_IF_ERROR(hashing_.write(buf_.data(), fill_));
    block_start_ += fill_;
    fill_ = 0;
    return Status::ok();
  }
  uint64_t written() const { return written_; }
  Digest finish() { return hashing_.finish(); }

 private:
  HashingSink hashing_;
  Transform t_;
  const std::vector<Region>& regions_;
  uint64_t limit_;
  std::vector<uint8_t> buf_;
  size_t fill_ = 0;
  uint64_t block_start_ = 0;
  uint64_t written_ = 0;
};

Result<DeltaHeader> parse_header(ByteSource& src, uint64_t* counter) {
  uint8_t fixed[detail::kFixedHeaderSize];
  OTA_RETURN_IF_ERROR(read_exact(src, fixed, sizeof(fixed), "header", counter));
  if (std::memcmp(fixed, detail::kMagic, sizeof(detail::kMagic)) != 0)
    return corrupt("not a delta (bad magic)");
  DeltaHeader h;
  h.format_version = detail::get_u16(fixed + 8);
  if (h.format_version != detail::kFormatVersion) {
    return make_error(Code::kUnsupported, "delta: format version " + std::to_string(h.format_version) +
                                              " not supported (this build reads version " +
                                              std::to_string(detail::kFormatVersion) + ")");
  }
  uint8_t t = fixed[10];
  if (t > static_cast<uint8_t>(Transform::kAArch64)) {
    return make_error(Code::kUnsupported, "delta: unknown transform " + std::to_string(t));
  }
  h.transform = static_cast<Transform>(t);
  if (fixed[11] != 0) return corrupt("reserved header byte is not zero");
  h.base_size = detail::get_u64(fixed + 12);
  h.image_size = detail::get_u64(fixed + 20);
  std::memcpy(h.base_sha256.data(), fixed + 28, 32);
  std::memcpy(h.image_sha256.data(), fixed + 60, 32);
  size_t nb = detail::get_u16(fixed + 92), ni = detail::get_u16(fixed + 94);
  if (nb > detail::kMaxRegions || ni > detail::kMaxRegions)
    return corrupt("too many transform regions in header");
  std::vector<uint8_t> rest((nb + ni) * 16 + detail::kHeaderCheckSize);
  OTA_RETURN_IF_ERROR(read_exact(src, rest.data(), rest.size(), "header regions", counter));
  Sha256 check;
  check.update(fixed, sizeof(fixed));
  check.update(rest.data(), rest.size() - detail::kHeaderCheckSize);
  Digest d = check.finish();
  if (std::memcmp(d.data(), rest.data() + rest.size() - detail::kHeaderCheckSize, detail::kHeaderCheckSize) !=
      0) {
    return corrupt("header check value mismatch (header damaged)");
  }
  for (size_t k = 0; k < nb + ni; ++k) {
    Region r{detail::get_u64(rest.data() + 16 * k), detail::get_u64(rest.data() + 16 * k + 8)};
    (k < nb ? h.base_regions : h.image_regions).push_back(r);
  }
  if (!detail::regions_valid(h.base_regions, h.base_size)) return corrupt("invalid base transform regions");
  if (!detail::regions_valid(h.image_regions, h.image_size))
    return corrupt("invalid image transform regions");
  if (h.transform == Transform::kNone && (nb || ni)) return corrupt("transform regions without a transform");
  return h;
}

Status read_map(ByteSource& src, const DeltaHeader& h, detail::AddressMap* map, uint64_t* counter) {
  uint8_t lenb[4];
  OTA_RETURN_IF_ERROR(read_exact(src, lenb, 4, "address map", counter));
  uint32_t zlen = detail::get_u32(lenb);
  if (zlen > detail::kMaxMapSection) return corrupt("address map length over the format's limit");
  std::vector<uint8_t> z(zlen);
  OTA_RETURN_IF_ERROR(read_exact(src, z.data(), z.size(), "address map", counter));
  unsigned long long raw_size = ZSTD_getFrameContentSize(z.data(), z.size());
  if (raw_size == ZSTD_CONTENTSIZE_ERROR || raw_size == ZSTD_CONTENTSIZE_UNKNOWN ||
      raw_size > detail::kMaxMapRaw) {
    return corrupt("address map: bad zstd frame or size");
  }
  std::vector<uint8_t> raw(static_cast<size_t>(raw_size));
  size_t n = ZSTD_decompress(raw.data(), raw.size(), z.data(), z.size());
  if (ZSTD_isError(n) || n != raw.size()) return corrupt("address map does not decompress");
  const uint8_t* p = raw.data();
  const uint8_t* end = p + raw.size();
  uint64_t count;
  if (!detail::get_varint(&p, end, &count) || count > detail::kMaxMapEntries)
    return corrupt("address map: bad count");
  if (count && h.transform == Transform::kNone) return corrupt("address map without a transform");
  uint64_t off = 0;
  int64_t shift = 0;
  for (uint64_t k = 0; k < count; ++k) {
    uint64_t d_off, z_shift;
    if (!detail::get_varint(&p, end, &d_off) || !detail::get_varint(&p, end, &z_shift)) {
      return corrupt("address map truncated");
    }
    // Offsets may lie past the base's end (targets in .bss); they must only increase.
    if ((k > 0 && d_off == 0) || d_off > UINT64_MAX - off) return corrupt("address map offsets out of order");
    off += d_off;
    shift =
        static_cast<int64_t>(static_cast<uint64_t>(shift) + static_cast<uint64_t>(detail::unzigzag(z_shift)));
    map->base_offset.push_back(off);
    map->shift.push_back(shift);
  }
  for (auto* list : {&map->base_segments, &map->image_segments}) {
    uint64_t n;
    if (!detail::get_varint(&p, end, &n) || n > detail::kMaxSegments)
      return corrupt("address map: bad segment count");
    for (uint64_t k = 0; k < n; ++k) {
      detail::Segment seg;
      if (!detail::get_varint(&p, end, &seg.vaddr) || !detail::get_varint(&p, end, &seg.offset) ||
          !detail::get_varint(&p, end, &seg.filesz)) {
        return corrupt("address map: truncated segment");
      }
      list->push_back(seg);
    }
  }
  if (p != end) return corrupt("address map has trailing bytes");
  return Status::ok();
}

class EmptyBase : public RandomReader {
 public:
  uint64_t size() const override { return 0; }
  Status read_at(uint64_t, uint8_t*, size_t n) override {
    return n ? make_error(Code::kCorrupt, "read beyond the empty base") : Status::ok();
  }
};

// Hashes what is read through it, for the delta's trailer.
class HashingSource : public ByteSource {
 public:
  explicit HashingSource(ByteSource& src) : src_(src) {}
  Status read(uint8_t* buf, size_t cap, size_t* got) override {
    OTA_RETURN_IF_ERROR(src_.read(buf, cap, got));
    sha_.update(buf, *got);
    return Status::ok();
  }
  Digest finish() { return sha_.finish(); }

 private:
  ByteSource& src_;
  Sha256 sha_;
};

// The base must be the one the delta was made for: its size always, its SHA-256 unless the caller
// has just checked it. Before anything is written.
Status check_base(RandomReader& base, const DeltaHeader& h, bool verify) {
  if (base.size() != h.base_size) {
    return make_error(Code::kHashMismatch, "delta: base is " + std::to_string(base.size()) +
                                               " bytes, the delta was made for a base of " +
                                               std::to_string(h.base_size) + " bytes");
  }
  if (!verify) return Status::ok();
  Sha256 sha;
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t off = 0; off < h.base_size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), h.base_size - off));
    OTA_RETURN_IF_ERROR(base.read_at(off, buf.data(), n));
    sha.update(buf.data(), n);
    off += n;
  }
  if (sha.finish() != h.base_sha256) {
    return make_error(
        Code::kHashMismatch,
        "delta: base SHA-256 differs from the one the delta was made for " + to_hex(h.base_sha256));
  }
  return Status::ok();
}

// Reads a block's header and its chunks into the streams; *last for the last block.
Status read_block(ByteSource& delta, StreamReader* streams, uint64_t block, bool* last, uint64_t* counter) {
  uint8_t bh[detail::kBlockHeaderSize];
  std::string where = "block " + std::to_string(block);
  OTA_RETURN_IF_ERROR(read_exact(delta, bh, sizeof(bh), where.c_str(), counter));
  if (bh[0] != detail::kTagBlock && bh[0] != detail::kTagLastBlock) return corrupt(where + ": bad block tag");
  *last = bh[0] == detail::kTagLastBlock;
  uint64_t total = 0;
  for (int k = 0; k < detail::kStreamCount; ++k) {
    uint32_t len = detail::get_u32(bh + 1 + 4 * k);
    total += len;
    if (len > detail::kMaxChunk || total > detail::kMaxBlockChunks) {
      return corrupt(where + ": chunk length over the format's limit");
    }
  }
  for (int k = 0; k < detail::kStreamCount; ++k) {
    auto& c = streams[k].chunk();
    size_t len = detail::get_u32(bh + 1 + 4 * k);
    // Capacity kept from earlier blocks counts against the heap bound: keep at most this block's.
    if (c.capacity() > len + (size_t{64} << 10)) std::vector<uint8_t>().swap(c);
    c.resize(len);
    OTA_RETURN_IF_ERROR(read_exact(delta, c.data(), c.size(), where.c_str(), counter));
    streams[k].start_block(block);
  }
  return Status::ok();
}

// The delta's end: the trailer (SHA-256 of everything before it), then nothing.
Status check_trailer(HashingSource& delta, ByteSource& delta_in, uint64_t* counter) {
  Digest expected = delta.finish();
  Digest trailer;
  OTA_RETURN_IF_ERROR(read_exact(delta_in, trailer.data(), trailer.size(), "trailer", counter));
  if (trailer != expected) return corrupt("checksum mismatch: the delta was damaged");
  uint8_t probe;
  size_t got = 0;
  OTA_RETURN_IF_ERROR(delta_in.read(&probe, 1, &got));
  if (got) return corrupt("trailing bytes after the delta's end");
  return Status::ok();
}

// Runs the control entries of each block: copies from the base plus the difference, new bytes,
// seeks; every length and offset is checked before use.
class Rebuilder {
 public:
  Rebuilder(RandomReader& base, ByteSink& sink, const DeltaHeader& h, const detail::AddressMap& amap,
            StreamReader* streams)
      : h_(h),
        amap_(amap),
        streams_(streams),
        bview_(base, h.transform, h.base_regions, &amap),
        out_(sink, h.transform, h.image_regions, h.image_size),
        diff_(streams),
        dbuf_(size_t{64} << 10),
        bbuf_(size_t{64} << 10) {}

  // Every entry of the current block, then the checks that the block's streams are used up.
  Status run_block(uint64_t block, bool last) {
    const std::string where = "block " + std::to_string(block);
    uint64_t block_output = 0, entries = 0;
    for (;;) {
      uint64_t dlen, elen, zseek;
      bool eof = false;
      OTA_RETURN_IF_ERROR(streams_[detail::kCtrlDiffLen].read_varint(&dlen, &eof));
      if (eof) break;
      OTA_RETURN_IF_ERROR(streams_[detail::kCtrlExtraLen].read_varint(&elen));
      OTA_RETURN_IF_ERROR(streams_[detail::kCtrlSeek].read_varint(&zseek));
      if (++entries > detail::kMaxBlockEntries) return corrupt(where + ": too many control entries");
      OTA_RETURN_IF_ERROR(check_entry(where, dlen, elen, &block_output));
      OTA_RETURN_IF_ERROR(copy(dlen));
      OTA_RETURN_IF_ERROR(insert(elen));
      // Low bit: relative to the current base position (0) or to the map's prediction (1).
      uint64_t from = (zseek & 1) ? amap_.predict_base(out_.written()) : pos_;
      uint64_t next = from + static_cast<uint64_t>(detail::unzigzag(zseek >> 1));  // modulo 2^64
      if (next > h_.base_size) return corrupt(where + ": seek outside the base");
      pos_ = next;
    }
    OTA_RETURN_IF_ERROR(diff_.end_block());
    for (int k = 0; k < detail::kStreamCount; ++k) OTA_RETURN_IF_ERROR(streams_[k].end_block(last));
    return Status::ok();
  }

  // After the last block: the result must have the header's size and SHA-256.
  Status finish() {
    OTA_RETURN_IF_ERROR(out_.flush());
    if (out_.written() != h_.image_size) {
      return corrupt("result is " + std::to_string(out_.written()) + " bytes, header says " +
                     std::to_string(h_.image_size));
    }
    Digest d = out_.finish();
    if (d != h_.image_sha256) {
      return make_error(Code::kHashMismatch, "delta: result SHA-256 " + to_hex(d) +
                                                 " differs from the expected " + to_hex(h_.image_sha256));
    }
    return Status::ok();
  }

 private:
  // An entry may not write past the image size the header states, produce more than a block may,
  // nor copy beyond the base's end.
  Status check_entry(const std::string& where, uint64_t dlen, uint64_t elen, uint64_t* block_output) const {
    uint64_t remaining = h_.image_size - out_.written();
    if (dlen > remaining || elen > remaining - dlen)
      return corrupt(where + ": entry writes past the image size");
    if (dlen > detail::kMaxBlockOutput - *block_output ||
        elen > detail::kMaxBlockOutput - *block_output - dlen) {
      return corrupt(where + ": block produces more than the format allows");
    }
    *block_output += dlen + elen;
    if (dlen > h_.base_size || pos_ > h_.base_size - dlen)
      return corrupt(where + ": copy beyond the end of the base");
    return Status::ok();
  }
  Status copy(uint64_t dlen) {
    while (dlen) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(dlen, dbuf_.size()));
      OTA_RETURN_IF_ERROR(diff_.read(dbuf_.data(), n));
      OTA_RETURN_IF_ERROR(bview_.read(pos_, bbuf_.data(), n));
      for (size_t i = 0; i < n; ++i) dbuf_[i] = static_cast<uint8_t>(dbuf_[i] + bbuf_[i]);
      OTA_RETURN_IF_ERROR(out_.write(dbuf_.data(), n));
      pos_ += n;
      dlen -= n;
    }
    return Status::ok();
  }
  Status insert(uint64_t elen) {
    while (elen) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(elen, dbuf_.size()));
      OTA_RETURN_IF_ERROR(streams_[detail::kExtra].read(dbuf_.data(), n));
      OTA_RETURN_IF_ERROR(out_.write(dbuf_.data(), n));
      elen -= n;
    }
    return Status::ok();
  }

  const DeltaHeader& h_;
  const detail::AddressMap& amap_;
  StreamReader* streams_;
  BaseView bview_;
  ImageOut out_;
  DiffReader diff_;
  std::vector<uint8_t> dbuf_, bbuf_;
  uint64_t pos_ = 0;  // position in the base
};

Status apply_impl(RandomReader& base, ByteSource& delta_in, ByteSink& sink, const ApplyOptions& options,
                  ApplyStats* stats) {
  HashingSource delta(delta_in);
  ApplyStats local;
  if (!stats) stats = &local;
  *stats = ApplyStats{};
  auto hr = parse_header(delta, &stats->delta_bytes);
  if (!hr) return hr.status();
  const DeltaHeader& h = hr.value();
  stats->header = h;
  OTA_RETURN_IF_ERROR(check_base(base, h, options.verify_base || h.base_size == 0));

  StreamReader streams[detail::kStreamCount];
  for (int k = 0; k < detail::kStreamCount; ++k) {
    OTA_RETURN_IF_ERROR(streams[k].init(detail::kStreamNames[k], detail::kStreamWindowLog[k]));
  }
  detail::AddressMap amap;
  OTA_RETURN_IF_ERROR(read_map(delta, h, &amap, &stats->delta_bytes));
  amap.build_inverse();
  Rebuilder rebuild(base, sink, h, amap, streams);
  for (bool last = false; !last; ++stats->blocks) {
    OTA_RETURN_IF_ERROR(read_block(delta, streams, stats->blocks, &last, &stats->delta_bytes));
    OTA_RETURN_IF_ERROR(rebuild.run_block(stats->blocks, last));
  }
  OTA_RETURN_IF_ERROR(check_trailer(delta, delta_in, &stats->delta_bytes));
  return rebuild.finish();
}

}  // namespace

Result<DeltaHeader> read_delta_header(ByteSource& delta) {
  uint64_t n = 0;
  return parse_header(delta, &n);
}

Status apply_delta(RandomReader& base, ByteSource& delta, ByteSink& out, const ApplyOptions& options,
                   ApplyStats* stats) {
  return apply_impl(base, delta, out, options, stats);
}

Status apply_full(ByteSource& delta, ByteSink& out, ApplyStats* stats) {
  EmptyBase empty;
  Status s = apply_impl(empty, delta, out, ApplyOptions{}, stats);
  if (s.code() == Code::kHashMismatch && s.message().find("base is") != std::string::npos) {
    return make_error(Code::kInvalidArgument, "delta: needs a base image; it is not a full image");
  }
  return s;
}

}  // namespace ota::delta
