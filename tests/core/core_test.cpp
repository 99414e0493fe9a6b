// Unit tests of the shared core: status, durable files, hashing, CRC, topics, codec.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"

namespace {

std::string temp_dir() {
  std::string tmpl =
      (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : "/tmp") + "/ota-core-XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

// A loop device over `backing` (a block device of a size the test chose), detached on destruction
// and by the kernel once its last descriptor closes. `path` is empty and `error` says why when
// none could be attached (it needs root).
struct LoopDevice {
  std::string path;
  std::string error;
  int fd = -1;

  explicit LoopDevice(const std::string& backing) {
    const int control = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    const int file = ::open(backing.c_str(), O_RDWR | O_CLOEXEC);
    if (control < 0 || file < 0) {
      error =
          std::string("open ") + (control < 0 ? "/dev/loop-control" : backing) + ": " + std::strerror(errno);
    }
    // Another process may take the free device between the two calls: then ask for another one.
    for (int attempt = 0; error.empty() && fd < 0 && attempt < 16; ++attempt) {
      const int n = ::ioctl(control, LOOP_CTL_GET_FREE);
      if (n < 0) {
        error = std::string("LOOP_CTL_GET_FREE: ") + std::strerror(errno);
        break;
      }
      const std::string candidate = "/dev/loop" + std::to_string(n);
      const int dev = ::open(candidate.c_str(), O_RDWR | O_CLOEXEC);
      if (dev < 0) {
        error = "open " + candidate + ": " + std::strerror(errno);
        break;
      }
      if (::ioctl(dev, LOOP_SET_FD, file) == 0) {
        loop_info64 info{};
        info.lo_flags = LO_FLAGS_AUTOCLEAR;
        (void)::ioctl(dev, LOOP_SET_STATUS64, &info);
        fd = dev;
        path = candidate;
      } else {
        const int err = errno;
        ::close(dev);
        if (err != EBUSY) error = "LOOP_SET_FD on " + candidate + ": " + std::strerror(err);
      }
    }
    if (fd < 0 && error.empty()) error = "every free loop device was taken by another process";
    if (file >= 0) ::close(file);
    if (control >= 0) ::close(control);
  }
  ~LoopDevice() {
    if (fd < 0) return;
    (void)::ioctl(fd, LOOP_CLR_FD, 0);
    ::close(fd);
  }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
};

}  // namespace

TEST_CASE("Status carries code and message, with context", "[unit][core]") {
  ota::Status ok;
  CHECK(ok.is_ok());
  CHECK(ok.to_string() == "OK");
  ota::Status err(ota::Code::kHashMismatch, "chunk 3");
  CHECK_FALSE(err.is_ok());
  CHECK(err.with_context("bcm").to_string() == "HASH_MISMATCH: bcm: chunk 3");
  ota::Result<int> r = 5;
  CHECK(r.is_ok());
  CHECK(*r == 5);
  ota::Result<int> e = ota::Status(ota::Code::kNotFound, "x");
  CHECK(e.status().code() == ota::Code::kNotFound);
}

TEST_CASE("SHA-256 matches known vectors, incremental and one-shot", "[unit][core]") {
  CHECK(ota::to_hex(ota::Sha256::of("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(ota::to_hex(ota::Sha256::of("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ota::Sha256 h;
  h.update("a", 1);
  h.update("bc", 2);
  CHECK(ota::to_hex(h.finish()) == ota::to_hex(ota::Sha256::of("abc")));
  ota::Digest d{};
  CHECK(ota::digest_from_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &d));
  CHECK(d == ota::Sha256::of("abc"));
  CHECK_FALSE(ota::digest_from_hex("zz", &d));
  CHECK_FALSE(ota::digest_from_hex(std::string(64, 'g'), &d));
}

TEST_CASE("CRC-32C matches the Castagnoli check value", "[unit][core]") {
  CHECK(ota::crc32c("123456789", 9) == 0xE3069283u);
  CHECK(ota::crc32c("", 0) == 0u);
  // Incremental equals one-shot.
  std::string s(1000, 'x');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 7);
  CHECK(ota::crc32c(s.data() + 100, 900, ota::crc32c(s.data(), 100)) == ota::crc32c(s.data(), s.size()));
}

TEST_CASE("CRC-32C agrees with a bitwise reference at every length and alignment", "[unit][core]") {
  auto reference = [](const uint8_t* p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
  };
  std::vector<uint8_t> buf(3 * 4096 * 3 + 64);
  uint64_t x = 0x243F6A8885A308D3ull;
  for (auto& b : buf) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<uint8_t>(x >> 56);
  }
  for (size_t off : {size_t{0}, size_t{1}, size_t{7}}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{8}, size_t{4095}, size_t{12288}, size_t{12289},
                     size_t{24576 + 13}, buf.size() - off}) {
      CAPTURE(off, n);
      CHECK(ota::crc32c(buf.data() + off, n) == reference(buf.data() + off, n));
      // Chained: the CRC of the whole is the CRC of the rest continued from the first part's.
      const size_t half = n / 3;
      CHECK(ota::crc32c(buf.data() + off + half, n - half, ota::crc32c(buf.data() + off, half)) ==
            reference(buf.data() + off, n));
    }
  }
}

