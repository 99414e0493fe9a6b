// Delta encoder: the header, the executable transform and its address map, then the entries found by
// the matcher (matcher.hpp) written as blocks of zstd streams (block_writer.hpp).
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "block_writer.hpp"
#include "format.hpp"
#include "matcher.hpp"
#include "ota/core/delta.hpp"
#include "transform.hpp"

namespace ota::delta {
namespace {

using detail::Entry;
using Votes = std::vector<std::pair<uint64_t, int64_t>>;  // (base target, shift)

// The bytes the codec works on: the caller's images, or transformed copies of them. `old` is what
// the decoder will see of the base (transformed, then rewritten through the address map).
struct Views {
  const uint8_t* base;
  size_t base_size;
  const uint8_t* image;
  size_t image_size;
  const uint8_t* old;
  const uint8_t* img;
  std::vector<uint8_t> tbase, timage;
};

// Refines the map where it matters: every reference inside a match votes for where its base
// target went (the target its counterpart in the image has), and so does every pair of matching
// data pointers. A target's majority vote becomes a breakpoint of the map; breakpoints that do not
// change the shift are dropped, so the map grows only where the matches alone predicted wrong.
constexpr size_t kMinVotes = 2;

// Votes of the references (branch targets, RIP-relative data) inside matches.
void reference_votes(const DeltaHeader& h, const std::vector<Entry>& entries, const Views& v, Votes* votes) {
  // Entry covering image offset q, if any (entries are in image order).
  auto covering = [&](uint64_t q) -> const Entry* {
    auto it = std::upper_bound(entries.begin(), entries.end(), q,
                               [](uint64_t x, const Entry& e) { return x < e.image_pos; });
    if (it == entries.begin()) return nullptr;
    --it;
    return q - it->image_pos < it->diff_len ? &*it : nullptr;
  };
  const uint8_t* tbase = v.tbase.data();
  const uint8_t* timage = v.img;
  detail::for_each_target(
      h.transform, timage, v.image_size, h.image_regions, [&](uint64_t field, uint64_t target) {
        const Entry* e = covering(field);
        if (!e || field < e->image_pos + 1 || field + 4 > e->image_pos + e->diff_len) return;
        uint64_t fb = e->base_pos + (field - e->image_pos);
        uint64_t base_target;
        if (tbase[fb - 1] != timage[field - 1] || !detail::target_at(h.transform, tbase + fb, &base_target))
          return;
        votes->emplace_back(base_target, static_cast<int64_t>(target) - static_cast<int64_t>(base_target));
      });
}

// Votes of the 64-bit data pointers inside matches that point into a loaded segment in both images.
void pointer_votes(const std::vector<Entry>& entries, const Views& v, Votes* votes) {
  std::vector<detail::Segment> bseg = detail::load_segments(v.base, v.base_size);
  std::vector<detail::Segment> iseg = detail::load_segments(v.image, v.image_size);
  if (bseg.empty() || iseg.empty()) return;
  auto to_offset = [](const std::vector<detail::Segment>& segs, uint64_t va, uint64_t* off) {
    if (va < 0x10000) return false;
    for (const auto& sg : segs) {
      if (va - sg.vaddr < sg.filesz) {
        *off = va - sg.vaddr + sg.offset;
        return true;
      }
    }
    return false;
  };
  for (const auto& e : entries) {
    for (uint64_t q = (e.base_pos + 7) & ~uint64_t{7}; q + 8 <= e.base_pos + e.diff_len; q += 8) {
      uint64_t ob, oi;
      if (to_offset(bseg, detail::get_u64(v.base + q), &ob) &&
          to_offset(iseg, detail::get_u64(v.image + e.image_pos + (q - e.base_pos)), &oi)) {
        votes->emplace_back(ob, static_cast<int64_t>(oi) - static_cast<int64_t>(ob));
      }
    }
  }
}

// Merges each target's majority vote into the map (votes win at equal offsets).
void apply_votes(Votes votes, detail::AddressMap* amap) {
  if (votes.empty()) return;
  std::sort(votes.begin(), votes.end());
  Votes points;
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
  Votes merged;
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

// Adds a breakpoint at base offset `off`; a later breakpoint before the last one overrides it (a
// longer match starting inside).
void add_breakpoint(uint64_t off, int64_t shift, detail::AddressMap* amap) {
  while (amap->base_offset.size() > 1 && amap->base_offset.back() > off) {
    amap->base_offset.pop_back();
    amap->shift.pop_back();
  }
  if (amap->base_offset.size() == 1 && amap->base_offset.back() > off) {
    amap->base_offset.back() = off;
    amap->shift.back() = shift;
    return;
  }
  if (!amap->empty() && amap->base_offset.back() == off) {
    amap->shift.back() = shift;
    if (amap->shift.size() >= 2 && amap->shift[amap->shift.size() - 2] == shift) {
      amap->base_offset.pop_back();
      amap->shift.pop_back();
    }
    return;
  }
  if (!amap->empty() && amap->shift.back() == shift) return;
  if (amap->base_offset.size() < detail::kMaxMapEntries) {
    amap->base_offset.push_back(off);
    amap->shift.push_back(shift);
  }
}

// Address map: where the base's code and data went, predicted from the matches, so that the decoder
// can rewrite the base's references to moved targets before adding the difference. Each match maps
// its base range by its shift; where matches overlap in the base, the longer one wins. Between
// matches the previous shift carries on (gaps are usually changed code that moved with its
// neighbours).
detail::AddressMap build_address_map(const DeltaHeader& h, const std::vector<Entry>& entries,
                                     const Views& v) {
  detail::AddressMap amap;
  if (h.transform == Transform::kNone) return amap;
  std::vector<const Entry*> m;
  for (const auto& e : entries) {
    if (e.diff_len >= detail::kMinMapMatch) m.push_back(&e);
  }
  std::stable_sort(m.begin(), m.end(),
                   [](const Entry* a, const Entry* b) { return a->base_pos < b->base_pos; });
  uint64_t active_end = 0, active_len = 0;
  for (const Entry* e : m) {
    int64_t shift = static_cast<int64_t>(e->image_pos) - static_cast<int64_t>(e->base_pos);
    uint64_t end = e->base_pos + e->diff_len;
    if (e->base_pos >= active_end || e->diff_len > active_len) {
      add_breakpoint(e->base_pos, shift, &amap);
      active_end = end;
      active_len = e->diff_len;
    } else if (end > active_end) {
      add_breakpoint(active_end, shift, &amap);
      active_len = end - active_end;
      active_end = end;
    }
  }
  Votes votes;
  reference_votes(h, entries, v, &votes);
  pointer_votes(entries, v, &votes);
  apply_votes(std::move(votes), &amap);
  return amap;
}

// The decoder's view of the base: transformed, with references moved as the map predicts.
void remap_base(const DeltaHeader& h, const detail::AddressMap& amap, Views* v) {
  std::memcpy(v->tbase.data(), v->base, v->base_size);
  detail::transform_span(h.transform, true, v->tbase.data(), 0, v->tbase.size(), h.base_regions, &amap);
}

// Rewrites the base's 64-bit data pointers through the map too, if that predicts the matched image
// bytes better than leaving them be (it does for most executables; in some the targets' moves are
// too scattered). Counts qwords the rewrite makes exact against those it changes without hitting: a
// wrong prediction turns a regular difference into noise, so it must win clearly.
void choose_data_pointers(const DeltaHeader& h, const std::vector<Entry>& entries, Views* v,
                          detail::AddressMap* amap, EncodeStats* stats) {
  detail::AddressMap with_ptrs = *amap;
  with_ptrs.base_segments = detail::load_segments(v->base, v->base_size);
  with_ptrs.image_segments = detail::load_segments(v->image, v->image_size);
  if (with_ptrs.base_segments.empty() || with_ptrs.image_segments.empty()) return;
  int64_t gain = 0;
  for (const auto& e : entries) {
    uint64_t q = (e.base_pos + 7) & ~uint64_t{7};
    for (; q + 8 <= e.base_pos + e.diff_len; q += 8) {
      bool in_code = false;
      for (const auto& r : h.base_regions) in_code |= q + 8 > r.offset && q < r.offset + r.size;
      if (in_code) continue;
      uint64_t was = detail::get_u64(v->tbase.data() + q);
      uint64_t w = with_ptrs.map_pointer(was);
      if (w == was) continue;
      gain += w == detail::get_u64(v->img + e.image_pos + (q - e.base_pos)) ? 1 : -1;
    }
  }
  if (gain <= 0) return;
  stats->data_pointers = true;
  *amap = std::move(with_ptrs);
  remap_base(h, *amap, v);
}

// The map section: u32 length, then the zstd-compressed map (format.hpp).
Status write_map_section(const detail::AddressMap& amap, int level, ByteSink& out, EncodeStats* stats) {
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
  for (const auto* list : {&amap.base_segments, &amap.image_segments}) {
    detail::put_varint(raw, list->size());
    for (const auto& seg : *list) {
      detail::put_varint(raw, seg.vaddr);
      detail::put_varint(raw, seg.offset);
      detail::put_varint(raw, seg.filesz);
    }
  }
  std::string z(ZSTD_compressBound(raw.size()), '\0');
  size_t zn = ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(zn)) return detail::zstd_error("map", zn);
  z.resize(zn);
  std::string sec;
  detail::put_u32(sec, static_cast<uint32_t>(z.size()));
  sec += z;
  OTA_RETURN_IF_ERROR(out.write(reinterpret_cast<const uint8_t*>(sec.data()), sec.size()));
  stats->delta_size += sec.size();
  stats->map_entries = amap.base_offset.size();
  stats->map_compressed = sec.size();
  return Status::ok();
}

// The entries, as blocks of the eight streams.
Status write_blocks(const std::vector<Entry>& entries, detail::AddressMap& amap, const Views& v,
                    const EncodeOptions& options, ByteSink& out, EncodeStats* stats) {
  uint64_t diff_total = 0, extra_total = 0;
  for (const auto& e : entries) {
    diff_total += e.diff_len;
    extra_total += e.extra_len;
  }
  detail::BlockWriter w(out, stats);
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
    OTA_RETURN_IF_ERROR(w.add(v.img + e.image_pos, v.old + e.base_pos, e.diff_len,
                              v.img + e.image_pos + e.diff_len, e.extra_len, field));
  }
  return w.flush(true);
}

// Uses the branch transform when both images are ELF of one machine and the transform inverts
// exactly; fills the header's transform and regions and the views' transformed copies.
void choose_transform(const EncodeOptions& options, const EncodeStats& stats, DeltaHeader* h, Views* v) {
  v->old = v->base;
  v->img = v->image;
  bool elf = stats.image_kind == ImageKind::kElfX86_64 || stats.image_kind == ImageKind::kElfAArch64;
  if (!options.exec_transform || !elf || (v->base_size != 0 && stats.base_kind != stats.image_kind)) return;
  h->transform = stats.image_kind == ImageKind::kElfX86_64 ? Transform::kX86_64 : Transform::kAArch64;
  h->base_regions = detail::exec_regions(v->base, v->base_size, stats.base_kind);
  h->image_regions = detail::exec_regions(v->image, v->image_size, stats.image_kind);
  // Transformed copies; the caller's buffers stay untouched.
  v->tbase.assign(v->base, v->base + v->base_size);
  v->timage.assign(v->image, v->image + v->image_size);
  detail::transform_span(h->transform, true, v->tbase.data(), 0, v->tbase.size(), h->base_regions);
  detail::transform_span(h->transform, true, v->timage.data(), 0, v->timage.size(), h->image_regions);
  // The decoder rebuilds the image by inverting the transform: make sure that is exact.
  std::vector<uint8_t> check(detail::kTransformBlock);
  for (uint64_t off = 0; off < v->image_size; off += detail::kTransformBlock) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(detail::kTransformBlock, v->image_size - off));
    std::memcpy(check.data(), v->timage.data() + off, n);
    detail::transform_span(h->transform, false, check.data(), off, n, h->image_regions);
    if (std::memcmp(check.data(), v->image + off, n) != 0) {
      h->transform = Transform::kNone;
      h->base_regions.clear();
      h->image_regions.clear();
      std::vector<uint8_t>().swap(v->tbase);
      std::vector<uint8_t>().swap(v->timage);
      return;
    }
  }
  v->old = v->tbase.data();
  v->img = v->timage.data();
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

