#include "run.hpp"

#include <unistd.h>

#include <cstdio>
#include <optional>

#include "images.hpp"
#include "launch.hpp"
#include "observer.hpp"
#include "ota/core/file.hpp"
#include "ota/sim/tempdir.hpp"
#include "scenario.hpp"
#include "summary.hpp"
#include "teardown.hpp"
#include "triggers.hpp"

namespace ota::sim {
namespace {

int setup_failed(const Status& st) {
  std::fprintf(stderr, "ota-sim: %s\n", st.to_string().c_str());
  return 2;
}

// --work-dir, or a temporary directory (kept with --keep) held by *temp.
Result<std::string> work_dir(const Options& opt, std::optional<TempDir>* temp) {
  std::string work = opt.work_dir;
  if (work.empty()) {
    auto t = TempDir::create("ota-sim");
    if (!t) return t.status();
    temp->emplace(std::move(*t));
    work = (*temp)->path();
    if (opt.keep) (*temp)->release();
  }
  OTA_RETURN_IF_ERROR(make_dirs(work));
  return work;
}

// 2.-4. The in-vehicle broker, the platform, the client's configuration, the agents.
Status start_vehicle(const Scenario& s, const Options& opt, const EcuFaults& faults, Vehicle& v) {
  OTA_RETURN_IF_ERROR(start_broker(s, v));
  OTA_RETURN_IF_ERROR(start_platform(s, v));
  OTA_RETURN_IF_ERROR(write_client_config(s, opt, v));
  return start_agents(s, opt, faults, v);
}

}  // namespace

int run(const Options& opt) {
  uint64_t image_size = 0;
  if (!parse_size(opt.image_size, &image_size) || image_size == 0) {
    std::fprintf(stderr, "ota-sim: --image-size '%s' is not a size (e.g. 8MiB)\n", opt.image_size.c_str());
    return 2;
  }
  std::optional<TempDir> temp;
  auto work = work_dir(opt, &temp);
  if (!work) return setup_failed(work.status());
  // Without --report, the report goes where it outlives a temporary work directory.
  const std::string report_path = !opt.report.empty()    ? opt.report
                                  : opt.work_dir.empty() ? std::string("ota-sim-report.json")
                                                         : *work + "/report.json";
  const EcuFaults faults = ecu_faults(opt);

  // 1. Images, campaign, signature.
  auto scenario = prepare_scenario(opt, image_size, *work);
  if (!scenario) return setup_failed(scenario.status());
  const Scenario& s = *scenario;
  Vehicle v;
  if (Status st = start_vehicle(s, opt, faults, v); !st.is_ok()) return setup_failed(st);

  // 5. The client runs the campaign; the observer shows progress and fires the triggers.
  Observer observer(*v.broker, !opt.quiet && isatty(STDERR_FILENO));
  if (Status o = observer.start(); !o.is_ok()) return setup_failed(o.with_context("observer"));
  auto client = spawn_client(s);
  if (!client) return setup_failed(client.status());
  v.client.emplace(std::move(*client));
  ExitInfo client_exit;
  BrokerRestart restart;
  if (int failed = supervise_client(s, opt, observer, v, &client_exit, &restart)) return failed;
  observer.finish_line();
  observer.stop();
  stop_vehicle(v, client_exit);

  // 6. Report: the client's, plus the processes.
  return summarize(s, opt, v, client_exit, restart, observer.resumes(), report_path);
}

}  // namespace ota::sim
