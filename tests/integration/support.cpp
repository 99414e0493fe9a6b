#include "support.hpp"

#include <catch2/catch.hpp>
#include <google/protobuf/util/json_util.h>

#include "ota/core/file.hpp"

namespace ota::test {

std::string bin(const std::string& name) { return std::string(OTA_BIN_DIR) + "/" + name; }

std::string SimRun::client_log() const {
  auto c = read_small_file(work + "/client.log", 16 << 20);
  return c ? *c : std::string();
}

const v1::EcuReport* SimRun::ecu(const std::string& id) const {
  for (const auto& e : report.ecus()) {
    if (e.ecu_id() == id) return &e;
  }
  return nullptr;
}

SimRun run_sim(const ota::sim::TempDir& dir, std::vector<std::string> args, int timeout_s) {
  SimRun run;
  run.work = dir.file("work");
  std::vector<std::string> argv = {bin("ota-sim"), "--quiet", "--work-dir", run.work, "--report",
                                   dir.file("report.json")};
  argv.insert(argv.end(), args.begin(), args.end());
  ota::sim::SpawnOptions so;
  so.log_path = dir.file("ota-sim.out");
  auto child = ota::sim::ChildProcess::spawn(argv, so);
  REQUIRE(child.is_ok());
  auto exit = child->wait_for(std::chrono::seconds(timeout_s));
  REQUIRE(exit.has_value());
  run.exit_code = exit->exit_code;
  auto out = read_small_file(dir.file("ota-sim.out"), 16 << 20);
  if (out) run.output = *out;
  auto json = read_small_file(dir.file("report.json"), 16 << 20);
  if (json) run.has_report = google::protobuf::util::JsonStringToMessage(*json, &run.report).ok();
  INFO(run.output);
  return run;
}

std::string boot_bank(const SimRun& run, const std::string& ecu) {
  auto b = read_small_file(run.work + "/ecu/" + ecu + "/boot", 64);
  return b ? *b : std::string("A");  // never activated: the factory bank
}

}  // namespace ota::test
