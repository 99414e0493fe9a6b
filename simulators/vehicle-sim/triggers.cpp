#include "triggers.hpp"

#include <csignal>
#include <cstdio>
#include <vector>

#include "kill_trigger.hpp"
#include "teardown.hpp"

namespace ota::sim {
namespace {

// `when`: "at 50%", or "by --kill SPEC".
Status kill_and_restart_client(const Scenario& s, const Options& opt, const std::string& when, Vehicle& v) {
  v.stats.push_back(process_stats("client (killed " + when + ")", v.client->kill()));
  if (!opt.quiet) std::fprintf(stderr, "\nota-sim: killed the client %s; starting it again\n", when.c_str());
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

// --kill: the process named, killed and started again at once; the killed one's stats go to v.stats.
Status fire(const KillTrigger& t, const Scenario& s, const Options& opt, Vehicle& v) {
  if (!opt.quiet) std::fprintf(stderr, "\nota-sim: --kill %s: killing and restarting it\n", t.spec.c_str());
  switch (t.who) {
    case KillTrigger::Who::kClient:
      return kill_and_restart_client(s, opt, "by --kill " + t.spec, v);
    case KillTrigger::Who::kAgent:
      return kill_and_restart_agent(s, opt, t.agent, v);
    case KillTrigger::Who::kBroker:
      if (auto info = v.broker->kill()) v.stats.push_back(process_stats("broker (killed)", *info));
      return v.broker->restart().with_context("broker restart");
  }
  return Status::ok();
}

// Fires every --kill whose point is reached (each once); 2 when a restart failed, else 0.
int fire_kills(std::vector<KillTrigger>& kills, const Scenario& s, const Options& opt,
               const Observer& observer, Vehicle& v) {
  const std::string journal = s.work + "/client-state/campaign-journal.pb";
  for (auto& k : kills) {
    if (k.fired || !kill_point_reached(k, observer, journal)) continue;
    k.fired = true;
    if (Status st = fire(k, s, opt, v); !st.is_ok()) {
      std::fprintf(stderr, "ota-sim: %s\n", st.to_string().c_str());
      return 2;
    }
  }
  return 0;
}

}  // namespace

int supervise_client(const Scenario& s, const Options& opt, Observer& observer, Vehicle& v,
                     ExitInfo* client_exit, BrokerRestart* restart) {
  bool cancelled = false, killed = false;
  std::vector<KillTrigger> kills;
  for (const auto& spec : opt.kill) {
    auto k = parse_kill_trigger(spec);
    if (!k) {
      std::fprintf(stderr, "ota-sim: %s\n", k.status().message().c_str());
      v.client->kill();
      return 2;
    }
    kills.push_back(std::move(*k));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opt.timeout_s);
  for (;;) {
    // Short polls while a --kill waits for a point that may pass quickly.
    const auto poll = std::chrono::milliseconds(kills.empty() ? 20 : 2);
    if (auto exit = v.client->wait_for(poll)) {
      *client_exit = *exit;
      return 0;
    }
    if (int failed = fire_kills(kills, s, opt, observer, v)) {
      v.client->kill();
      return failed;
    }
    const int pct = observer.percent();
    if (opt.cancel_at >= 0 && !cancelled && pct >= opt.cancel_at) {
      cancelled = true;
      (void)v.client->send_signal(SIGUSR1);
    }
    if (opt.kill_client_at >= 0 && !killed && pct >= opt.kill_client_at) {
      killed = true;
      if (Status st = kill_and_restart_client(s, opt, "at " + std::to_string(pct) + "%", v); !st.is_ok()) {
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
