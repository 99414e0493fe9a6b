// Round trips and rejection of damaged deltas, on generated data only (no network, no corpus).
#include <malloc.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "delta_support.hpp"
#include "format.hpp"
#include "ota/core/delta.hpp"
#include "transform.hpp"

namespace {

using ota::delta_test::Bytes;
using ota::delta_test::MemoryReader;
using ota::delta_test::MemorySource;
using ota::delta_test::reseal_header;
using ota::delta_test::VectorSink;
namespace delta = ota::delta;

Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

Bytes make_delta(const Bytes& base, const Bytes& image, delta::EncodeStats* stats = nullptr, int level = 9,
                 bool transform = true) {
  VectorSink sink;
  delta::EncodeOptions opt;
  opt.level = level;
  opt.exec_transform = transform;
  ota::Status s = delta::make_delta(base.data(), base.size(), image.data(), image.size(), sink, opt, stats);
  REQUIRE(s.is_ok());
  return sink.out;
}

ota::Status apply(const Bytes& base, const Bytes& d, Bytes* out, size_t piece = SIZE_MAX) {
  MemoryReader r(base);
  MemorySource src(d, piece);
  VectorSink sink;
  ota::Status s = delta::apply_delta(r, src, sink);
  *out = std::move(sink.out);
  return s;
}

void round_trip(const Bytes& base, const Bytes& image, delta::EncodeStats* stats = nullptr) {
  Bytes d = make_delta(base, image, stats);
  Bytes out;
  ota::Status s = apply(base, d, &out);
  INFO(s.to_string());
  REQUIRE(s.is_ok());
  REQUIRE(out == image);
}

// Edits typical of a new release: changed bytes, insertions, deletions and a moved block.
Bytes mutate(const Bytes& base, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b = base;
  for (int k = 0; k < 50 && !b.empty(); ++k) b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
  for (int k = 0; k < 10; ++k) {
    size_t at = b.empty() ? 0 : rng() % b.size();
    Bytes ins = random_bytes(1 + rng() % 300, rng());
    b.insert(b.begin() + static_cast<long>(at), ins.begin(), ins.end());
  }
  for (int k = 0; k < 10 && b.size() > 1000; ++k) {
    size_t at = rng() % (b.size() - 500);
    b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + rng() % 400));
  }
  if (b.size() > 20000) {
    Bytes chunk(b.begin() + 1000, b.begin() + 6000);
    b.erase(b.begin() + 1000, b.begin() + 6000);
    b.insert(b.end() - 2000, chunk.begin(), chunk.end());
  }
  return b;
}

