// Matching for the encoder: unchanged stretches by linear comparison, the rest bsdiff-style over a
// suffix array of the base bytes outside them.
#include "matcher.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include "suffix_array.hpp"

namespace ota::delta::detail {
namespace {

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

// Runs of equal kStretchCell cells where image[i] == base[i + shift], extended byte-wise at both ends.
void stretches_at_shift(const uint8_t* base, uint64_t base_size, const uint8_t* image, uint64_t image_size,
                        int64_t shift, std::vector<Stretch>* out) {
  // Image offsets whose counterpart i + shift lies inside the base.
  const int64_t lo = std::max<int64_t>(0, -shift);
  const int64_t hi =
      std::min<int64_t>(static_cast<int64_t>(image_size), static_cast<int64_t>(base_size) - shift);
  auto add_run = [&](int64_t a, int64_t b) {
    while (a > lo && image[a - 1] == base[a - 1 + shift]) --a;
    b += match_len(image + b, hi - b, base + b + shift, hi - b);
    if (static_cast<uint64_t>(b - a) >= kMinStretch) {
      out->push_back(
          Stretch{static_cast<uint64_t>(a), static_cast<uint64_t>(a + shift), static_cast<uint64_t>(b - a)});
    }
  };
  int64_t run = -1;  // start of the current run of equal cells
  for (int64_t i = lo; i < hi; i += static_cast<int64_t>(kStretchCell)) {
    size_t n = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(kStretchCell), hi - i));
    bool equal = std::memcmp(image + i, base + i + shift, n) == 0;
    if (equal && run < 0) run = i;
    if (!equal && run >= 0) {
      add_run(run, i);
      run = -1;
    }
  }
  if (run >= 0) add_run(run, hi);
}

// Filter of the base's 8-byte substrings plus binary search over its suffix array.
template <typename Idx>
class Index {
 public:
  Index(const std::vector<Idx>& sa, const uint8_t* old, int64_t oldsize)
      : sa_(sa),
        old_(old),
        oldsize_(oldsize),
        bits_(std::max(16, 64 - __builtin_clzll(static_cast<uint64_t>(oldsize)) + 3)),
        seen_(size_t{1} << (bits_ - 6), 0) {
    for (int64_t i = 0; i + 8 <= oldsize; ++i) {
      uint64_t g = gram(old + i);
      seen_[g >> 6] |= uint64_t{1} << (g & 63);
    }
  }
  const uint8_t* old() const { return old_; }
  int64_t size() const { return oldsize_; }
  // False where the 8 bytes at p occur nowhere in the base: no match long enough to be taken starts
  // there, so the search is skipped. This keeps new (unmatched) data from costing a binary search
  // per byte.
  bool may_match(const uint8_t* p) const {
    uint64_t g = gram(p);
    return seen_[g >> 6] & (uint64_t{1} << (g & 63));
  }
  // Longest match of img[0, ilen) among the base's suffixes.
  int64_t search(const uint8_t* img, int64_t ilen, int64_t* pos) const {
    int64_t st = 0, en = oldsize_ - 1;
    while (en - st >= 2) {
      int64_t x = st + (en - st) / 2;
      int64_t ox = sa_[x];
      int64_t n = std::min(oldsize_ - ox, ilen);
      int c = std::memcmp(old_ + ox, img, static_cast<size_t>(n));
      if (c < 0 || (c == 0 && n < ilen)) {
        st = x;
      } else {
        en = x;
      }
    }
    int64_t x = match_len(old_ + sa_[st], oldsize_ - sa_[st], img, ilen);
    int64_t y = match_len(old_ + sa_[en], oldsize_ - sa_[en], img, ilen);
    if (x > y) {
      *pos = sa_[st];
      return x;
    }
    *pos = sa_[en];
    return y;
  }

