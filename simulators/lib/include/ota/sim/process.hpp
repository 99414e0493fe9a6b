// ChildProcess: one child process of a simulator or test, with its output in a log file.
//
// Children are started with fork/exec, stdin from /dev/null and stdout+stderr appended to a log
// file. Each child asks the kernel to SIGKILL it when its parent dies (PR_SET_PDEATHSIG), so a
// crashed test or simulator never leaves brokers or agents behind. Note that Linux delivers
// that signal when the *thread* that spawned the child exits: spawn long-lived children from a
// thread that outlives them (normally the main thread).
//
// A ChildProcess is movable, not copyable. Its destructor SIGKILLs and reaps a child that is
// still running. Not thread-safe: one thread owns each ChildProcess.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "ota/core/status.hpp"

namespace ota::sim {

struct SpawnOptions {
  // stdout and stderr of the child are appended to this file (created 0644 if missing).
  // Empty: /dev/null.
  std::string log_path = {};
  // "NAME=VALUE" entries added to (or replacing in) the parent's environment.
  std::vector<std::string> env_extra = {};
  // A human-readable name for logs and reports ("broker", "agent ecu-a"); default: argv[0]'s
  // base name.
  std::string name = {};
  // Working directory of the child; empty: the parent's.
  std::string cwd = {};
};

struct ExitInfo {
  int exit_code = -1;     // exit status if the child exited normally, else -1
  int term_signal = 0;    // the signal that killed the child, else 0
  long peak_rss_kib = 0;  // peak resident set size (wait4's ru_maxrss), KiB

  bool exited() const noexcept { return term_signal == 0; }
  bool success() const noexcept { return term_signal == 0 && exit_code == 0; }
  // "exit code 3", "killed by signal 9 (Killed)".
  std::string describe() const;
};

class ChildProcess {
 public:
  // Starts argv[0] (looked up in PATH if it has no '/'). Fails if argv is empty, the log file
  // cannot be opened, or the program cannot be executed (the exec error is reported here,
  // not as an exit code).
  static Result<ChildProcess> spawn(std::vector<std::string> argv, SpawnOptions options = {});

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // SIGKILL + reap if still running

  pid_t pid() const noexcept { return pid_; }
  const std::string& name() const noexcept { return name_; }
  const std::string& log_path() const noexcept { return log_path_; }
  const std::vector<std::string>& argv() const noexcept { return argv_; }

  // Sends sig to the child. No-op (OK) once the child has been reaped.
  Status send_signal(int sig);

  // Waits up to `timeout` for the child to exit and reaps it. Returns its ExitInfo, or nullopt
  // if it is still running. A zero timeout only polls. Once reaped, returns the same ExitInfo.
  std::optional<ExitInfo> wait_for(std::chrono::milliseconds timeout);
  // True until the child has exited (polls; reaps it if it has).
  bool running();
  // The ExitInfo once reaped.
  const std::optional<ExitInfo>& exit_info() const noexcept { return exit_; }

  // SIGTERM, wait up to `grace`, then SIGKILL and wait. Returns how the child ended.
  ExitInfo terminate(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  // SIGKILL and wait.
  ExitInfo kill();

 private:
  ChildProcess() = default;
  void reset() noexcept;
  bool try_reap(bool block);

  pid_t pid_ = -1;
  int pidfd_ = -1;  // pidfd_open(2) when the kernel allows it, for waiting without polling
  std::string name_;
  std::string log_path_;
  std::vector<std::string> argv_;
  std::optional<ExitInfo> exit_;
};

// Runs a command to completion and returns what it wrote (stdout and stderr interleaved).
struct CommandResult {
  ExitInfo exit;
  std::string output;
};
// Errors only if the program cannot be started or does not finish within `timeout` (it is
// then killed); a non-zero exit is reported in CommandResult::exit.
Result<CommandResult> run_command(std::vector<std::string> argv,
                                  std::chrono::milliseconds timeout = std::chrono::milliseconds(60000));

// Runs a bash script (e.g. of broker-config/) with its output in `log`; the error names the script
// and quotes the end of its output. Gives up (and kills it) after 60 s.
Status run_script(const std::string& script, std::vector<std::string> args, const std::string& log);

// The strings joined with `sep` ("a,b,c"), as the broker-config scripts take lists.
std::string join(const std::vector<std::string>& v, char sep);

// Last `max_lines` lines of a text file (e.g. a child's log), for error messages. Empty if
// the file cannot be read.
std::string tail_file(const std::string& path, std::size_t max_lines = 20);

// Absolute path of `program` found in PATH (or in `extra_dirs` after PATH); empty if none.
std::string find_executable(const std::string& program, const std::vector<std::string>& extra_dirs = {});

}  // namespace ota::sim
