// ota-pack diff and patch (the built binaries) on 512 MiB images whose few changes lie 200 MiB apart:
// both must round-trip within the memory bounds stated in ota/core/delta.hpp. The images are written
// sparsely and compared in pieces: the test itself never holds them.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "delta_support.hpp"
#include "ota/core/delta.hpp"

namespace {

using ota::delta_test::Bytes;
using ota::delta_test::fast_random;
namespace delta = ota::delta;

constexpr uint64_t kMiB = uint64_t{1} << 20;

// A private directory, removed with what it holds.
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/ota-delta-large-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    REQUIRE(::mkdtemp(buf.data()) != nullptr);
    path_ = buf.data();
  }
  ~ScratchDir() {
    for (const char* name : {"base", "new", "delta", "out", "diff.log", "patch.log", "delta.tmp", "out.tmp"})
      ::unlink(file(name).c_str());
    ::rmdir(path_.c_str());
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct Run {
  int exit_code = -1;
  double seconds = 0;      // wall clock
  double cpu_seconds = 0;  // user + system
  uint64_t peak_rss = 0;   // bytes (wait4): the child's, from its start as a copy of this process
  std::string log;         // its stderr
};

// Runs a command with stderr to log_path; waits for it and takes its resource usage.
Run run_measured(const std::vector<std::string>& argv, const std::string& log_path) {
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::dup2(fd, 2) < 0) ::_exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  REQUIRE(::wait4(pid, &status, 0, &ru) == pid);
  Run r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  r.cpu_seconds = secs(ru.ru_utime) + secs(ru.ru_stime);
  r.peak_rss = static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // ru_maxrss is in KiB on Linux
  std::ifstream in(log_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.log = ss.str();
  return r;
}

// A range of pseudo-random bytes: offset, length, seed.
struct Piece {
  uint64_t offset, len, seed;
};

// A sparse file of `size` bytes with the pieces written into it, one at a time: the test process
// stays small, so the peak RSS measured for its children (which starts as a copy of it) is theirs.
void write_sparse(const std::string& path, uint64_t size, const std::vector<Piece>& pieces) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  for (const auto& p : pieces) {
    Bytes bytes = fast_random(p.len, p.seed);
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(p.offset)) ==
            static_cast<ssize_t>(bytes.size()));
  }
  REQUIRE(::close(fd) == 0);
}

// Compares two files in 1 MiB pieces.
bool same_files(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::vector<char> ba(kMiB), bb(kMiB);
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() ||
        std::memcmp(ba.data(), bb.data(), static_cast<size_t>(fa.gcount())) != 0)
      return false;
  }
  return fa.eof() && fb.eof();
}

// A number the -v line of `ota-pack diff` reports before `label` ("134 entries").
uint64_t reported(const std::string& log, const std::string& label) {
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("([0-9]+) " + label)));
  return std::stoull(m[1]);
}

}  // namespace

TEST_CASE("ota-pack diff and patch round-trip 512 MiB images with 200 MiB unchanged stretches",
          "[integration][delta]") {
  const uint64_t size = 512 * kMiB;
  // Changed ranges, 200 MiB of unchanged bytes between the first three; the last at the very end.
  const std::vector<std::pair<uint64_t, uint64_t>> changes = {{0, 5 << 10},
                                                              {200 * kMiB + (5 << 10), 64 << 10},
                                                              {400 * kMiB + (69 << 10), 64 << 10},
                                                              {size - 4096, 4096}};
  // The unchanged stretches hold data too, not only holes: 1 MiB every 64 MiB, the same in both.
  std::vector<Piece> base_pieces, new_pieces;
  for (uint64_t k = 0; k < size / (64 * kMiB); ++k) {
    base_pieces.push_back(Piece{k * 64 * kMiB + kMiB, kMiB, 100 + k});
    new_pieces.push_back(base_pieces.back());
  }
  uint64_t changed = 0;
  for (uint64_t k = 0; k < changes.size(); ++k) {
    base_pieces.push_back(Piece{changes[k].first, changes[k].second, 200 + k});
    new_pieces.push_back(Piece{changes[k].first, changes[k].second, 300 + k});
    changed += changes[k].second;
  }
  ScratchDir dir;
  write_sparse(dir.file("base"), size, base_pieces);
  write_sparse(dir.file("new"), size, new_pieces);
  const std::string pack = std::string(OTA_BIN_DIR) + "/ota-pack";

  // Generation, with the verifying apply ota-pack runs on every delta it makes.
  Run diff = run_measured({pack, "-v", "diff", dir.file("base"), dir.file("new"), dir.file("delta")},
                          dir.file("diff.log"));
  INFO("diff: " << diff.log);
  REQUIRE(diff.exit_code == 0);
  struct stat st {};
  REQUIRE(::stat(dir.file("delta").c_str(), &st) == 0);
  const uint64_t delta_size = static_cast<uint64_t>(st.st_size);
  CHECK(delta_size < changed + 64 * 1024);
  // Only the changed ranges are suffix-sorted: the unchanged stretches are found by comparison.
  const uint64_t indexed = reported(diff.log, "base bytes suffix-sorted");
  CHECK(indexed <= changed);
  const uint64_t gen_bound = delta::encode_memory_bound(size, size, indexed, reported(diff.log, "entries"));
  CHECK(diff.peak_rss < gen_bound);

  // Apply, as a vehicle does: streaming, in bounded memory whatever the image size.
  Run patch = run_measured({pack, "patch", dir.file("base"), dir.file("delta"), dir.file("out")},
                           dir.file("patch.log"));
  INFO("patch: " << patch.log);
  REQUIRE(patch.exit_code == 0);
  CHECK(patch.peak_rss < delta::kMaxApplyHeapBytes);
  CHECK(same_files(dir.file("out"), dir.file("new")));

  WARN("512 MiB pair: delta " << delta_size << " bytes; diff (with its verifying apply) " << diff.seconds
                              << " s wall, " << diff.cpu_seconds << " s CPU, peak RSS "
                              << diff.peak_rss / kMiB << " MiB (bound " << gen_bound / kMiB << " MiB); patch "
                              << patch.seconds << " s wall, " << patch.cpu_seconds << " s CPU, peak RSS "
                              << patch.peak_rss / kMiB << " MiB (bound " << delta::kMaxApplyHeapBytes / kMiB
                              << " MiB)");
}
