#include "images.hpp"

#include <vector>

#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"

namespace ota::sim {
namespace {

constexpr size_t kBlock = 1 << 20;

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// One block of firmware-like content: instruction-ish words from a small vocabulary, some tables
// of increasing values, some zero padding.
void fill_block(std::vector<uint8_t>& buf, size_t n, Rng& rng) {
  buf.resize(n);
  size_t i = 0;
  while (i < n) {
    size_t run = std::min<size_t>(n - i, 256 + rng.next() % 4096);
    switch (rng.next() % 8) {
      case 0:  // padding
        std::fill(buf.begin() + i, buf.begin() + i + run, 0);
        break;
      case 1: {  // table
        uint32_t v = static_cast<uint32_t>(rng.next());
        for (size_t k = 0; k < run; ++k) buf[i + k] = static_cast<uint8_t>((v + k / 4 * 16) >> (8 * (k % 4)));
        break;
      }
      default:  // code: few distinct opcodes, random operands
        for (size_t k = 0; k < run; ++k) {
          uint64_t r = rng.next();
          buf[i + k] = (k % 4 == 0) ? static_cast<uint8_t>(0x40 + (r % 24)) : static_cast<uint8_t>(r);
        }
    }
    i += run;
  }
}

}  // namespace

bool parse_size(const std::string& text, uint64_t* out) {
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (...) {
    return false;
  }
  std::string unit = text.substr(pos);
  uint64_t mul = 1;
  if (unit.empty() || unit == "B")
    mul = 1;
  else if (unit == "KiB" || unit == "K")
    mul = 1ull << 10;
  else if (unit == "MiB" || unit == "M")
    mul = 1ull << 20;
  else if (unit == "GiB" || unit == "G")
    mul = 1ull << 30;
  else
    return false;
  *out = v * mul;
  return true;
}

Result<ImageFile> write_base_image(const std::string& path, uint64_t size, uint64_t seed) {
  auto sink = FileSink::open(path, 0);
  if (!sink) return sink.status();
  Rng rng(seed);
  Sha256 sha;
  std::vector<uint8_t> buf;
  for (uint64_t off = 0; off < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, size - off));
    fill_block(buf, n, rng);
    sha.update(buf.data(), n);
    OTA_RETURN_IF_ERROR((*sink)->write(buf.data(), n));
    off += n;
  }
  OTA_RETURN_IF_ERROR((*sink)->sync());
  return ImageFile{path, size, sha.finish()};
}

Status copy_image(const ImageFile& image, const std::string& path) {
  auto in = FileReader::open(image.path);
  if (!in) return in.status();
  auto sink = FileSink::open(path, 0);
  if (!sink) return sink.status();
  std::vector<uint8_t> buf(kBlock);
  for (uint64_t off = 0; off < image.size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, image.size - off));
    OTA_RETURN_IF_ERROR((*in)->read_at(off, buf.data(), n));
    OTA_RETURN_IF_ERROR((*sink)->write(buf.data(), n));
    off += n;
  }
  return (*sink)->sync();
}

Result<ImageFile> write_next_image(const ImageFile& base, const std::string& path, uint64_t seed) {
  auto in = FileReader::open(base.path);
  if (!in) return in.status();
  auto sink = FileSink::open(path, 0);
  if (!sink) return sink.status();
  Rng rng(seed ^ 0xA5A5A5A5ull);
  Sha256 sha;
  uint64_t written = 0;
  std::vector<uint8_t> buf(kBlock), insert;
  for (uint64_t off = 0; off < base.size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, base.size - off));
    OTA_RETURN_IF_ERROR((*in)->read_at(off, buf.data(), n));
    // ~1 % of bytes patched, in small clusters.
    for (size_t k = 0; k < n / 100 / 8; ++k) {
      size_t at = rng.next() % n;
      for (size_t j = 0; j < 8 && at + j < n; ++j) buf[at + j] ^= static_cast<uint8_t>(rng.next() | 1);
    }
    // One insertion per block: what follows moves, as code does between releases.
    size_t split = rng.next() % n;
    fill_block(insert, 64 + rng.next() % 512, rng);
    for (const auto& piece : {std::make_pair(buf.data(), split), std::make_pair(insert.data(), insert.size()),
                              std::make_pair(buf.data() + split, n - split)}) {
      sha.update(piece.first, piece.second);
      OTA_RETURN_IF_ERROR((*sink)->write(piece.first, piece.second));
      written += piece.second;
    }
    off += n;
  }
  OTA_RETURN_IF_ERROR((*sink)->sync());
  return ImageFile{path, written, sha.finish()};
}

Result<ImageFile> write_delta(const ImageFile& base, const ImageFile& next, const std::string& path) {
  auto a = read_small_file(base.path, SIZE_MAX);
  if (!a) return a.status();
  auto b = read_small_file(next.path, SIZE_MAX);
  if (!b) return b.status();
  auto sink = FileSink::open(path, 0);
  if (!sink) return sink.status();
  HashingSink hashing(sink->get());
  OTA_RETURN_IF_ERROR(delta::make_delta(reinterpret_cast<const uint8_t*>(a->data()), a->size(),
                                        reinterpret_cast<const uint8_t*>(b->data()), b->size(), hashing));
  OTA_RETURN_IF_ERROR((*sink)->sync());
  return ImageFile{path, hashing.bytes(), hashing.finish()};
}

}  // namespace ota::sim
