// ChildProcess, TempDir and wait_until: exit codes, signals, peak RSS, clean-up guarantees.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/sim/wait.hpp"

using namespace std::chrono_literals;
using ota::sim::ChildProcess;
using ota::sim::SpawnOptions;
using ota::sim::TempDir;

namespace {

const std::string kChild = OTA_HARNESS_CHILD;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True once pid no longer names a live process (gone, or a zombie nobody reaped yet).
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

TempDir make_temp() {
  auto dir = TempDir::create("ota-harness-test-");
  REQUIRE(dir.is_ok());
  return std::move(dir.value());
}

}  // namespace

TEST_CASE("ChildProcess reports the exit code", "[unit][process]") {
  auto child = ChildProcess::spawn({kChild, "exit", "3"}, SpawnOptions{"", {}, "exiter", ""});
  REQUIRE(child.is_ok());
  CHECK(child->name() == "exiter");
  CHECK(child->pid() > 0);
  auto info = child->wait_for(10s);
  REQUIRE(info);
  CHECK(info->exit_code == 3);
  CHECK(info->term_signal == 0);
  CHECK_FALSE(info->success());
  CHECK(info->describe() == "exit code 3");
  CHECK_FALSE(child->running());
  // Reaped once; later calls return the same result.
  REQUIRE(child->wait_for(0ms));
  CHECK(child->wait_for(0ms)->exit_code == 3);
}

TEST_CASE("ChildProcess reports the terminating signal", "[unit][process]") {
  auto child = ChildProcess::spawn({kChild, "raise", std::to_string(SIGABRT)});
  REQUIRE(child.is_ok());
  auto info = child->wait_for(10s);
  REQUIRE(info);
  CHECK(info->term_signal == SIGABRT);
  CHECK(info->exit_code == -1);
  CHECK_FALSE(info->exited());
}

TEST_CASE("ChildProcess reports peak RSS from wait4", "[unit][process]") {
  auto big = ChildProcess::spawn({kChild, "alloc", "64"});
  auto small = ChildProcess::spawn({kChild, "exit", "0"});
  REQUIRE(big.is_ok());
  REQUIRE(small.is_ok());
  auto big_info = big->wait_for(20s);
  auto small_info = small->wait_for(20s);
  REQUIRE(big_info);
  REQUIRE(small_info);
  CHECK(big_info->success());
  CHECK(big_info->peak_rss_kib >= 64 * 1024);
  CHECK(small_info->peak_rss_kib > 0);
  CHECK(small_info->peak_rss_kib < big_info->peak_rss_kib - 32 * 1024);
}

TEST_CASE("ChildProcess wait_for times out on a running child and terminate stops it", "[unit][process]") {
  auto child = ChildProcess::spawn({kChild, "sleep"});
  REQUIRE(child.is_ok());
  CHECK_FALSE(child->wait_for(0ms));
  CHECK_FALSE(child->wait_for(50ms));
  CHECK(child->running());
  auto info = child->terminate(5s);
  CHECK(info.term_signal == SIGTERM);
  CHECK_FALSE(child->running());
}

TEST_CASE("ChildProcess terminate escalates to SIGKILL after the grace period", "[unit][process]") {
  auto dir = make_temp();
  const std::string log = dir.file("child.log");
  auto child = ChildProcess::spawn({kChild, "ignore-term"}, SpawnOptions{log, {}, "", ""});
  REQUIRE(child.is_ok());
  REQUIRE(ota::sim::wait_for_file_contains(log, "ready", 10s));
  CHECK_FALSE(ota::sim::wait_for_file_contains(log, "never written", 20ms));
  CHECK_FALSE(ota::sim::wait_for_file_contains(dir.file("missing.log"), "ready", 20ms));
  auto start = std::chrono::steady_clock::now();
  auto info = child->terminate(200ms);
  CHECK(info.term_signal == SIGKILL);
  CHECK(std::chrono::steady_clock::now() - start >= 200ms);
}

TEST_CASE("ChildProcess destructor kills and reaps a running child", "[unit][process]") {
  pid_t pid = -1;
  {
    auto child = ChildProcess::spawn({kChild, "sleep"});
    REQUIRE(child.is_ok());
    pid = child->pid();
    REQUIRE(::kill(pid, 0) == 0);
  }
  // Reaped by the destructor: the pid no longer exists (not even as a zombie).
  errno = 0;
  CHECK(::kill(pid, 0) == -1);
  CHECK(errno == ESRCH);
}

TEST_CASE("ChildProcess can be moved and only the owner kills", "[unit][process]") {
  auto spawned = ChildProcess::spawn({kChild, "sleep"});
  REQUIRE(spawned.is_ok());
  ChildProcess a = std::move(spawned.value());
  const pid_t pid = a.pid();
  ChildProcess b = std::move(a);
  CHECK(b.pid() == pid);
  CHECK(b.running());
  b.kill();
  CHECK_FALSE(b.running());
}