// A synthetic ELF64 executable: a header, one executable section of "functions" that call each
// other (E8 rel32) and load RIP-relative data (48 8D 05 disp32), and a data section. `shift` inserts
// that many bytes in the middle of the code, so every call crossing it changes.
Bytes fake_elf_x86(size_t nfuncs, size_t insert_at_func, size_t shift, uint32_t seed) {
  const size_t text_off = 0x1000, func_size = 64;
  size_t text_size = nfuncs * func_size + shift;
  size_t data_off = text_off + text_size;
  const size_t data_size = 8192;
  size_t shoff = data_off + data_size;
  Bytes f(shoff + 3 * 64, 0);
  const uint8_t ident[] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  std::memcpy(f.data(), ident, sizeof(ident));
  auto put16 = [&](size_t at, uint16_t v) { std::memcpy(f.data() + at, &v, 2); };
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(f.data() + at, &v, 4); };
  auto put64 = [&](size_t at, uint64_t v) { std::memcpy(f.data() + at, &v, 8); };
  put16(18, 62);  // EM_X86_64
  put64(0x28, shoff);
  put16(0x3a, 64);
  put16(0x3c, 3);
  // section 1: .text (PROGBITS, ALLOC|EXECINSTR), section 2: .data
  put32(shoff + 64 + 4, 1);
  put64(shoff + 64 + 8, 0x6);
  put64(shoff + 64 + 24, text_off);
  put64(shoff + 64 + 32, text_size);
  put32(shoff + 128 + 4, 1);
  put64(shoff + 128 + 8, 0x3);
  put64(shoff + 128 + 24, data_off);
  put64(shoff + 128 + 32, data_size);
  auto func_start = [&](size_t k) { return text_off + k * func_size + (k >= insert_at_func ? shift : 0); };
  std::mt19937 rng(seed);
  for (size_t k = 0; k < nfuncs; ++k) {
    size_t p = func_start(k);
    std::mt19937 body(static_cast<uint32_t>(k));  // same body in every version
    for (size_t i = 0; i < func_size; ++i)
      f[p + i] = static_cast<uint8_t>(body() % 0x40);  // no opcodes we use
    f[p] = 0xe8;                                       // call another function
    size_t target = func_start(body() % nfuncs);
    put32(p + 1, static_cast<uint32_t>(target - (p + 5)));
    f[p + 10] = 0x48;  // lea rax, [rip + data]
    f[p + 11] = 0x8d;
    f[p + 12] = 0x05;
    put32(p + 13, static_cast<uint32_t>(data_off + (body() % 1000) * 8 - (p + 17)));
    f[p + 30] = 0xe9;  // jmp
    put32(p + 31, static_cast<uint32_t>(func_start(body() % nfuncs) - (p + 35)));
  }
  for (size_t i = 0; i < data_size; ++i) f[data_off + i] = static_cast<uint8_t>(i * 7);
  // Program headers: everything loads at file offset + 0x400000; the data holds function pointers.
  const uint64_t bias = 0x400000;
  put64(0x20, 64);
  put16(0x36, 56);
  put16(0x38, 2);
  const uint64_t segs[2][2] = {{0, data_off}, {data_off, data_size}};
  for (int k = 0; k < 2; ++k) {
    size_t ph = 64 + 56 * static_cast<size_t>(k);
    put32(ph, 1);                       // PT_LOAD
    put32(ph + 4, k == 0 ? 5u : 6u);    // R+X, R+W
    put64(ph + 8, segs[k][0]);          // p_offset
    put64(ph + 16, segs[k][0] + bias);  // p_vaddr
    put64(ph + 32, segs[k][1]);         // p_filesz
    put64(ph + 40, segs[k][1]);         // p_memsz
  }
  for (size_t j = 0; j + 8 <= data_size / 2; j += 16)
    put64(data_off + j, bias + func_start((j / 16) * 7 % nfuncs));
  for (size_t i = 0; i < shift; ++i)
    f[func_start(insert_at_func) - shift + i] = static_cast<uint8_t>(rng() % 0x40);
  return f;
}

// Same idea for AArch64: BL imm26 between functions and ADRP to data pages.
Bytes fake_elf_arm64(size_t nfuncs, size_t insert_at_func, size_t shift_words) {
  const size_t text_off = 0x1000, func_size = 64;
  size_t shift = shift_words * 4;
  size_t text_size = nfuncs * func_size + shift;
  size_t shoff = text_off + text_size;
  Bytes f(shoff + 2 * 64, 0);
  const uint8_t ident[] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  std::memcpy(f.data(), ident, sizeof(ident));
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(f.data() + at, &v, 4); };
  uint16_t machine = 183, shentsize = 64, shnum = 2;
  uint64_t sh = shoff;
  std::memcpy(f.data() + 18, &machine, 2);
  std::memcpy(f.data() + 0x28, &sh, 8);
  std::memcpy(f.data() + 0x3a, &shentsize, 2);
  std::memcpy(f.data() + 0x3c, &shnum, 2);
  put32(shoff + 64 + 4, 1);
  uint64_t flags = 0x6, off = text_off, size = text_size;
  std::memcpy(f.data() + shoff + 64 + 8, &flags, 8);
  std::memcpy(f.data() + shoff + 64 + 24, &off, 8);
  std::memcpy(f.data() + shoff + 64 + 32, &size, 8);
  auto func_start = [&](size_t k) { return text_off + k * func_size + (k >= insert_at_func ? shift : 0); };
  for (size_t k = 0; k < nfuncs; ++k) {
    size_t p = func_start(k);
    std::mt19937 body(static_cast<uint32_t>(k));
    for (size_t i = 0; i < func_size; i += 4) put32(p + i, 0xd503201f);  // nop
    size_t target = func_start(body() % nfuncs);
    put32(p, 0x94000000u | (static_cast<uint32_t>((target - p) >> 2) & 0x03ffffffu));  // BL
    uint32_t page = static_cast<uint32_t>(((text_off + text_size + 0x10000) >> 12) - (p >> 12));
    put32(p + 8, 0x90000000u | ((page & 3u) << 29) | (((page >> 2) & 0x7ffffu) << 5) | 1u);  // ADRP x1
  }
  return f;
}

}  // namespace

