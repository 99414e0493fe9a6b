// ota-client: the vehicle's update orchestrator (docs/CLIENT.md). Loads the configuration, wires the
// vehicle bus, the platform link and the campaign runner, runs one campaign and turns how it ended
// into the exit status. Each step lives in the file named after it.
#include <atomic>
#include <cstdio>

#include "campaign.hpp"
#include "campaign/journal.hpp"
#include "campaign_admission.hpp"
#include "campaign_intake.hpp"
#include "command_line.hpp"
#include "config.hpp"
#include "ecu_keys.hpp"
#include "file_vehicle_state.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/program_info.hpp"
#include "platform_connection.hpp"
#include "publication.hpp"
#include "rejection_report.hpp"
#include "scripted_consent.hpp"
#include "signal_watch.hpp"
#include "vehicle_bus.hpp"

namespace {

using namespace ota;
constexpr const char* kLog = "client";

// Exit statuses (docs/CLIENT.md, section 1).
constexpr int kExitSuccess = 0;      // the campaign ended CAMPAIGN_SUCCESS
constexpr int kExitFailure = 1;      // the client itself failed
constexpr int kExitUsage = 2;        // usage or configuration error
constexpr int kExitNotSuccess = 3;   // the campaign ended otherwise, or was refused
constexpr int kExitUnavailable = 4;  // a broker unreachable at start: temporary, start again later

// The running campaign, for SIGUSR1: the signal thread outlives run_client's locals.
std::atomic<client::CampaignRunner*> g_runner{nullptr};

int fail(int exit_status, const std::string& what) {
  std::fprintf(stderr, "ota-client: %s\n", what.c_str());
  return exit_status;
}
int fail(int exit_status, const Status& st) { return fail(exit_status, st.to_string()); }

// A connection that failed because nothing answered is temporary; anything else is the
// configuration's (credentials refused, certificates unreadable) or the client's own failure.
int connection_failure(const Status& st, int otherwise) {
  const bool temporary = st.code() == Code::kUnavailable || st.code() == Code::kTimeout;
  return temporary ? kExitUnavailable : otherwise;
}

// Hands the report on (vehicle, platform when connected, file) and turns the campaign's end into
// the exit status.
// After the report was handed to delivery: waits (bounded) for the platform's acknowledgement, logs
// how the campaign ended and turns it into the exit status.
int finish(const v1::VehicleReport& report, const Status& delivered, Transport& transport,
           client::CloudLink* cloud) {
  if (!delivered.is_ok()) return fail(kExitFailure, delivered);
  client::await_report_acks(cloud);
  OTA_LOGI(kLog, "campaign %s: %s%s%s", report.campaign_id().c_str(),
           v1::CampaignResult_Name(report.result()).c_str(), report.reason().empty() ? "" : ": ",
           report.reason().c_str());
  transport.disconnect(std::chrono::seconds(2));
  return report.result() == v1::CAMPAIGN_SUCCESS ? kExitSuccess : kExitNotSuccess;
}

int resume_journaled(const client::ClientConfig& cfg, const v1::Campaign& campaign,
                     client::RunnerOptions ropts, client::ConsentProvider& consent, client::VehicleBus& bus) {
  OTA_LOGI(kLog, "the journal holds campaign %s unfinished: resuming it", campaign.campaign_id().c_str());
  client::Admission admission = client::readmit_journaled(cfg, campaign);
  ropts.on_status = client::status_publisher(bus.transport(), nullptr);
  client::FileVehicleState vehicle(cfg.conditions.file);
  client::CampaignRunner runner(bus.fleet(), bus.transport(), vehicle, consent, ropts);
  g_runner = &runner;
  auto report = runner.run(campaign);
  g_runner = nullptr;
  if (!report) return fail(kExitFailure, report.status());
  auto platform = client::connect_platform(cfg.cloud, cfg.state.dir);
  if (!platform)
    OTA_LOGW(kLog, "cloud: %s; the report stays in the vehicle", platform.status().to_string().c_str());
  client::CloudLink* cloud = platform ? platform->get() : nullptr;
  Status delivered = client::deliver_report(*report, bus.transport(), cloud, cfg.report.file);
  client::record_campaign_end(admission, *report);  // as after an uninterrupted run: no replay
  return finish(*report, delivered, bus.transport(), cloud);
}

// The runner's options that come from the configuration.
client::RunnerOptions runner_options(const client::ClientConfig& cfg) {
  client::RunnerOptions ropts;
  ropts.journal_path = cfg.state.dir + "/campaign-journal.pb";
  ropts.agent_timeout = std::chrono::milliseconds(cfg.timeouts.agent_ms);
  ropts.stall_timeout = std::chrono::milliseconds(cfg.timeouts.stall_ms);
  ropts.campaign_timeout = std::chrono::milliseconds(cfg.timeouts.campaign_ms);
  ropts.min_rate = static_cast<uint64_t>(cfg.transfer.min_rate);
  ropts.rate_window = std::chrono::milliseconds(cfg.transfer.rate_window_ms);
  return ropts;
}

int run_new_campaign(const client::ClientConfig& cfg, client::RunnerOptions ropts,
                     client::ConsentProvider& consent, client::VehicleBus& bus);

int run_client(const client::ClientConfig& cfg) {
  auto keys = client::load_ecu_keys(cfg.trust.ecu_keys, cfg.vehicle.ecus);
  if (!keys) return fail(kExitUsage, keys.status());
  auto consent = client::ScriptedConsent::from_answers(cfg.consent.answers);
  if (!consent) return fail(kExitUsage, consent.status());
  client::RunnerOptions ropts = runner_options(cfg);
  ropts.ecu_keys = std::move(*keys);
  if (Status st = make_private_dir(cfg.state.dir); !st.is_ok()) return fail(kExitUsage, st);
  // One client per state directory: a second one would fight the first over the journal.
  auto lock = DirLock::acquire(cfg.state.dir, "ota-client");
  if (!lock) return fail(kExitFailure, lock.status());
  auto topts = client::vehicle_transport_options(cfg.broker);
  if (!topts) return fail(kExitUsage, topts.status());

  client::watch_signals([] {
    if (auto* r = g_runner.load()) r->cancel();
  });
  auto bus = client::VehicleBus::connect(*topts);
  if (!bus) return fail(connection_failure(bus.status(), kExitFailure), bus.status());
  OTA_LOGI(kLog, "connected to %s as %s", cfg.broker.uri.c_str(), cfg.broker.username.c_str());
  if (auto unfinished = client::unfinished_campaign(ropts.journal_path)) {
    return resume_journaled(cfg, *unfinished, ropts, *consent, **bus);
  }
  return run_new_campaign(cfg, std::move(ropts), *consent, **bus);
}

// No campaign under way: takes one (the campaign file, or the platform's offer), admits it and runs it.
int run_new_campaign(const client::ClientConfig& cfg, client::RunnerOptions ropts,
                     client::ConsentProvider& consent, client::VehicleBus& bus) {
  client::AgentDirectory& fleet = bus.fleet();
  Transport& transport = bus.transport();
  auto platform = client::connect_platform(cfg.cloud, cfg.state.dir);
  if (!platform)
    return fail(connection_failure(platform.status(), kExitUsage), "cloud: " + platform.status().to_string());
  std::unique_ptr<client::CloudLink> cloud = std::move(*platform);
  ropts.on_status = client::status_publisher(transport, cloud.get());

  // The campaign is verified against the agents online: give them time to say hello.
  if (!cfg.vehicle.ecus.empty()) {
    Status online = fleet.wait_online(cfg.vehicle.ecus, ropts.agent_timeout);
    if (!online.is_ok()) OTA_LOGW(kLog, "%s", online.message().c_str());
  }
  if (cloud) client::publish_inventory(*cloud, cfg.vehicle.vin, fleet.agents());

  const bool from_platform = cfg.campaign.file.empty();
  if (from_platform && !cloud) client::serve_inventory_only();
  auto input =
      from_platform ? client::wait_campaign_offer(*cloud) : client::read_campaign_file(cfg.campaign.file);
  if (!input) return fail(from_platform ? kExitFailure : kExitUsage, input.status());
  if (auto stored = from_platform ? client::answer_finished_campaign(cloud.get(), *input) : std::nullopt) {
    client::await_report_acks(cloud.get());
    return stored->result() == v1::CAMPAIGN_SUCCESS ? kExitSuccess : kExitNotSuccess;
  }
  auto admission = client::admit_campaign(cfg, *input, fleet.agents());
  if (!admission) return fail(kExitUsage, admission.status());

  // Refused before anything was sent to an ECU: the report says why, for the platform and the owner.
  auto reject = [&](const Status& why) {
    OTA_LOGE(kLog, "%s", why.to_string().c_str());
    const std::string id = admission->campaign.campaign_id().empty() ? client::claimed_campaign_id(*input)
                                                                     : admission->campaign.campaign_id();
    (void)client::deliver_report(client::rejection_report(cfg.vehicle.vin, id, why, fleet.agents()),
                                 transport, cloud.get(), cfg.report.file);
    client::await_report_acks(cloud.get());
    return kExitNotSuccess;
  };
  if (!admission->refusal.is_ok()) return reject(admission->refusal);
  // Payloads named cloud://... are fetched (resumable, checked against the verified sizes and
  // digests) into the cache before anything is sent to an ECU.
  if (cloud) {
    auto local = client::localize(admission->campaign, cfg.state.dir + "/cache", *cloud);
    if (!local) return reject(local.status().with_context("download"));
    admission->campaign = std::move(*local);
  }

  client::FileVehicleState vehicle(cfg.conditions.file);
  client::CampaignRunner runner(fleet, transport, vehicle, consent, ropts);
  g_runner = &runner;
  auto report = runner.run(admission->campaign);
  g_runner = nullptr;
  if (!report) return fail(kExitFailure, report.status());
  // Queued for the platform before the campaign is recorded as finished: a crash in between leaves
  // the stored report to answer the offer that comes again.
  Status delivered = client::deliver_report(*report, transport, cloud.get(), cfg.report.file);
  client::record_campaign_end(*admission, *report);
  return finish(*report, delivered, transport, cloud.get());
}

}  // namespace

int main(int argc, char** argv) {
  client::CommandLine cl;
  if (auto done = client::parse_command_line(argc, argv, &cl)) return *done;
  if (cl.version) {
    std::printf("%s\nprotocol %u.%u\n", version_text("ota-client").c_str(), codec::kProtocolMajor,
                codec::kProtocolMinor);
    return kExitSuccess;
  }
  set_log_level(cl.log_level);
  auto cfg = client::load_selected_config(cl);
  if (!cfg) return fail(kExitUsage, cfg.status().message());
  if (cl.check_config) {
    std::fputs(client::to_toml(*cfg, /*complete=*/true).c_str(), stdout);
    return kExitSuccess;
  }
  return run_client(*cfg);
}