TEST_CASE("ChildProcess sends stdout and stderr to the log and passes env_extra", "[unit][process]") {
  auto dir = make_temp();
  const std::string log = dir.file("echo.log");
  auto echo = ChildProcess::spawn({kChild, "echo"}, SpawnOptions{log, {}, "", ""});
  REQUIRE(echo.is_ok());
  REQUIRE(echo->wait_for(10s));
  const std::string text = slurp(log);
  CHECK(text.find("to-stdout") != std::string::npos);
  CHECK(text.find("to-stderr") != std::string::npos);

  const std::string env_log = dir.file("env.log");
  auto env = ChildProcess::spawn({kChild, "env", "OTA_HARNESS_VALUE"},
                                 SpawnOptions{env_log, {"OTA_HARNESS_VALUE=forty-two"}, "", ""});
  REQUIRE(env.is_ok());
  REQUIRE(env->wait_for(10s));
  CHECK(slurp(env_log).find("OTA_HARNESS_VALUE=forty-two") != std::string::npos);
}

TEST_CASE("ChildProcess::spawn reports a program that cannot run", "[unit][process]") {
  auto missing = ChildProcess::spawn({"/nonexistent/ota-no-such-program"});
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().message().find("ota-no-such-program") != std::string::npos);

  auto dir = make_temp();
  const std::string not_exec = dir.file("script.txt");
  std::ofstream(not_exec) << "hello\n";
  ::chmod(not_exec.c_str(), 0755);  // executable bit, but no valid format: execve fails
  auto bad = ChildProcess::spawn({not_exec});
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().message().find("exec") != std::string::npos);

  CHECK_FALSE(ChildProcess::spawn({}).is_ok());
  auto bad_log =
      ChildProcess::spawn({kChild, "exit", "0"}, SpawnOptions{"/nonexistent/dir/x.log", {}, "", ""});
  REQUIRE_FALSE(bad_log.is_ok());
  CHECK(bad_log.status().message().find("log") != std::string::npos);
}

TEST_CASE("Children die with their parent (PR_SET_PDEATHSIG)", "[unit][process]") {
  auto dir = make_temp();
  const std::string pidfile = dir.file("grandchild.pid");
  auto parent =
      ChildProcess::spawn({kChild, "spawn-grandchild", pidfile}, SpawnOptions{dir.file("p.log"), {}, "", ""});
  REQUIRE(parent.is_ok());
  REQUIRE(ota::sim::wait_until([&] { return !slurp(pidfile).empty(); }, 10s));
  const pid_t grandchild = static_cast<pid_t>(std::stol(slurp(pidfile)));
  REQUIRE(grandchild > 0);
  REQUIRE_FALSE(process_gone(grandchild));
  parent->kill();  // SIGKILL: the middle process gets no chance to clean up
  CHECK(ota::sim::wait_until([&] { return process_gone(grandchild); }, 10s));
}

TEST_CASE("TempDir is removed with its contents unless OTA_KEEP_TEMP=1", "[unit][process]") {
  std::string path;
  {
    auto dir = make_temp();
    path = dir.path();
    ::mkdir(dir.file("sub").c_str(), 0700);
    std::ofstream(dir.file("sub/file")) << "x";
    struct stat st {};
    REQUIRE(::stat(dir.file("sub/file").c_str(), &st) == 0);
  }
  struct stat st {};
  CHECK(::stat(path.c_str(), &st) != 0);

  const char* old = std::getenv("OTA_KEEP_TEMP");
  std::string saved = old ? old : "";
  ::setenv("OTA_KEEP_TEMP", "1", 1);
  {
    auto dir = make_temp();
    path = dir.path();
  }
  if (old)
    ::setenv("OTA_KEEP_TEMP", saved.c_str(), 1);
  else
    ::unsetenv("OTA_KEEP_TEMP");
  CHECK(::stat(path.c_str(), &st) == 0);
  CHECK(ota::sim::remove_tree(path).is_ok());
}

TEST_CASE("wait_until returns when the predicate holds, false at the deadline", "[unit][process]") {
  int calls = 0;
  CHECK(ota::sim::wait_until([&] { return ++calls >= 3; }, 5s, 1ms));
  CHECK(calls == 3);
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(ota::sim::wait_until([] { return false; }, 30ms));
  CHECK(std::chrono::steady_clock::now() - start >= 30ms);
}

TEST_CASE("tail_file returns the last lines", "[unit][process]") {
  auto dir = make_temp();
  std::ofstream(dir.file("t")) << "1\n2\n3\n4\n";
  CHECK(ota::sim::tail_file(dir.file("t"), 2) == "3\n4\n");
  CHECK(ota::sim::tail_file(dir.file("missing"), 2).empty());
}
