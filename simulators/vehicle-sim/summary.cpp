#include "summary.hpp"

#include <google/protobuf/util/json_util.h>

#include <cstdio>

#include "campaign.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/sim/wait.hpp"

namespace ota::sim {
namespace {

void print_table(const v1::VehicleReport& report) {
  uint64_t bytes = 0;
  std::printf("campaign %s: %s in %.2f s%s%s\n", report.campaign_id().c_str(),
              v1::CampaignResult_Name(report.result()).c_str(), report.duration_ms() / 1000.0,
              report.reason().empty() ? "" : " - ", report.reason().c_str());
  std::printf("  %-10s %-12s %-8s %-8s %-6s %12s  %s\n", "ECU", "result", "before", "after", "kind", "bytes",
              "error");
  for (const auto& e : report.ecus()) {
    bytes += e.bytes_transferred();
    std::printf(
        "  %-10s %-12s %-8s %-8s %-6s %12llu  %s\n", e.ecu_id().c_str(),
        v1::EcuResult_Name(e.result()).c_str(), e.version_before().c_str(), e.version_after().c_str(),
        e.encoding() == v1::PAYLOAD_ENCODING_DELTA ? "delta" : "full",
        static_cast<unsigned long long>(e.bytes_transferred()),
        e.error().message().empty()
            ? ""
            : (std::string(codec::phase_name(e.error().phase())) + ": " + e.error().message()).c_str());
  }
  if (report.duration_ms() > 0) {
    std::printf("  %.1f MB sent, %.1f MB/s\n", bytes / 1e6,
                bytes / 1e3 / static_cast<double>(report.duration_ms()));
  }
}

// Where each transfer went on after the broker came back: the resume offset of the first
// StartTransfer answered after it, or none if the transfer went on without a resync.
void print_broker_restart(const Scenario& s, const Options& opt, const Vehicle& v,
                          const BrokerRestart& restart, const std::map<std::string, uint64_t>& resumes) {
  if (!restart.done) {
    std::printf("  the broker was not restarted: the slowest ECU never reached %d%%\n",
                opt.restart_broker_at);
    return;
  }
  std::printf("  broker killed at %d%% and restarted on port %d\n", restart.percent, v.broker->port());
  for (const auto& e : s.ecus) {
    auto acked = restart.acked.find(e);
    auto resumed = resumes.find(e);
    std::printf("  %s: %llu bytes acknowledged before the broker restart, %s\n", e.c_str(),
                static_cast<unsigned long long>(acked != restart.acked.end() ? acked->second : 0),
                resumed == resumes.end() ? "no resync after it"
                                         : ("resumed at byte " + std::to_string(resumed->second)).c_str());
  }
}

}  // namespace

int summarize(const Scenario& s, const Options& opt, const Vehicle& v, const ExitInfo& client_exit,
              const BrokerRestart& restart, const std::map<std::string, uint64_t>& resumes,
              const std::string& report_path) {
  v1::VehicleReport report;
  auto content = read_small_file(s.work + "/client-report.json", 16 << 20);
  if (!content || !google::protobuf::util::JsonStringToMessage(*content, &report).ok()) {
    std::fprintf(stderr, "ota-sim: the client wrote no report (%s); its log: %s\n%s\n",
                 client_exit.describe().c_str(), (s.work + "/client.log").c_str(),
                 tail_file(s.work + "/client.log", 15).c_str());
    return 1;
  }
  for (const auto& ps : v.stats) *report.add_processes() = ps;
  if (Status w = atomic_write_file(report_path, client::report_to_json(report)); !w.is_ok()) {
    std::fprintf(stderr, "ota-sim: %s\n", w.to_string().c_str());
    return 1;
  }
  print_table(report);
  if (opt.restart_broker_at >= 0) print_broker_restart(s, opt, v, restart, resumes);
  std::printf("report: %s\n", report_path.c_str());
  return report.result() == v1::CAMPAIGN_SUCCESS ? 0 : 1;
}

}  // namespace ota::sim