 private:
  uint64_t gram(const uint8_t* p) const {
    uint64_t x;
    std::memcpy(&x, p, 8);
    return (x * 0x9e3779b97f4a7c15ull) >> (64 - bits_);
  }
  const std::vector<Idx>& sa_;
  const uint8_t* old_;
  int64_t oldsize_;
  int bits_;
  std::vector<uint64_t> seen_;
};

// The bsdiff 4 scan (Colin Percival's algorithm) of one range of the image: find exact matches with
// the suffix array, extend them approximately forwards and backwards, and emit entries.
template <typename Idx>
class Scan {
 public:
  Scan(const Index<Idx>& index, const uint8_t* img, int64_t newsize, uint64_t image_offset)
      : ix_(index),
        old_(index.old()),
        oldsize_(index.size()),
        img_(img),
        newsize_(newsize),
        offset_(image_offset) {}

  void run(std::vector<Entry>* out) {
    while (scan_ < newsize_) {
      if (advance()) emit(out);
    }
  }

 private:
  // A new match must beat the current alignment by this many bytes to be taken (bsdiff uses 8;
  // 16 trades fewer, costlier control entries for a little more extra data, measured smaller).
  static constexpr int64_t kMinGain = 16;

  bool same(int64_t i) const { return i + lastoffset_ < oldsize_ && old_[i + lastoffset_] == img_[i]; }

  // Moves scan_ past the current match to the next one that beats the current alignment (or to the
  // end); true if an entry ends there.
  bool advance() {
    int64_t oldscore = 0, scsc;
    for (scsc = scan_ += len_; scan_ < newsize_; scan_++) {
      if (scan_ + 8 <= newsize_ && !ix_.may_match(img_ + scan_)) {
        // No match of 8 bytes or more here: nothing to take (a shorter one is never taken).
        len_ = 0;
        if (same(scan_)) oldscore--;
        if (scsc < scan_ + 1) {
          if (same(scsc)) oldscore++;
          scsc++;
        }
        continue;
      }
      len_ = ix_.search(img_ + scan_, newsize_ - scan_, &pos_);
      for (; scsc < scan_ + len_; scsc++) {
        if (same(scsc)) oldscore++;
      }
      if ((len_ == oldscore && len_ != 0) || len_ > oldscore + kMinGain) break;
      if (same(scan_)) oldscore--;
    }
    return len_ != oldscore || scan_ == newsize_;
  }

  // Emits the entry from the last match to the one at scan_: the last match extended forwards and
  // this one backwards while more than half of the bytes agree, new bytes between them.
  void emit(std::vector<Entry>* out) {
    int64_t s = 0, sf = 0, lenf = 0;
    for (int64_t i = 0; lastscan_ + i < scan_ && lastpos_ + i < oldsize_;) {
      if (old_[lastpos_ + i] == img_[lastscan_ + i]) s++;
      i++;
      if (s * 2 - i > sf * 2 - lenf) {
        sf = s;
        lenf = i;
      }
    }
    int64_t lenb = 0;
    if (scan_ < newsize_) {
      int64_t sb = 0;
      s = 0;
      for (int64_t i = 1; scan_ >= lastscan_ + i && pos_ >= i; i++) {
        if (old_[pos_ - i] == img_[scan_ - i]) s++;
        if (s * 2 - i > sb * 2 - lenb) {
          sb = s;
          lenb = i;
        }
      }
    }
    if (lastscan_ + lenf > scan_ - lenb) {
      int64_t overlap = (lastscan_ + lenf) - (scan_ - lenb);
      int64_t ss = 0, lens = 0;
      s = 0;
      for (int64_t i = 0; i < overlap; i++) {
        if (img_[lastscan_ + lenf - overlap + i] == old_[lastpos_ + lenf - overlap + i]) s++;
        if (img_[scan_ - lenb + i] == old_[pos_ - lenb + i]) s--;
        if (s > ss) {
          ss = s;
          lens = i + 1;
        }
      }
      lenf += lens - overlap;
      lenb -= lens;
    }
    // The seek to the next match is set once all entries are known (link_seeks).
    int64_t extra_len = (scan_ - lenb) - (lastscan_ + lenf);
    out->push_back(Entry{offset_ + static_cast<uint64_t>(lastscan_), static_cast<uint64_t>(lastpos_),
                         static_cast<uint64_t>(lenf), static_cast<uint64_t>(extra_len), 0});
    lastscan_ = scan_ - lenb;
    lastpos_ = pos_ - lenb;
    lastoffset_ = pos_ - scan_;
  }