TEST_CASE("random data with edits round-trips", "[unit][delta]") {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    Bytes base = random_bytes(50000 + seed * 10000, seed);
    Bytes image = mutate(base, seed + 100);
    delta::EncodeStats st;
    round_trip(base, image, &st);
    CHECK(st.delta_size < image.size() / 4);
    CHECK(st.transform == delta::Transform::kNone);
  }
}

TEST_CASE("structured text-like data round-trips", "[unit][delta]") {
  std::string a, b;
  for (int i = 0; i < 20000; ++i)
    a += "record " + std::to_string(i) + " value " + std::to_string(i * 37 % 1000) + "\n";
  for (int i = 0; i < 20000; ++i) {
    if (i % 97 == 0) continue;
    b += "record " + std::to_string(i) + " value " + std::to_string(i * 37 % 1001) + "\n";
  }
  round_trip(Bytes(a.begin(), a.end()), Bytes(b.begin(), b.end()));
  round_trip(Bytes(b.begin(), b.end()), Bytes(a.begin(), a.end()));
}

TEST_CASE("empty and equal inputs round-trip", "[unit][delta]") {
  Bytes empty, some = random_bytes(10000, 7);
  round_trip(empty, empty);
  round_trip(some, empty);
  round_trip(empty, some);
  round_trip(some, some);
  round_trip(Bytes(1, 0), Bytes(1, 1));
  delta::EncodeStats st;
  round_trip(some, some, &st);
  CHECK(st.extra_bytes == 0);
  CHECK(st.delta_size < 300);
}

TEST_CASE("zero-filled and repetitive images round-trip", "[unit][delta]") {
  Bytes zeros(300000, 0), ones(300000, 0);
  ones[150000] = 1;
  round_trip(zeros, ones);
  Bytes rep;
  for (int i = 0; i < 100000; ++i) rep.push_back(static_cast<uint8_t>("abcab"[i % 5]));
  Bytes rep2 = rep;
  rep2.insert(rep2.begin() + 5000, 3, 'x');
  round_trip(rep, rep2);
}

TEST_CASE("full payload (empty base) uses the same apply path", "[unit][delta]") {
  Bytes image = random_bytes(100000, 3);
  for (size_t i = 0; i < image.size(); i += 3) image[i] = 0;  // compressible
  Bytes d = make_delta({}, image);
  CHECK(d.size() < image.size());
  MemorySource src(d);
  VectorSink sink;
  delta::ApplyStats st;
  ota::Status s = delta::apply_full(src, sink, &st);
  REQUIRE(s.is_ok());
  CHECK(sink.out == image);
  CHECK(st.header.is_full());

  // A real delta is refused by apply_full: it needs a base.
  Bytes d2 = make_delta(random_bytes(1000, 4), image);
  MemorySource src2(d2);
  VectorSink sink2;
  CHECK(delta::apply_full(src2, sink2).code() == ota::Code::kInvalidArgument);
}

