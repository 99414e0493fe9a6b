#include "teardown.hpp"

namespace ota::sim {

v1::ProcessStats process_stats(const std::string& name, const ExitInfo& info) {
  v1::ProcessStats ps;
  ps.set_name(name);
  ps.set_peak_rss_kib(static_cast<uint64_t>(info.peak_rss_kib));
  ps.set_exit_code(info.exited() ? info.exit_code : -info.term_signal);
  return ps;
}

void stop_vehicle(Vehicle& v, const ExitInfo& client_exit) {
  v.stats.push_back(process_stats("client", client_exit));
  for (auto& [e, child] : v.agents)
    v.stats.push_back(process_stats("agent " + e, child.terminate(std::chrono::seconds(5))));
  if (v.cloud_sim) {
    // It exits by itself once it has the report; a client that failed early sent none.
    auto info = v.cloud_sim->wait_for(std::chrono::seconds(5));
    if (!info) info = v.cloud_sim->terminate(std::chrono::seconds(5));
    v.stats.push_back(process_stats("cloud-sim", *info));
  }
  if (v.cloud_broker) v.cloud_broker->stop();
  if (auto info = v.broker->stop()) v.stats.push_back(process_stats("broker", *info));
}

}  // namespace ota::sim