  const Index<Idx>& ix_;
  const uint8_t* old_;
  int64_t oldsize_;
  const uint8_t* img_;
  int64_t newsize_;
  uint64_t offset_;
  int64_t scan_ = 0, len_ = 0, pos_ = 0, lastscan_ = 0, lastpos_ = 0, lastoffset_ = 0;
};

// The base bytes outside the unchanged stretches, contiguous (copied only when there are stretches),
// and where each piece of them lies in the base.
class ReducedBase {
 public:
  ReducedBase(const uint8_t* base, uint64_t base_size, const std::vector<Stretch>& stretches) {
    std::vector<std::pair<uint64_t, uint64_t>> taken;  // base ranges of the stretches
    for (const auto& s : stretches) taken.emplace_back(s.base_pos, s.base_pos + s.len);
    std::sort(taken.begin(), taken.end());
    uint64_t at = 0;
    for (const auto& [b, e] : taken) {
      if (b > at) add_piece(at, b - at);
      at = std::max(at, e);
    }
    if (base_size > at) add_piece(at, base_size - at);
    if (pieces_.size() == 1 && pieces_[0].len == base_size) {
      data_ = base;  // nothing left out: the base itself
    } else {
      copy_.resize(size_);
      for (const auto& p : pieces_) std::memcpy(copy_.data() + p.reduced, base + p.base, p.len);
      data_ = copy_.data();
    }
  }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  // Appends e (its base_pos counted in the reduced base) in base offsets, split where its copy runs
  // from one piece into the next. An entry without a copy keeps base_pos 0 (no base position).
  void append(const Entry& e, std::vector<Entry>* out) const {
    if (e.diff_len == 0) {
      out->push_back(Entry{e.image_pos, 0, 0, e.extra_len, 0});
      return;
    }
    auto it = std::upper_bound(pieces_.begin(), pieces_.end(), e.base_pos,
                               [](uint64_t r, const Piece& p) { return r < p.reduced; });
    --it;
    uint64_t r = e.base_pos, image_pos = e.image_pos, left = e.diff_len;
    while (left) {
      uint64_t take = std::min(left, it->reduced + it->len - r);
      out->push_back(Entry{image_pos, it->base + (r - it->reduced), take, 0, 0});
      image_pos += take;
      r += take;
      left -= take;
      ++it;
    }
    out->back().extra_len = e.extra_len;
  }

 private:
  struct Piece {
    uint64_t reduced, base, len;
  };
  void add_piece(uint64_t base_off, uint64_t len) {
    pieces_.push_back(Piece{size_, base_off, len});
    size_ += len;
  }
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::vector<uint8_t> copy_;
  std::vector<Piece> pieces_;
};

bool build_suffix_array(const uint8_t* data, size_t size, std::vector<int32_t>* sa) {
  return build_suffix_array32(data, size, sa);
}
bool build_suffix_array(const uint8_t* data, size_t size, std::vector<int64_t>* sa) {
  return build_suffix_array64(data, size, sa);
}