TEST_CASE("x86-64 ELF-like executable with moved code uses the transform and gets smaller", "[unit][delta]") {
  Bytes base = fake_elf_x86(2000, 700, 0, 1);
  Bytes image = fake_elf_x86(2000, 700, 48, 1);
  REQUIRE(delta::detect_image_kind(image.data(), image.size()) == delta::ImageKind::kElfX86_64);
  delta::EncodeStats with, without;
  Bytes d1 = make_delta(base, image, &with, 9, true);
  Bytes d2 = make_delta(base, image, &without, 9, false);
  CHECK(with.transform == delta::Transform::kX86_64);
  CHECK(with.data_pointers);
  CHECK(without.transform == delta::Transform::kNone);
  Bytes out;
  REQUIRE(apply(base, d1, &out).is_ok());
  REQUIRE(out == image);
  REQUIRE(apply(base, d2, &out).is_ok());
  REQUIRE(out == image);
  CHECK(d1.size() < d2.size());
}

TEST_CASE("AArch64 ELF-like executable with moved code round-trips with the transform", "[unit][delta]") {
  Bytes base = fake_elf_arm64(3000, 1000, 0);
  Bytes image = fake_elf_arm64(3000, 1000, 5);
  REQUIRE(delta::detect_image_kind(image.data(), image.size()) == delta::ImageKind::kElfAArch64);
  delta::EncodeStats with, without;
  Bytes d1 = make_delta(base, image, &with, 9, true);
  Bytes d2 = make_delta(base, image, &without, 9, false);
  CHECK(with.transform == delta::Transform::kAArch64);
  Bytes out;
  REQUIRE(apply(base, d1, &out).is_ok());
  REQUIRE(out == image);
  CHECK(d1.size() < d2.size());
}

TEST_CASE("the executable transform is exactly invertible on arbitrary bytes", "[unit][delta]") {
  std::mt19937 rng(5);
  const uint8_t interesting[] = {0xe8, 0xe9, 0x48, 0x4c, 0x8d, 0x8b, 0x89, 0x05,
                                 0x3d, 0x83, 0x80, 0x00, 0xff, 0x94, 0x90};
  for (auto t : {delta::Transform::kX86_64, delta::Transform::kAArch64}) {
    for (int round = 0; round < 20; ++round) {
      Bytes b(3 * delta::detail::kTransformBlock + 123);
      for (auto& x : b)
        x = (rng() % 2) ? interesting[rng() % sizeof(interesting)] : static_cast<uint8_t>(rng());
      std::vector<delta::Region> regions = {{5, 5000}, {6000, b.size() - 6001}};
      Bytes t1 = b;
      delta::detail::transform_span(t, true, t1.data(), 0, t1.size(), regions);
      CHECK(t1 != b);
      // Inverse applied block by block, as the decoder does.
      for (size_t off = 0; off < t1.size(); off += delta::detail::kTransformBlock) {
        size_t n = std::min<size_t>(delta::detail::kTransformBlock, t1.size() - off);
        delta::detail::transform_span(t, false, t1.data() + off, off, n, regions);
      }
      REQUIRE(t1 == b);
    }
  }
}

TEST_CASE("multi-block images round-trip with a delta read in small pieces", "[unit][delta]") {
  Bytes base = random_bytes(6 << 20, 11);
  Bytes image = mutate(base, 12);
  image.insert(image.begin() + (5 << 20), 1 << 20, 0x55);
  Bytes d = make_delta(base, image, nullptr, 1);
  Bytes out;
  ota::Status s = apply(base, d, &out, 7);
  INFO(s.to_string());
  REQUIRE(s.is_ok());
  REQUIRE(out == image);
}

