// harness_child: a small program whose behaviour the ChildProcess tests choose by argument.
//   exit N | raise SIG | alloc MIB | sleep | ignore-term | echo | env NAME
//   spawn-grandchild PIDFILE   (spawns itself with "sleep" through ota::sim::ChildProcess,
//                               writes the grandchild's pid to PIDFILE, then sleeps)
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ota/sim/process.hpp"

namespace {

[[noreturn]] void sleep_forever() {
  while (true) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: harness_child MODE [ARG]\n");
    return 2;
  }
  const std::string mode = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  if (mode == "exit") return std::atoi(arg);
  if (mode == "raise") {
    ::signal(std::atoi(arg), SIG_DFL);
    ::raise(std::atoi(arg));
    return 100;
  }
  if (mode == "alloc") {
    const std::size_t bytes = static_cast<std::size_t>(std::atol(arg)) << 20;
    std::vector<char> block(bytes);
    std::memset(block.data(), 0x5a, block.size());  // touch every page: resident
    volatile char sink = block[bytes / 2];
    (void)sink;
    return 0;
  }
  if (mode == "sleep") sleep_forever();
  if (mode == "ignore-term") {
    ::signal(SIGTERM, SIG_IGN);
    std::printf("ready\n");
    std::fflush(stdout);
    sleep_forever();
  }
  if (mode == "echo") {
    std::printf("to-stdout\n");
    std::fflush(stdout);
    std::fprintf(stderr, "to-stderr\n");
    return 0;
  }
  if (mode == "env") {
    const char* v = std::getenv(arg);
    std::printf("%s=%s\n", arg, v ? v : "(unset)");
    return 0;
  }
  if (mode == "spawn-grandchild") {
    auto child = ota::sim::ChildProcess::spawn({"/proc/self/exe", "sleep"}, {});
    if (!child) {
      std::fprintf(stderr, "%s\n", child.status().to_string().c_str());
      return 3;
    }
    const std::string tmp = std::string(arg) + ".tmp";
    std::ofstream(tmp) << child->pid() << "\n";
    std::rename(tmp.c_str(), arg);
    sleep_forever();
  }
  std::fprintf(stderr, "harness_child: unknown mode %s\n", mode.c_str());
  return 2;
}