TEST_CASE("atomic_write_file replaces content and leaves no temporary", "[unit][core]") {
  std::string dir = temp_dir();
  std::string path = dir + "/state.pb";
  REQUIRE(ota::atomic_write_file(path, "one").is_ok());
  REQUIRE(ota::atomic_write_file(path, "two").is_ok());
  auto content = ota::read_small_file(path);
  REQUIRE(content.is_ok());
  CHECK(*content == "two");
  CHECK(::access((path + ".tmp").c_str(), F_OK) != 0);
  // Oversized files are refused before reading.
  auto small = ota::read_small_file(path, 2);
  CHECK(small.status().code() == ota::Code::kCorrupt);
  CHECK(ota::read_small_file(dir + "/missing").status().code() == ota::Code::kNotFound);
  // A directory that does not exist: clear error naming the path.
  ota::Status st = ota::atomic_write_file(dir + "/no/such/dir/file", "x");
  CHECK(st.code() == ota::Code::kNotFound);
  CHECK(st.message().find("no/such/dir") != std::string::npos);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("A full disk is reported as NO_SPACE", "[unit][core][fault]") {
  // /dev/full fails every write with ENOSPC. A state file's temporary is never written through a
  // link (see state_files_test.cpp), so the full device is reached the way a bank on a block
  // device is: a FileSink that follows the link it was given.
  INFO("this test needs a writable /dev/full (the kernel's always-full device)");
  REQUIRE(::access("/dev/full", W_OK) == 0);
  std::string dir = temp_dir();
  std::string link = dir + "/bank";
  REQUIRE(::symlink("/dev/full", link.c_str()) == 0);
  auto sink = ota::FileSink::open(link, 0, /*truncate=*/false, ota::Links::kFollow);
  REQUIRE(sink.is_ok());
  const uint8_t data[4] = {1, 2, 3, 4};
  ota::Status st = (*sink)->write(data, sizeof data);
  CHECK(st.code() == ota::Code::kNoSpace);
  CHECK(ota::errno_status(ENOSPC, "x").code() == ota::Code::kNoSpace);
  CHECK(ota::errno_status(EDQUOT, "x").code() == ota::Code::kNoSpace);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("FileSink resumes at an offset and FileReader reads back", "[unit][core]") {
  std::string dir = temp_dir();
  std::string path = dir + "/bank";
  {
    auto sink = ota::FileSink::open(path, 0);
    REQUIRE(sink.is_ok());
    REQUIRE((*sink)->write(reinterpret_cast<const uint8_t*>("abcdefgh"), 8).is_ok());
    REQUIRE((*sink)->sync().is_ok());
  }
  {
    // Resume at 4: what was after is discarded, new bytes follow.
    auto sink = ota::FileSink::open(path, 4);
    REQUIRE(sink.is_ok());
    REQUIRE((*sink)->write(reinterpret_cast<const uint8_t*>("XY"), 2).is_ok());
  }
  auto reader = ota::FileReader::open(path);
  REQUIRE(reader.is_ok());
  CHECK((*reader)->size() == 6);
  uint8_t buf[6];
  REQUIRE((*reader)->read_at(0, buf, 6).is_ok());
  CHECK(std::string(reinterpret_cast<char*>(buf), 6) == "abcdXY");
  CHECK((*reader)->read_at(4, buf, 3).code() == ota::Code::kCorrupt);
  auto digest = ota::sha256_file(path);
  REQUIRE(digest.is_ok());
  CHECK(*digest == ota::Sha256::of("abcdXY"));
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("Topic names round-trip and reject foreign topics", "[unit][core]") {
  using ota::topics::Leaf;
  CHECK(ota::topics::ecu("bcm", Leaf::kCmd) == "ota/v1/ecu/bcm/down/cmd");
  CHECK(ota::topics::ecu("bcm", Leaf::kHello) == "ota/v1/ecu/bcm/up/hello");
  std::string ecu;
  Leaf leaf;
  REQUIRE(ota::topics::parse_ecu_topic("ota/v1/ecu/tcu/up/ack", &ecu, &leaf));
  CHECK(ecu == "tcu");
  CHECK(leaf == Leaf::kAck);
  CHECK_FALSE(ota::topics::parse_ecu_topic("ota/v1/ecu/tcu/up/other", &ecu, &leaf));
  CHECK_FALSE(ota::topics::parse_ecu_topic("ota/v2/ecu/tcu/up/ack", &ecu, &leaf));
  CHECK_FALSE(ota::topics::parse_ecu_topic("ota/v1/ecu/+/up/ack", &ecu, &leaf));
  CHECK(ota::topics::valid_ecu_id("ecu-1.a_b"));
  CHECK_FALSE(ota::topics::valid_ecu_id(""));
  CHECK_FALSE(ota::topics::valid_ecu_id("a/b"));
  CHECK_FALSE(ota::topics::valid_ecu_id("#"));
  CHECK_FALSE(ota::topics::valid_ecu_id(std::string(65, 'a')));
  CHECK(ota::topics::valid_ecu_id(std::string(64, 'a')));
  CHECK(ota::topics::valid_ecu_id("0bcm"));
  // Not a file name component nor an option, and no reserved broker user.
  CHECK_FALSE(ota::topics::valid_ecu_id("."));
  CHECK_FALSE(ota::topics::valid_ecu_id(".."));
  CHECK_FALSE(ota::topics::valid_ecu_id("-bcm"));
  CHECK_FALSE(ota::topics::valid_ecu_id("_bcm"));
  CHECK_FALSE(ota::topics::valid_ecu_id("ota-client"));
  CHECK_FALSE(ota::topics::valid_ecu_id("ota-observer"));
  CHECK(ota::topics::valid_ecu_id("ota-client2"));
}

TEST_CASE("Codec refuses malformed, oversized and foreign-version messages", "[unit][core]") {
  ota::v1::Command cmd;
  ota::codec::set_protocol(cmd.mutable_protocol());
  cmd.set_correlation_id("bcm/1");
  std::string bytes = cmd.SerializeAsString();
  ota::v1::Command back;
  REQUIRE(ota::codec::decode(bytes, &back, 1024, "command").is_ok());
  CHECK(back.correlation_id() == "bcm/1");
  CHECK(ota::codec::check_protocol(back.protocol(), "command").is_ok());

  ota::Status big = ota::codec::decode(bytes, &back, 4, "command");
  CHECK(big.code() == ota::Code::kCorrupt);
  CHECK(big.message().find("exceeds") != std::string::npos);

  std::string garbage("\xff\xff\xff\xff\xff", 5);
  CHECK(ota::codec::decode(garbage, &back, 1024, "command").code() == ota::Code::kCorrupt);

  ota::v1::ProtocolVersion v2;
  v2.set_major(2);
  ota::Status refused = ota::codec::check_protocol(v2, "agent bcm");
  CHECK(refused.code() == ota::Code::kUnsupported);
  CHECK(refused.message().find("2.0 is not supported") != std::string::npos);

  ota::v1::Error wire;
  ota::codec::to_wire(ota::Status(ota::Code::kNoSpace, "bank full"), ota::v1::PHASE_TRANSFER, &wire);
  CHECK(wire.code() == ota::v1::ERROR_CODE_NO_SPACE);
  CHECK(ota::codec::from_wire(wire).code() == ota::Code::kNoSpace);
}

namespace {
std::string chunk_wire(const ota::codec::ChunkView& c) {
  std::string wire(ota::codec::chunk_header_bound(c.transfer_id.size()) + c.data.size(), '\0');
  size_t h = ota::codec::encode_chunk_header(c, reinterpret_cast<uint8_t*>(wire.data()));
  if (!c.data.empty()) std::memcpy(wire.data() + h, c.data.data(), c.data.size());
  wire.resize(h + c.data.size());
  return wire;
}
}  // namespace

TEST_CASE("Chunks encoded and decoded in place agree with protobuf both ways", "[unit][core]") {
  std::string data(300000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  ota::codec::ChunkView c;
  c.transfer_id = "bcm/1795324033885";
  c.offset = uint64_t{5} << 33;
  c.data = data;
  c.crc32c = 0xdeadbeef;
  c.last = true;
  const std::string wire = chunk_wire(c);

  ota::v1::Chunk m;
  REQUIRE(m.ParseFromString(wire));
  CHECK(m.transfer_id() == c.transfer_id);
  CHECK(m.offset() == c.offset);
  CHECK(m.data() == data);
  CHECK(m.crc32c() == c.crc32c);
  CHECK(m.last());

  // Protobuf's own encoding (another field order), plus a field from a future minor version.
  m.set_last(false);
  std::string theirs = m.SerializeAsString();
  theirs += std::string("\xa2\x06\x03xyz", 6);  // field 100, length-delimited
  ota::codec::ChunkView v;
  REQUIRE(ota::codec::decode_chunk(theirs, &v).is_ok());
  CHECK(v.transfer_id == c.transfer_id);
  CHECK(v.offset == c.offset);
  CHECK(v.data == data);
  CHECK(v.data.data() >= theirs.data());  // a view, not a copy
  CHECK(v.data.data() < theirs.data() + theirs.size());
  CHECK(v.crc32c == c.crc32c);
  CHECK_FALSE(v.last);
}

TEST_CASE("A malformed or oversized chunk is refused by the in-place decoder", "[unit][core]") {
  std::string data(1000, 'x');
  ota::codec::ChunkView c;
  c.transfer_id = "t";
  c.data = data;
  const std::string wire = chunk_wire(c);
  ota::codec::ChunkView v;
  REQUIRE(ota::codec::decode_chunk(wire, &v).is_ok());
  // Cuts inside the transfer id, after the data tag, inside the data's length, inside the data.
  for (size_t cut : {size_t{1}, size_t{2}, size_t{11}, size_t{12}, wire.size() - 1}) {
    ota::Status st = ota::codec::decode_chunk(std::string_view(wire).substr(0, cut), &v);
    CAPTURE(cut);
    CHECK(st.code() == ota::Code::kCorrupt);
    CHECK(st.message().find("chunk: malformed") != std::string::npos);
  }
  CHECK(ota::codec::decode_chunk(std::string("\x00\x01", 2), &v).code() == ota::Code::kCorrupt);
  CHECK(ota::codec::decode_chunk(std::string("\x0c", 1), &v).code() == ota::Code::kCorrupt);  // end-group
  std::string huge(ota::codec::kMaxDataMessage + 1, '\0');
  ota::Status big = ota::codec::decode_chunk(huge, &v);
  CHECK(big.code() == ota::Code::kCorrupt);
  CHECK(big.message().find("exceeds") != std::string::npos);
}

TEST_CASE("FileReader reports the size of a block device (a bank that is a partition)", "[unit][core]") {
  // The machine's own disks, read-only: /sys/block/NAME/size counts 512-byte sectors.
  DIR* dir = ::opendir("/sys/block");
  REQUIRE(dir != nullptr);
  int checked = 0;
  while (dirent* ent = ::readdir(dir)) {
    const std::string name = ent->d_name;
    if (name[0] == '.' || name.rfind("loop", 0) == 0 || name.rfind("ram", 0) == 0) continue;
    auto sectors = ota::read_small_file("/sys/block/" + name + "/size", 64);
    if (!sectors || std::strtoull(sectors->c_str(), nullptr, 10) == 0) continue;
    auto reader = ota::FileReader::open("/dev/" + name);
    if (!reader) continue;  // no permission or no device node here
    CAPTURE(name);
    CHECK((*reader)->size() == std::strtoull(sectors->c_str(), nullptr, 10) * 512);
    ++checked;
  }
  ::closedir(dir);
  if (checked == 0) {
    // No disk of this machine can be opened here (a container without their device nodes, or no
    // permission): a loop device over a file of known size is a block device too.
    const std::string dir_path = temp_dir();
    const std::string backing = dir_path + "/bank.img";
    constexpr uint64_t kBankSize = 1 << 20;
    REQUIRE(ota::atomic_write_file(backing, std::string(kBankSize, '\x5a')).is_ok());
    {
      LoopDevice loop(backing);
      INFO("no block device of this machine is readable, and no loop device could be attached ("
           << loop.error << "): the test needs root, or read access to a disk under /dev");
      REQUIRE(!loop.path.empty());
      CAPTURE(loop.path);
      auto reader = ota::FileReader::open(loop.path);
      INFO(reader.status().to_string());
      REQUIRE(reader.is_ok());
      CHECK((*reader)->size() == kBankSize);
      ++checked;
    }
    std::system(("rm -rf " + dir_path).c_str());
  }
  CHECK(checked > 0);
}
