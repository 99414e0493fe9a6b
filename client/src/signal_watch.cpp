#include "signal_watch.hpp"

#include <csignal>
#include <cstdlib>
#include <thread>

#include <signal.h>

#include "ota/core/log.hpp"

namespace ota::client {

void watch_signals(std::function<void()> on_cancel) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, on_cancel = std::move(on_cancel)] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGUSR1) {
        OTA_LOGW("client", "cancel requested");
        on_cancel();
      } else {
        OTA_LOGI("client", "stopping on signal %d", sig);
        std::_Exit(128 + sig);
      }
    }
  }).detach();
}

}  // namespace ota::client
