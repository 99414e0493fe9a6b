#include "ota/sim/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <thread>

extern char** environ;

namespace ota::sim {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string errno_text(int err) { return std::strerror(err); }

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Environment for the child: the parent's, with env_extra entries added or replacing.
std::vector<std::string> build_env(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& kv : extra) {
    auto eq = kv.find('=');
    std::string key = kv.substr(0, eq == std::string::npos ? kv.size() : eq + 1);
    if (eq == std::string::npos) key += '=';
    env.erase(std::remove_if(env.begin(), env.end(),
                             [&](const std::string& cur) { return cur.compare(0, key.size(), key) == 0; }),
              env.end());
    if (eq != std::string::npos) env.push_back(kv);  // "NAME" alone removes NAME
  }
  return env;
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#else
  (void)pid;
#endif
  return -1;  // old kernel or seccomp: fall back to polling with backoff
}

// What the child runs, prepared before fork (the child may only make async-signal-safe calls).
struct ExecPlan {
  std::string exe;
  std::vector<char*> argv;  // null-terminated, pointing into the caller's strings
  std::vector<char*> env;   // null-terminated
  const char* cwd = nullptr;
  pid_t parent = 0;
};

// Why exec failed, as the child reported it through the close-on-exec pipe.
struct ExecReport {
  bool failed = false;
  int step = 0;  // 0 stdin, 1 output, 2 chdir, 3 exec
  int err = 0;
};

// The child's descriptors: stdin (/dev/null), the log for stdout and stderr, and a close-on-exec
// pipe on which a child that could not exec writes why. Owned and closed here.
class ChildFds {
 public:
  static Result<ChildFds> open(const std::string& name, const std::string& log_path) {
    ChildFds f;
    const std::string log = log_path.empty() ? std::string("/dev/null") : log_path;
    f.out_ = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f.out_ < 0) {
      return make_error(Code::kIoError,
                        "spawn " + name + ": cannot open log " + log + ": " + errno_text(errno));
    }
    f.in_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (f.in_ < 0)
      return make_error(Code::kIoError, "spawn " + name + ": cannot open /dev/null: " + errno_text(errno));
    if (::pipe2(f.pipe_, O_CLOEXEC) != 0) {
      f.pipe_[0] = f.pipe_[1] = -1;
      return make_error(Code::kIoError, "spawn " + name + ": pipe: " + errno_text(errno));
    }
    return Result<ChildFds>(std::move(f));
  }
  ChildFds() = default;
  ChildFds(ChildFds&& o) noexcept : in_(o.in_), out_(o.out_), pipe_{o.pipe_[0], o.pipe_[1]} {
    o.in_ = o.out_ = o.pipe_[0] = o.pipe_[1] = -1;
  }
  ChildFds& operator=(ChildFds&&) = delete;
  ~ChildFds() {
    for (int fd : {in_, out_, pipe_[0], pipe_[1]}) {
      if (fd >= 0) ::close(fd);
    }
  }
  int in() const { return in_; }
  int out() const { return out_; }
  int report_fd() const { return pipe_[1]; }

  // In the parent after fork: closes the child's ends and waits for exec (EOF) or its failure.
  ExecReport read_exec_report() {
    for (int* fd : {&in_, &out_, &pipe_[1]}) {
      ::close(*fd);
      *fd = -1;
    }
    int report[2] = {0, 0};
    ssize_t n;
    do {
      n = ::read(pipe_[0], report, sizeof report);
    } while (n < 0 && errno == EINTR);
    return ExecReport{n > 0, report[0], report[1]};
  }

 private:
  int in_ = -1;
  int out_ = -1;
  int pipe_[2] = {-1, -1};
};

// The child after fork: dies with the parent, resets signals, redirects, changes directory and
// executes; on failure writes {step, errno} to the report pipe and exits 127.
[[noreturn]] void exec_child(const ExecPlan& plan, const ChildFds& fds) {
  // Die with the parent; if it already died between fork and prctl, go now.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != plan.parent) ::_exit(127);
  // Default signal dispositions and an empty mask (the parent may ignore SIGPIPE, block...).
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  int step = 0;
  if (::dup2(fds.in(), STDIN_FILENO) >= 0) {
    step = 1;
    if (::dup2(fds.out(), STDOUT_FILENO) >= 0 && ::dup2(fds.out(), STDERR_FILENO) >= 0) {
      step = 2;
      if (plan.cwd == nullptr || ::chdir(plan.cwd) == 0) {
        step = 3;
        ::execve(plan.exe.c_str(), plan.argv.data(), plan.env.data());
      }
    }
  }
  int report[2] = {step, errno};
  ssize_t ignored = ::write(fds.report_fd(), report, sizeof report);
  (void)ignored;
  ::_exit(127);
}

}  // namespace

