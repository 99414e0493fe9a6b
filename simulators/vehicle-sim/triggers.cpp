#include "triggers.hpp"

#include <csignal>
#include <cstdio>

#include "teardown.hpp"

namespace ota::sim {
namespace {

Status kill_and_restart_client(const Scenario& s, const Options& opt, int pct, Vehicle& v) {
  v.stats.push_back(process_stats("client (killed at " + std::to_string(pct) + "%)", v.client->kill()));
  if (!opt.quiet) std::fprintf(stderr, "\nota-sim: killed the client at %d%%; starting it again\n", pct);
  auto again = spawn_client(s);
  if (!again) return again.status();
  v.client.emplace(std::move(*again));
  return Status::ok();
}

// A broker crash: no orderly shutdown, no database save. The same instance directory (config,
// passwords, ACL, persistence) comes back on the same port; every client reconnects by itself.
Status kill_and_restart_broker(const Options& opt, Observer& observer, Vehicle& v, BrokerRestart* restart) {
  restart->done = true;
  restart->percent = observer.min_percent();
  restart->acked = observer.acked();
  observer.watch_resumes();
  const std::string name = "broker (killed at " + std::to_string(restart->percent) + "%)";
  if (auto info = v.broker->kill()) {
    v.stats.push_back(process_stats(name, *info));
  } else {
    v1::ProcessStats ps;
    ps.set_name(name);
    v.stats.push_back(ps);
  }
  if (!opt.quiet) {
    std::fprintf(stderr, "\nota-sim: killed the broker at %d%%; starting it again on port %d\n",
                 restart->percent, v.broker->port());
  }
  return v.broker->restart().with_context("broker restart");
}

}  // namespace

int supervise_client(const Scenario& s, const Options& opt, Observer& observer, Vehicle& v,
                     ExitInfo* client_exit, BrokerRestart* restart) {
  bool cancelled = false, killed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opt.timeout_s);
  for (;;) {
    if (auto exit = v.client->wait_for(std::chrono::milliseconds(20))) {
      *client_exit = *exit;
      return 0;
    }
    const int pct = observer.percent();
    if (opt.cancel_at >= 0 && !cancelled && pct >= opt.cancel_at) {
      cancelled = true;
      (void)v.client->send_signal(SIGUSR1);
    }
    if (opt.kill_client_at >= 0 && !killed && pct >= opt.kill_client_at) {
      killed = true;
      if (Status st = kill_and_restart_client(s, opt, pct, v); !st.is_ok()) {
        std::fprintf(stderr, "ota-sim: %s\n", st.to_string().c_str());
        return 2;
      }
    }
    if (opt.restart_broker_at >= 0 && !restart->done && observer.min_percent() >= opt.restart_broker_at) {
      if (Status st = kill_and_restart_broker(opt, observer, v, restart); !st.is_ok()) {
        std::fprintf(stderr, "ota-sim: %s\n", st.to_string().c_str());
        v.client->kill();
        return 2;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "\nota-sim: the campaign did not finish within %d s\n", opt.timeout_s);
      v.client->kill();
      return 1;
    }
  }
}

}  // namespace ota::sim