TEST_CASE("apply heap stays under the stated bound", "[unit][delta]") {
  // Sampled at every write of the result: allocated bytes (arena + mmapped chunks) above the start.
  class SamplingSink : public ota::ByteSink {
   public:
    explicit SamplingSink(size_t start) : start_(start) {}
    ota::Status write(const uint8_t*, size_t) override {
      struct mallinfo2 m = mallinfo2();
      size_t used = m.uordblks + m.hblkhd;
      peak = std::max(peak, used > start_ ? used - start_ : 0);
      return ota::Status::ok();
    }
    size_t peak = 0;

   private:
    size_t start_;
  };
  Bytes base = random_bytes(16 << 20, 21);
  Bytes image = mutate(base, 22);
  Bytes tail = random_bytes(6 << 20, 23);  // new data: the extra stream's window fills up
  image.insert(image.end(), tail.begin(), tail.end());
  Bytes d = make_delta(base, image, nullptr, 1);
  struct mallinfo2 m0 = mallinfo2();
  MemoryReader r(base);
  MemorySource src(d);
  SamplingSink sink(m0.uordblks + m0.hblkhd);
  REQUIRE(delta::apply_delta(r, src, sink).is_ok());
  INFO("peak heap during apply: " << sink.peak);
  CHECK(sink.peak < delta::kMaxApplyHeapBytes);
}

TEST_CASE("truncated deltas are rejected", "[unit][delta]") {
  Bytes base = random_bytes(30000, 31);
  Bytes image = mutate(base, 32);
  Bytes d = make_delta(base, image);
  for (size_t cut = 0; cut < d.size(); cut += std::max<size_t>(1, d.size() / 97)) {
    Bytes t(d.begin(), d.begin() + static_cast<long>(cut));
    Bytes out;
    ota::Status s = apply(base, t, &out);
    INFO("cut at " << cut << ": " << s.to_string());
    CHECK(s.code() == ota::Code::kCorrupt);
  }
}

TEST_CASE("bit flips anywhere in a delta are rejected", "[unit][delta]") {
  Bytes base = fake_elf_x86(300, 100, 0, 2);
  Bytes image = fake_elf_x86(300, 100, 16, 2);
  Bytes d = make_delta(base, image);
  std::mt19937 rng(41);
  for (size_t i = 0; i < d.size(); i += std::max<size_t>(1, d.size() / 300)) {
    Bytes bad = d;
    bad[i] ^= static_cast<uint8_t>(1u << (rng() % 8));
    Bytes out;
    ota::Status s = apply(base, bad, &out);
    INFO("flip at " << i << ": " << s.to_string());
    CHECK_FALSE(s.is_ok());
    CHECK((s.code() == ota::Code::kCorrupt || s.code() == ota::Code::kHashMismatch ||
           s.code() == ota::Code::kUnsupported));
  }
}

TEST_CASE("a delta applied to the wrong base is rejected before writing", "[unit][delta]") {
  Bytes base = random_bytes(20000, 51);
  Bytes image = mutate(base, 52);
  Bytes d = make_delta(base, image);
  Bytes other = base;
  other[100] ^= 1;
  Bytes out;
  ota::Status s = apply(other, d, &out);
  CHECK(s.code() == ota::Code::kHashMismatch);
  CHECK(s.message().find("base") != std::string::npos);
  CHECK(out.empty());
  Bytes shorter(base.begin(), base.end() - 1);
  s = apply(shorter, d, &out);
  CHECK(s.code() == ota::Code::kHashMismatch);
  CHECK(out.empty());
}

TEST_CASE("trailing bytes, bad magic and unknown versions are rejected", "[unit][delta]") {
  Bytes base = random_bytes(5000, 61);
  Bytes image = mutate(base, 62);
  Bytes d = make_delta(base, image);
  Bytes out;
  Bytes longer = d;
  longer.push_back(0);
  CHECK(apply(base, longer, &out).code() == ota::Code::kCorrupt);
  Bytes magic = d;
  magic[0] = 'X';
  ota::Status s = apply(base, magic, &out);
  CHECK(s.code() == ota::Code::kCorrupt);
  CHECK(s.message().find("magic") != std::string::npos);
  Bytes version = d;
  version[8] = 9;
  CHECK(apply(base, version, &out).code() == ota::Code::kUnsupported);
  Bytes garbage = random_bytes(1000, 63);
  CHECK(apply(base, garbage, &out).code() == ota::Code::kCorrupt);
}