std::string ExitInfo::describe() const {
  if (term_signal != 0) {
    const char* what = ::strsignal(term_signal);
    return "killed by signal " + std::to_string(term_signal) + " (" + (what ? what : "?") + ")";
  }
  return "exit code " + std::to_string(exit_code);
}

std::string find_executable(const std::string& program, const std::vector<std::string>& extra_dirs) {
  if (program.empty()) return {};
  if (program.find('/') != std::string::npos) return is_executable_file(program) ? program : std::string();
  std::vector<std::string> dirs;
  const char* path = ::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    auto colon = p.find(':', start);
    if (colon == std::string::npos) colon = p.size();
    dirs.push_back(colon == start ? "." : p.substr(start, colon - start));
    start = colon + 1;
  }
  dirs.insert(dirs.end(), extra_dirs.begin(), extra_dirs.end());
  for (const auto& d : dirs) {
    std::string candidate = d + "/" + program;
    if (is_executable_file(candidate)) return candidate;
  }
  return {};
}

std::string tail_file(const std::string& path, std::size_t max_lines) {
  std::ifstream in(path);
  if (!in) return {};
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(std::move(line));
    if (lines.size() > max_lines) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

Result<CommandResult> run_command(std::vector<std::string> argv, milliseconds timeout) {
  const char* tmp = ::getenv("TMPDIR");
  std::string templ = std::string((tmp != nullptr && *tmp != '\0') ? tmp : "/tmp") + "/ota-cmd-XXXXXX";
  std::vector<char> path(templ.begin(), templ.end());
  path.push_back('\0');
  int fd = ::mkstemp(path.data());
  if (fd < 0) return make_error(Code::kIoError, "mkstemp " + templ + ": " + errno_text(errno));
  ::close(fd);
  const std::string log(path.data());
  const std::string what = argv.empty() ? std::string("run_command") : argv[0];
  auto child = ChildProcess::spawn(std::move(argv), SpawnOptions{log, {}, "", ""});
  if (!child) {
    ::unlink(log.c_str());
    return child.status();
  }
  auto info = child->wait_for(timeout);
  if (!info) child->kill();
  std::ifstream in(log, std::ios::binary);
  std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ::unlink(log.c_str());
  if (!info) {
    return make_error(Code::kTimeout,
                      what + " did not finish within " + std::to_string(timeout.count()) + " ms: " + output);
  }
  return CommandResult{*info, std::move(output)};
}

Result<ChildProcess> ChildProcess::spawn(std::vector<std::string> argv, SpawnOptions options) {
  if (argv.empty() || argv[0].empty()) return make_error(Code::kInvalidArgument, "spawn: empty argv");
  ExecPlan plan;
  plan.exe = find_executable(argv[0]);
  if (plan.exe.empty()) {
    return make_error(Code::kNotFound, "spawn " + argv[0] + ": program not found or not executable");
  }
  std::string name = options.name.empty() ? base_name(argv[0]) : options.name;
  // Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
  auto fds = ChildFds::open(name, options.log_path);
  if (!fds) return fds.status();
  for (auto& a : argv) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  std::vector<std::string> env = build_env(options.env_extra);
  for (auto& e : env) plan.env.push_back(e.data());
  plan.env.push_back(nullptr);
  plan.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  plan.parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) return make_error(Code::kInternal, "spawn " + name + ": fork: " + errno_text(errno));
  if (pid == 0) exec_child(plan, *fds);

  const ExecReport report = fds->read_exec_report();
  ChildProcess child;
  child.pid_ = pid;
  child.name_ = std::move(name);
  child.log_path_ = options.log_path;
  child.argv_ = std::move(argv);
  if (report.failed) {  // exec (or a step before it) failed: the child wrote why, then exited 127
    child.try_reap(true);
    static const char* const kSteps[] = {"redirect stdin", "redirect output", "chdir", "exec"};
    return make_error(Code::kInternal, "spawn " + child.name_ + ": " + kSteps[std::min(report.step, 3)] +
                                           " " + plan.exe + ": " + errno_text(report.err));
  }
  child.pidfd_ = open_pidfd(pid);
  return Result<ChildProcess>(std::move(child));
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      pidfd_(other.pidfd_),
      name_(std::move(other.name_)),
      log_path_(std::move(other.log_path_)),
      argv_(std::move(other.argv_)),
      exit_(std::move(other.exit_)) {
  other.pid_ = -1;
  other.pidfd_ = -1;
  other.exit_.reset();
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = other.pid_;
    pidfd_ = other.pidfd_;
    name_ = std::move(other.name_);
    log_path_ = std::move(other.log_path_);
    argv_ = std::move(other.argv_);
    exit_ = std::move(other.exit_);
    other.pid_ = -1;
    other.pidfd_ = -1;
    other.exit_.reset();
  }
  return *this;
}