Status make_delta_impl(Views& v, ByteSink& out, const EncodeOptions& options, EncodeStats* stats) {
  stats->base_kind = detect_image_kind(v.base, v.base_size);
  stats->image_kind = detect_image_kind(v.image, v.image_size);
  DeltaHeader h;
  h.format_version = detail::kFormatVersion;
  h.base_size = v.base_size;
  h.image_size = v.image_size;
  h.base_sha256 = Sha256::of(v.base, v.base_size);
  h.image_sha256 = Sha256::of(v.image, v.image_size);
  choose_transform(options, *stats, &h, &v);
  stats->transform = h.transform;
  std::string header = encode_header(h);
  OTA_RETURN_IF_ERROR(out.write(reinterpret_cast<const uint8_t*>(header.data()), header.size()));
  stats->delta_size += header.size();

  std::vector<Entry> entries;
  OTA_RETURN_IF_ERROR(
      detail::find_entries(v.old, v.base_size, v.img, v.image_size, &entries, &stats->indexed_base_bytes));
  detail::AddressMap amap = build_address_map(h, entries, v);
  if (!amap.empty()) {
    remap_base(h, amap, &v);
    choose_data_pointers(h, entries, &v, &amap, stats);
  }
  OTA_RETURN_IF_ERROR(write_map_section(amap, options.level, out, stats));
  return write_blocks(entries, amap, v, options, out, stats);
}

}  // namespace

Status make_delta(const uint8_t* base, size_t base_size, const uint8_t* image, size_t image_size,
                  ByteSink& sink, const EncodeOptions& options, EncodeStats* stats) {
  if (options.level < 1 || options.level > ZSTD_maxCLevel()) {
    return make_error(Code::kInvalidArgument, "zstd level must be 1.." + std::to_string(ZSTD_maxCLevel()));
  }
  if ((base_size && !base) || (image_size && !image)) {
    return make_error(Code::kInvalidArgument, "null base or image with a non-zero size");
  }
  EncodeStats local;
  if (!stats) stats = &local;
  *stats = EncodeStats{};
  HashingSink out(&sink);  // the trailer is the SHA-256 of everything before it
  Views v{base, base_size, image, image_size, base, image, {}, {}};
  OTA_RETURN_IF_ERROR(make_delta_impl(v, out, options, stats));
  Digest trailer = out.finish();
  stats->delta_size += trailer.size();
  return sink.write(trailer.data(), trailer.size());
}

}  // namespace ota::delta