TEST_CASE("header reports sizes, hashes and the transform", "[unit][delta]") {
  Bytes base = fake_elf_x86(200, 50, 0, 3);
  Bytes image = fake_elf_x86(200, 50, 8, 3);
  Bytes d = make_delta(base, image);
  MemorySource src(d);
  auto h = delta::read_delta_header(src);
  REQUIRE(h.is_ok());
  CHECK(h->base_size == base.size());
  CHECK(h->image_size == image.size());
  CHECK(h->image_sha256 == ota::Sha256::of(image.data(), image.size()));
  CHECK(h->base_sha256 == ota::Sha256::of(base.data(), base.size()));
  CHECK(h->transform == delta::Transform::kX86_64);
  CHECK(h->image_regions.size() == 1);
}

TEST_CASE("hostile sizes in a delta are refused without allocating them", "[unit][delta]") {
  Bytes base = random_bytes(20000, 71);
  Bytes image = mutate(base, 72);
  Bytes d = make_delta(base, image, nullptr, 3, false);
  const size_t header_len = 96 + 8;  // no transform regions
  REQUIRE(d.size() > header_len + 4);
  Bytes out;

  // A resealed header claiming an enormous image: the streams end long before, nothing is sized by it.
  Bytes huge = d;
  for (int i = 0; i < 8; ++i) huge[20 + i] = i == 7 ? 0x10 : 0xff;
  reseal_header(&huge, header_len);
  ota::Status s = apply(base, huge, &out);
  CHECK(s.code() == ota::Code::kCorrupt);
  CHECK(out.size() <= image.size());

  // Region counts over the format's limit.
  Bytes regions = d;
  regions[92] = 0xff;
  reseal_header(&regions, header_len);
  s = apply(base, regions, &out);
  CHECK(s.code() == ota::Code::kCorrupt);

  // A block chunk length of 4 GiB.
  uint32_t map_len;
  std::memcpy(&map_len, d.data() + header_len, 4);
  size_t block = header_len + 4 + map_len;
  REQUIRE(block + 1 + 32 <= d.size());
  Bytes chunk = d;
  std::memset(chunk.data() + block + 1 + 4 * 7, 0xff, 4);
  s = apply(base, chunk, &out);
  CHECK(s.code() == ota::Code::kCorrupt);
  CHECK(s.message().find("limit") != std::string::npos);

  // A map section length of 4 GiB.
  Bytes map = d;
  std::memset(map.data() + header_len, 0xff, 4);
  s = apply(base, map, &out);
  CHECK(s.code() == ota::Code::kCorrupt);
}

TEST_CASE("an executable whose base has no code sections still round-trips", "[unit][delta]") {
  Bytes base = fake_elf_x86(400, 100, 0, 4);
  Bytes image = fake_elf_x86(400, 100, 24, 4);
  // Clear SHF_EXECINSTR of the base's .text: the base then has no transform regions.
  uint64_t shoff;
  std::memcpy(&shoff, base.data() + 0x28, 8);
  base[shoff + 64 + 8] = 0x2;
  delta::EncodeStats st;
  round_trip(base, image, &st);
  CHECK(st.transform == delta::Transform::kX86_64);
}

// Long randomized corruption run, hidden from the default suite (run with: delta_tests "[soak]").
TEST_CASE("random corruption soak", "[.][soak][delta]") {
  Bytes base = fake_elf_x86(1500, 300, 0, 9);
  Bytes image = fake_elf_x86(1500, 300, 40, 9);
  Bytes d = make_delta(base, image);
  std::mt19937 rng(99);
  for (int round = 0; round < 3000; ++round) {
    Bytes bad = d;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      size_t at = rng() % bad.size();
      switch (rng() % 3) {
        case 0:
          bad[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          bad[at] = static_cast<uint8_t>(rng());
          break;
        default:
          bad.resize(at);
          break;
      }
      if (bad.empty()) break;
    }
    Bytes out;
    ota::Status s = apply(base, bad, &out, 1 + rng() % 5000);
    if (bad != d) CHECK_FALSE(s.is_ok());
  }
}