ChildProcess::~ChildProcess() { reset(); }

void ChildProcess::reset() noexcept {
  if (pid_ > 0 && !exit_) {
    ::kill(pid_, SIGKILL);
    try_reap(true);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
}

bool ChildProcess::try_reap(bool block) {
  if (exit_) return true;
  if (pid_ <= 0) return false;
  int status = 0;
  struct rusage ru {};
  pid_t r;
  do {
    r = ::wait4(pid_, &status, block ? 0 : WNOHANG, &ru);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  ExitInfo info;
  if (r < 0) {
    // ECHILD: someone else reaped it (e.g. SIGCHLD set to SIG_IGN). Report an unknown exit.
    exit_ = info;
    return true;
  }
  if (WIFEXITED(status)) {
    info.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.term_signal = WTERMSIG(status);
  }
  info.peak_rss_kib = ru.ru_maxrss;  // KiB on Linux
  exit_ = info;
  if (pidfd_ >= 0) {
    ::close(pidfd_);
    pidfd_ = -1;
  }
  return true;
}

Status ChildProcess::send_signal(int sig) {
  if (pid_ <= 0) return make_error(Code::kInvalidArgument, "send_signal: no process");
  if (exit_) return Status::ok();
  if (::kill(pid_, sig) != 0) {
    return make_error(Code::kInternal, "kill(" + std::to_string(pid_) + ", " + std::to_string(sig) +
                                           "): " + errno_text(errno));
  }
  return Status::ok();
}

std::optional<ExitInfo> ChildProcess::wait_for(milliseconds timeout) {
  if (exit_) return exit_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  milliseconds backoff(1);
  while (true) {
    if (try_reap(false)) return exit_;
    auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1);
    if (pidfd_ >= 0) {
      // Readable when the child has exited; no polling latency.
      struct pollfd pfd {
        pidfd_, POLLIN, 0
      };
      int r = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 1000 * 60 * 60)));
      if (r < 0 && errno != EINTR) {
        ::close(pidfd_);
        pidfd_ = -1;
      }
    } else {
      std::this_thread::sleep_for(std::min(backoff, left));
      backoff = std::min(backoff * 2, milliseconds(20));
    }
  }
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  return !try_reap(false);
}

ExitInfo ChildProcess::terminate(milliseconds grace) {
  if (exit_) return *exit_;
  if (pid_ <= 0) return ExitInfo{};
  (void)send_signal(SIGTERM);
  if (auto info = wait_for(grace)) return *info;
  return kill();
}

ExitInfo ChildProcess::kill() {
  if (exit_) return *exit_;
  if (pid_ <= 0) return ExitInfo{};
  (void)send_signal(SIGKILL);
  try_reap(true);
  return exit_ ? *exit_ : ExitInfo{};
}

Status run_script(const std::string& script, std::vector<std::string> args, const std::string& log) {
  std::ofstream(log, std::ios::trunc).close();
  std::vector<std::string> argv{"bash", script};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(std::move(argv), SpawnOptions{log, {}, "script", ""});
  if (!child) return child.status().with_context(script);
  auto info = child->wait_for(std::chrono::milliseconds(60000));
  if (!info) {
    child->kill();
    return make_error(Code::kTimeout, script + " did not finish within 60 s; output:\n" + tail_file(log, 20));
  }
  if (!info->success()) {
    return make_error(Code::kInternal, script + " failed (" + info->describe() + "):\n" + tail_file(log, 20));
  }
  return Status::ok();
}

std::string join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

}  // namespace ota::sim