// Entries for the whole image: a copy per stretch, the bsdiff scan of every range between them.
template <typename Idx>
Status scan_between_stretches(const ReducedBase& rb, const uint8_t* image, uint64_t image_size,
                              const std::vector<Stretch>& stretches, std::vector<Entry>* entries) {
  std::vector<Idx> sa;
  std::unique_ptr<Index<Idx>> index;
  if (rb.size()) {
    if (!build_suffix_array(rb.data(), rb.size(), &sa))
      return make_error(Code::kInternal, "suffix array failed");
    index = std::make_unique<Index<Idx>>(sa, rb.data(), static_cast<int64_t>(rb.size()));
  }
  std::vector<Entry> found;
  auto changed = [&](uint64_t from, uint64_t to) {
    if (!index) return entries->push_back(Entry{from, 0, 0, to - from, 0});
    found.clear();
    Scan<Idx>(*index, image + from, static_cast<int64_t>(to - from), from).run(&found);
    for (const auto& e : found) rb.append(e, entries);
  };
  uint64_t at = 0;
  for (const auto& s : stretches) {
    if (s.image_pos > at) changed(at, s.image_pos);
    entries->push_back(Entry{s.image_pos, s.base_pos, s.len, 0, 0});
    at = s.image_pos + s.len;
  }
  if (image_size > at) changed(at, image_size);
  return Status::ok();
}

// Sets every seek so that the decoder's base position reaches the next copy's base_pos; an entry
// without a copy leaves the position where it is. A first copy not at base position 0 gets an
// entry before it that only seeks.
void link_seeks(std::vector<Entry>* entries) {
  uint64_t pos = 0;  // the decoder's base position
  Entry* prev = nullptr;
  int64_t first_seek = 0;
  for (Entry& e : *entries) {
    e.seek = 0;
    if (e.diff_len == 0) {
      e.base_pos = pos;
    } else if (e.base_pos != pos) {
      int64_t seek = static_cast<int64_t>(e.base_pos - pos);
      if (prev) {
        prev->seek = seek;
      } else {
        first_seek = seek;
      }
    }
    pos = e.base_pos + e.diff_len;
    prev = &e;
  }
  if (first_seek) entries->insert(entries->begin(), Entry{0, 0, 0, 0, first_seek});
}

}  // namespace

std::vector<Stretch> find_unchanged_stretches(const uint8_t* base, uint64_t base_size, const uint8_t* image,
                                              uint64_t image_size) {
  std::vector<Stretch> found;
  if (base_size == 0 || image_size == 0) return found;
  // In place, or at the same distance from the end (what follows an insertion or a deletion).
  stretches_at_shift(base, base_size, image, image_size, 0, &found);
  if (base_size != image_size) {
    int64_t shift = static_cast<int64_t>(base_size) - static_cast<int64_t>(image_size);
    stretches_at_shift(base, base_size, image, image_size, shift, &found);
  }
  std::sort(found.begin(), found.end(),
            [](const Stretch& a, const Stretch& b) { return a.image_pos < b.image_pos; });
  std::vector<Stretch> out;
  for (Stretch s : found) {
    uint64_t end = out.empty() ? 0 : out.back().image_pos + out.back().len;
    if (s.image_pos < end) {  // overlaps the previous one: keep only what follows it
      uint64_t cut = std::min(end - s.image_pos, s.len);
      s.image_pos += cut;
      s.base_pos += cut;
      s.len -= cut;
    }
    if (s.len >= kMinStretch) out.push_back(s);
  }
  return out;
}

Status find_entries(const uint8_t* base, uint64_t base_size, const uint8_t* image, uint64_t image_size,
                    std::vector<Entry>* entries, uint64_t* indexed_bytes) {
  entries->clear();
  std::vector<Stretch> stretches = find_unchanged_stretches(base, base_size, image, image_size);
  ReducedBase rb(base, base_size, stretches);
  *indexed_bytes = rb.size();
  Status s = rb.size() < (uint64_t{1} << 31)
                 ? scan_between_stretches<int32_t>(rb, image, image_size, stretches, entries)
                 : scan_between_stretches<int64_t>(rb, image, image_size, stretches, entries);
  if (!s.is_ok()) return s;
  link_seeks(entries);
  return Status::ok();
}

}  // namespace ota::delta::detail
