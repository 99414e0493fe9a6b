// State files and state directories (ota/core/file.hpp): temporaries and state files are never
// opened through a planted symbolic link, state directories are private, and one process at a time
// holds a state directory.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "ota/core/file.hpp"

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ota-state-files-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
};

std::string content_of(const std::string& path) {
  auto r = ota::read_small_file(path);
  REQUIRE(r.is_ok());
  return *r;
}

bool is_link(const std::string& path) {
  struct stat sb {};
  return ::lstat(path.c_str(), &sb) == 0 && S_ISLNK(sb.st_mode);
}

}  // namespace

TEST_CASE("atomic_write_file removes a planted temporary link instead of writing through it",
          "[unit][core][security]") {
  TempDir d;
  const std::string victim = d.path + "/victim";
  REQUIRE(ota::atomic_write_file(victim, "precious").is_ok());
  REQUIRE(::symlink(victim.c_str(), (d.path + "/state.tmp").c_str()) == 0);
  REQUIRE(ota::atomic_write_file(d.path + "/state", "new state").is_ok());
  CHECK(content_of(victim) == "precious");
  CHECK(content_of(d.path + "/state") == "new state");
  CHECK_FALSE(is_link(d.path + "/state"));
  CHECK(::access((d.path + "/state.tmp").c_str(), F_OK) != 0);  // nothing left behind
}

TEST_CASE("atomic_write_file replaces a stale temporary and a link at the file itself",
          "[unit][core][security]") {
  TempDir d;
  REQUIRE(ota::atomic_write_file(d.path + "/stale.tmp", "left by a crash").is_ok());
  REQUIRE(ota::atomic_write_file(d.path + "/stale", "fresh").is_ok());
  CHECK(content_of(d.path + "/stale") == "fresh");
  // A link in place of the state file is replaced by the rename, never written through.
  const std::string victim = d.path + "/victim";
  REQUIRE(ota::atomic_write_file(victim, "precious").is_ok());
  REQUIRE(::symlink(victim.c_str(), (d.path + "/linked").c_str()) == 0);
  REQUIRE(ota::atomic_write_file(d.path + "/linked", "state").is_ok());
  CHECK(content_of(victim) == "precious");
  CHECK_FALSE(is_link(d.path + "/linked"));
  // The mode asked for is the mode the file has, whatever the umask.
  REQUIRE(ota::atomic_write_file(d.path + "/public", "pem", 0644).is_ok());
  struct stat sb {};
  REQUIRE(::stat((d.path + "/public").c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0644);
}

TEST_CASE("A failed atomic_write_stream leaves the old file and no temporary", "[unit][core][fault]") {
  TempDir d;
  const std::string path = d.path + "/package";
  REQUIRE(ota::atomic_write_file(path, "old").is_ok());
  ota::Status st = ota::atomic_write_stream(path, [](ota::ByteSink& sink) {
    const uint8_t half[3] = {'n', 'e', 'w'};
    OTA_RETURN_IF_ERROR(sink.write(half, sizeof half));
    return ota::Status(ota::Code::kCorrupt, "encoder failed");
  });
  CHECK(st.code() == ota::Code::kCorrupt);
  CHECK(content_of(path) == "old");
  CHECK(::access((path + ".tmp").c_str(), F_OK) != 0);
}

TEST_CASE("State files are not read or written through a link", "[unit][core][security]") {
  TempDir d;
  const std::string victim = d.path + "/victim";
  REQUIRE(ota::atomic_write_file(victim, "outside").is_ok());
  const std::string link = d.path + "/payload.part";
  REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
  auto read = ota::read_state_file(link);
  REQUIRE_FALSE(read.is_ok());
  CHECK(read.status().message().find(link) != std::string::npos);
  CHECK(ota::read_small_file(link).is_ok());  // configuration may be a link
  auto sink = ota::FileSink::open(link, 0);
  CHECK_FALSE(sink.is_ok());
  auto reader = ota::FileReader::open(link, ota::Links::kRefuse);
  CHECK_FALSE(reader.is_ok());
  CHECK(content_of(victim) == "outside");
}

TEST_CASE("make_private_dir creates 0700 and refuses a directory others may write",
          "[unit][core][security]") {
  TempDir d;
  const std::string state = d.path + "/a/b/state";
  REQUIRE(ota::make_private_dir(state).is_ok());
  struct stat sb {};
  REQUIRE(::stat(state.c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0700);
  REQUIRE(::chmod(state.c_str(), 0777) == 0);
  ota::Status st = ota::make_private_dir(state);
  CHECK(st.code() == ota::Code::kRejected);
  CHECK(st.message().find("mode 0777") != std::string::npos);
  REQUIRE(::chmod(state.c_str(), 0770) == 0);
  CHECK(ota::make_private_dir(state).code() == ota::Code::kRejected);
  REQUIRE(::chmod(state.c_str(), 0755) == 0);
  CHECK(ota::make_private_dir(state).is_ok());
  REQUIRE(ota::atomic_write_file(d.path + "/file", "x").is_ok());
  CHECK(ota::make_private_dir(d.path + "/file").code() != ota::Code::kOk);
}

TEST_CASE("DirLock admits one holder of a state directory at a time", "[unit][core][security]") {
  TempDir d;
  {
    auto first = ota::DirLock::acquire(d.path, "agent");
    REQUIRE(first.is_ok());
    // Another process is refused, with the holder's pid in the message.
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto second = ota::DirLock::acquire(d.path, "agent");
      const bool ok = !second.is_ok() && second.status().code() == ota::Code::kUnavailable &&
                      second.status().message().find("in use by another agent (pid " +
                                                     std::to_string(::getppid()) + ")") != std::string::npos;
      ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // So is a second lock in this process.
    CHECK(ota::DirLock::acquire(d.path, "agent").status().code() == ota::Code::kUnavailable);
  }
  // Released with its holder.
  CHECK(ota::DirLock::acquire(d.path, "agent").is_ok());
}
