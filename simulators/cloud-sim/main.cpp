// ota-cloud-sim: plays the OTA platform on the cloud broker (proto/ota/v1/cloud.proto).
//
// Connects as CN ota-cloud (MQTT v5 over TLS), offers a campaign to a vehicle (retained on
// ota/v1/cloud/{vehicle}/down/campaign, again until the vehicle acknowledges it and whenever it asks;
// --campaign plain or --signed-campaign), serves DownloadRequests for the files in --packages,
// stores every VehicleReport it receives as JSON in --reports-dir (one per campaign) and
// acknowledges it. One line per event on stdout. Exits on SIGINT/SIGTERM, or after the first
// report with --exit-after-report. The parts are in src/, one job per file.
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "ota/core/program_info.hpp"
#include "src/cloud_sim.hpp"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

// The options; false (after printing why) when they are unusable.
bool complete(ota::cloudsim::Config& cfg) {
  auto from_pki = [&](std::string& v, const std::string& rel) {
    if (v.empty() && !cfg.pki.empty()) v = cfg.pki + "/" + rel;
  };
  from_pki(cfg.ca, "ca.crt");
  from_pki(cfg.cert, "clients/ota-cloud.crt");
  from_pki(cfg.key, "clients/ota-cloud.key");
  if (cfg.ca.empty() || cfg.cert.empty() || cfg.key.empty()) {
    std::fprintf(stderr, "ota-cloud-sim: error: give --pki DIR or all of --ca, --cert and --key\n");
    return false;
  }
  if (!ota::cloudsim::valid_name(cfg.vehicle, 64)) {
    std::fprintf(stderr, "ota-cloud-sim: error: --vehicle '%s' is not a valid id\n", cfg.vehicle.c_str());
    return false;
  }
  if (cfg.offer_resend_max < cfg.offer_resend_min) cfg.offer_resend_max = cfg.offer_resend_min;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  ota::cloudsim::Config cfg;
  CLI::App app{"ota-cloud-sim: the simulated OTA platform on the cloud broker (MQTT v5 over TLS)"};
  app.set_version_flag("--version", ota::version_text("ota-cloud-sim"));
  app.add_option("--broker", cfg.broker, "cloud broker URI, ssl://HOST:PORT")->required();
  app.add_option("--pki", cfg.pki, "make-pki directory: ca.crt and clients/ota-cloud.crt|key");
  app.add_option("--ca", cfg.ca, "CA file (default PKI/ca.crt)");
  app.add_option("--cert", cfg.cert, "client certificate, CN ota-cloud (default PKI/clients/ota-cloud.crt)");
  app.add_option("--key", cfg.key, "client key (default PKI/clients/ota-cloud.key)");
  app.add_option("--client-id", cfg.client_id, "MQTT client id")->capture_default_str();
  app.add_option("--vehicle", cfg.vehicle, "vehicle id that gets --campaign")->capture_default_str();
  app.add_option("--packages", cfg.packages, "directory of package files (cloud://NAME = DIR/NAME)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--campaign", cfg.campaign, "Campaign JSON whose payload uris are cloud://NAME")
      ->check(CLI::ExistingFile);
  app.add_option("--signed-campaign", cfg.signed_campaign,
                 "SignedCampaign JSON (payload locations cloud://NAME), published as signed")
      ->check(CLI::ExistingFile)
      ->excludes("--campaign");
  app.add_option("--reports-dir", cfg.reports_dir,
                 "store each received VehicleReport here as JSON, one file per vehicle and campaign");
  app.add_flag("--exit-after-report", cfg.exit_after_report, "exit 0 once one report was received");
  app.add_option("--drop-download-after", cfg.drop_after,
                 "once, stop answering a download after this many bytes of its package were served "
                 "(tests resume)");
  int64_t resend_min = cfg.offer_resend_min.count(), resend_max = cfg.offer_resend_max.count();
  app.add_option("--offer-resend-min-ms", resend_min,
                 "first resend of an unacknowledged offer after this long")
      ->check(CLI::Range(int64_t{100}, int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--offer-resend-max-ms", resend_max, "the resend interval doubles up to this")
      ->check(CLI::Range(int64_t{100}, int64_t{3600000}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  cfg.offer_resend_min = std::chrono::milliseconds(resend_min);
  cfg.offer_resend_max = std::chrono::milliseconds(resend_max);
  if (!complete(cfg)) return 2;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return ota::cloudsim::CloudSim(std::move(cfg)).run(g_stop);
}
