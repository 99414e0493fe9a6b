// ota-client: the vehicle's update orchestrator. See docs/CLIENT.md for the configuration.
#include <google/protobuf/util/json_util.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include <signal.h>

#include "agent_directory.hpp"
#include "campaign.hpp"
#include "cloud_link.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "ota/core/trust.hpp"
#include "trust_gate.hpp"

namespace {

using namespace ota;
constexpr const char* kLog = "client";
constexpr const char* kVersion = "0.1.0";

Status parse_json(const std::string& json, google::protobuf::Message* msg, const std::string& what) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, msg, opts);
  if (!st.ok()) return Status(Code::kCorrupt, what + ": " + st.ToString());
  return Status::ok();
}

// Vehicle conditions from a JSON file (VehicleConditions), re-read at each check so that a
// simulator or a test can change them while the client runs. Without a file: parked, ignition off,
// full battery.
class FileVehicleState : public client::VehicleStateSource {
 public:
  explicit FileVehicleState(std::string path) : path_(std::move(path)) {}
  Result<v1::VehicleConditions> read() override {
    v1::VehicleConditions c;
    if (path_.empty()) {
      c.set_parked(true);
      c.set_ignition_off(true);
      c.set_battery_soc_percent(100);
    } else {
      auto content = read_small_file(path_, 64 * 1024);
      if (!content) return content.status();
      OTA_RETURN_IF_ERROR(parse_json(*content, &c, path_));
    }
    c.set_timestamp_ms(codec::now_ms());
    return c;
  }

 private:
  std::string path_;
};

// Consent answers given in advance, in order (simulation, tests, fleets that pre-approve):
// "accept", "decline", "postpone:MILLISECONDS". The last answer repeats.
class ScriptedConsent : public client::ConsentProvider {
 public:
  explicit ScriptedConsent(std::vector<std::string> answers) : answers_(std::move(answers)) {}
  client::ConsentAnswer ask(const v1::Campaign& c) override {
    std::string a = answers_.empty() ? "accept" : answers_[std::min(next_, answers_.size() - 1)];
    ++next_;
    OTA_LOGI(kLog, "consent for %s: %s", c.campaign_id().c_str(), a.c_str());
    client::ConsentAnswer out;
    if (a == "decline") {
      out.kind = client::ConsentAnswer::kDecline;
      out.reason = "declined by the owner";
    } else if (a.rfind("postpone:", 0) == 0) {
      out.kind = client::ConsentAnswer::kPostpone;
      out.postpone_for = std::chrono::milliseconds(std::stoll(a.substr(9)));
    }
    return out;
  }

 private:
  std::vector<std::string> answers_;
  size_t next_ = 0;
};

std::atomic<client::CampaignRunner*> g_runner{nullptr};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ota-client: carries out OTA campaigns across the vehicle's ECUs"};
  std::string config_path, campaign_override, report_override, log_level = "info";
  bool show_version = false;
  app.add_option("-c,--config", config_path, "configuration file (TOML), see docs/CLIENT.md");
  app.add_option("--campaign", campaign_override, "run this campaign (JSON) instead of [campaign].file");
  app.add_option("--report", report_override, "write the vehicle report (JSON) here");
  app.add_option("--log-level", log_level, "debug, info, warn, error");
  app.add_flag("--version", show_version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (show_version) {
    std::printf("ota-client %s (protocol %u.%u)\n", kVersion, codec::kProtocolMajor, codec::kProtocolMinor);
    return 0;
  }
  LogLevel level;
  if (!parse_log_level(log_level, &level)) {
    std::fprintf(stderr, "ota-client: unknown log level '%s'\n", log_level.c_str());
    return 2;
  }
  set_log_level(level);
  if (config_path.empty()) {
    std::fprintf(stderr, "ota-client: --config is required\n");
    return 2;
  }

  toml::table cfg;
  try {
    cfg = toml::parse_file(config_path);
  } catch (const toml::parse_error& e) {
    std::fprintf(stderr, "ota-client: %s: %s (line %u)\n", config_path.c_str(),
                 std::string(e.description()).c_str(), e.source().begin.line);
    return 2;
  }
  const std::string uri = cfg["broker"]["uri"].value_or(std::string("tcp://127.0.0.1:1883"));
  const std::string user = cfg["broker"]["username"].value_or(std::string("ota-client"));
  const std::string password_file = cfg["broker"]["password_file"].value_or(std::string());
  const std::string state_dir = cfg["state"]["dir"].value_or(std::string("/var/lib/ota-client"));
  const std::string vin = cfg["vehicle"]["vin"].value_or(std::string());
  std::string campaign_file = cfg["campaign"]["file"].value_or(std::string());
  std::string report_file = cfg["report"]["file"].value_or(std::string());
  const std::string conditions_file = cfg["conditions"]["file"].value_or(std::string());
  std::vector<std::string> consent_answers;
  if (auto arr = cfg["consent"]["answers"].as_array()) {
    for (auto& a : *arr) consent_answers.push_back(a.value_or(std::string("accept")));
  }
  if (!campaign_override.empty()) campaign_file = campaign_override;
  if (!report_override.empty()) report_file = report_override;

  client::RunnerOptions ropts;
  ropts.journal_path = state_dir + "/campaign-journal.pb";
  // ECU public keys, one <ecu_id>.pub per ECU: their commit results must carry the ECU's signature.
  if (auto dir = cfg["trust"]["ecu_keys"].value<std::string>()) {
    if (auto arr = cfg["vehicle"]["ecus"].as_array()) {
      for (auto& e : *arr) {
        const std::string id = e.value_or(std::string());
        auto key = trust::PublicKey::load(*dir + "/" + id + ".pub");
        if (!key) {
          std::fprintf(stderr, "ota-client: ECU key of %s: %s\n", id.c_str(),
                       key.status().to_string().c_str());
          return 2;
        }
        ropts.ecu_keys.emplace(id, std::move(*key));
      }
    }
  }
  ropts.agent_timeout = std::chrono::milliseconds(cfg["timeouts"]["agent_ms"].value_or(int64_t{30000}));
  ropts.stall_timeout = std::chrono::milliseconds(cfg["timeouts"]["stall_ms"].value_or(int64_t{5000}));

  if (Status st = make_dirs(state_dir); !st.is_ok()) {
    std::fprintf(stderr, "ota-client: %s\n", st.to_string().c_str());
    return 2;
  }
  TransportOptions topts;
  topts.uri = uri;
  topts.client_id = "ota-client";
  topts.username = user;
  if (!password_file.empty()) {
    auto pw = read_password_file(password_file);
    if (!pw) {
      std::fprintf(stderr, "ota-client: %s\n", pw.status().to_string().c_str());
      return 2;
    }
    topts.password = *pw;
  }
  if (auto ca = cfg["broker"]["tls_ca"].value<std::string>()) {
    topts.tls = TlsOptions{*ca, cfg["broker"]["tls_cert"].value_or(std::string()),
                           cfg["broker"]["tls_key"].value_or(std::string())};
  }

  // Signals: SIGUSR1 cancels the running campaign; SIGTERM/SIGINT stop the client (the journal keeps
  // the campaign for the next start).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGUSR1) {
        OTA_LOGW(kLog, "cancel requested");
        if (auto* r = g_runner.load()) r->cancel();
      } else {
        OTA_LOGI(kLog, "stopping on signal %d", sig);
        std::_Exit(128 + sig);
      }
    }
  }).detach();

  auto transport = make_transport(topts);
  client::AgentDirectory fleet(*transport);
  // The transport's callbacks use the fleet: stop them before the fleet goes away.
  struct StopTransport {
    std::unique_ptr<Transport>& t;
    ~StopTransport() { t.reset(); }
  } stop_transport{transport};
  transport->on_message([&fleet](const TransportMessage& m) { fleet.on_message(m); });
  if (Status st = transport->connect(std::chrono::seconds(10)); !st.is_ok()) {
    std::fprintf(stderr, "ota-client: %s\n", st.to_string().c_str());
    return 1;
  }
  if (Status st = transport->subscribe(topics::kAllAgentsUp, 1); !st.is_ok()) {
    std::fprintf(stderr, "ota-client: %s\n", st.to_string().c_str());
    return 1;
  }
  OTA_LOGI(kLog, "connected to %s as %s", uri.c_str(), user.c_str());

  // The link to the OTA platform: MQTT v5 over TLS, campaigns in, inventory/status/reports out.
  std::unique_ptr<client::CloudLink> cloud;
  if (auto curi = cfg["cloud"]["uri"].value<std::string>()) {
    client::CloudLinkOptions co;
    co.uri = *curi;
    co.ca_file = cfg["cloud"]["ca"].value_or(std::string());
    co.cert_file = cfg["cloud"]["cert"].value_or(std::string());
    co.key_file = cfg["cloud"]["key"].value_or(std::string());
    co.vehicle = cfg["cloud"]["vehicle"].value_or(std::string("ota-client"));
    auto link = client::CloudLink::connect(co);
    if (!link) {
      std::fprintf(stderr, "ota-client: cloud: %s\n", link.status().to_string().c_str());
      return 2;
    }
    cloud = std::move(link.value());
    OTA_LOGI(kLog, "connected to the OTA platform at %s as %s", co.uri.c_str(), co.vehicle.c_str());
  }
  struct StopCloud {
    std::unique_ptr<client::CloudLink>& c;
    ~StopCloud() { c.reset(); }
  } stop_cloud{cloud};
  ropts.on_status = [&transport, &cloud](const v1::CampaignStatus& s) {
    (void)transport->publish(topics::kVehicleStatus, s.SerializeAsString(), 1, true);
    if (cloud) (void)cloud->publish_status(s);
  };

  std::vector<std::string> ecus;
  if (auto arr = cfg["vehicle"]["ecus"].as_array()) {
    for (auto& e : *arr) ecus.push_back(e.value_or(std::string()));
  }
  if (!ecus.empty()) {
    Status online = fleet.wait_online(ecus, ropts.agent_timeout);
    if (!online.is_ok()) OTA_LOGW(kLog, "%s", online.message().c_str());
  }
  if (cloud) {
    v1::VehicleInventory inv;
    codec::set_protocol(inv.mutable_protocol());
    inv.set_vin(vin);
    inv.set_timestamp_ms(codec::now_ms());
    for (const auto& [id, view] : fleet.agents()) *inv.add_ecus() = view.hello.inventory();
    if (Status p = cloud->publish_inventory(inv); !p.is_ok())
      OTA_LOGW(kLog, "cloud: %s", p.to_string().c_str());
  }

  // The campaign: from a file, or offered by the platform.
  std::string campaign_text;
  if (campaign_file.empty() && cloud) {
    for (;;) {
      auto offer = cloud->wait_offer(std::chrono::hours(1));
      if (!offer && offer.status().code() == Code::kTimeout) continue;
      if (!offer) {
        std::fprintf(stderr, "ota-client: cloud: %s\n", offer.status().to_string().c_str());
        return 1;
      }
      google::protobuf::util::JsonPrintOptions jo;
      jo.preserve_proto_field_names = true;
      auto st =
          offer->has_signed_campaign()
              ? google::protobuf::util::MessageToJsonString(offer->signed_campaign(), &campaign_text, jo)
              : google::protobuf::util::MessageToJsonString(offer->campaign(), &campaign_text, jo);
      if (!st.ok()) return 1;
      OTA_LOGI(kLog, "campaign offered by the platform (%s)",
               offer->has_signed_campaign() ? "signed" : "unsigned");
      break;
    }
  } else if (campaign_file.empty()) {
    OTA_LOGI(kLog, "no campaign to run; serving inventory only");
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }

  // A campaign refused before anything was sent: the report records why, for the cloud and the owner.
  auto reject = [&](const Status& why) {
    OTA_LOGE(kLog, "%s", why.to_string().c_str());
    v1::VehicleReport rejected;
    codec::set_protocol(rejected.mutable_protocol());
    rejected.set_vin(vin);
    rejected.set_result(v1::CAMPAIGN_REJECTED);
    rejected.set_reason(why.to_string());
    rejected.set_started_ms(codec::now_ms());
    for (const auto& [id, view] : fleet.agents()) {
      auto* e = rejected.add_ecus();
      e->set_ecu_id(id);
      e->set_result(v1::REJECTED);
      e->set_version_before(client::active_bank(view).version());
      e->set_version_after(e->version_before());
      codec::to_wire(why, v1::PHASE_UNSPECIFIED, e->mutable_error());
    }
    (void)transport->publish(topics::kVehicleReport, rejected.SerializeAsString(), 1, true);
    (void)transport->flush(std::chrono::seconds(5));
    if (cloud) (void)cloud->publish_report(rejected);
    if (!report_file.empty()) (void)atomic_write_file(report_file, client::report_to_json(rejected));
    return 3;
  };

  // Trust: a campaign is accepted only signed for this vehicle (docs/SECURITY.md), unless the
  // configuration explicitly allows unsigned campaigns (development only).
  const std::string trust_root = cfg["trust"]["root"].value_or(std::string());
  const bool allow_unsigned = cfg["trust"]["allow_unsigned"].value_or(false);
  Result<std::string> content = campaign_text;
  if (campaign_text.empty()) content = read_small_file(campaign_file, 16 << 20);
  if (!content) {
    std::fprintf(stderr, "ota-client: %s\n", content.status().to_string().c_str());
    return 2;
  }
  const std::string campaign_source =
      campaign_file.empty() ? std::string("the platform's offer") : campaign_file;
  v1::Campaign campaign;
  std::unique_ptr<trust::TrustStore> store;
  trust::SystemClock clock;
  uint64_t director_version = 0;
  Status st;
  if (!trust_root.empty()) {
    auto opened =
        trust::TrustStore::open(trust_root, cfg["trust"]["dir"].value_or(state_dir + "/trust"), clock);
    if (!opened) {
      std::fprintf(stderr, "ota-client: trust: %s\n", opened.status().to_string().c_str());
      return 2;
    }
    store = std::move(*opened);
    v1::SignedCampaign signed_campaign;
    st = parse_json(*content, &signed_campaign, campaign_source);
    if (st.is_ok()) {
      auto gate = client::verify_signed_campaign(*store, signed_campaign, vin, fleet.agents());
      if (gate) {
        campaign = std::move(gate->campaign);
        director_version = gate->director_version;
        OTA_LOGI(kLog, "campaign %s verified (director metadata version %llu%s)",
                 campaign.campaign_id().c_str(), static_cast<unsigned long long>(director_version),
                 gate->resumed ? ", resumed" : "");
      } else {
        st = gate.status().with_context("campaign refused");
      }
    }
    if (!st.is_ok()) return reject(st);
  } else if (allow_unsigned) {
    OTA_LOGW(kLog, "trust.allow_unsigned is set: the campaign's signatures are NOT checked");
    st = parse_json(*content, &campaign, campaign_source);
    if (st.is_ok() && !vin.empty() && campaign.vin() != vin) {
      st = Status(Code::kRejected,
                  "campaign is for VIN '" + campaign.vin() + "', this vehicle is '" + vin + "'");
    }
  } else {
    st = Status(Code::kInvalidArgument, "no [trust] root configured and trust.allow_unsigned is not set");
  }
  if (!st.is_ok()) {
    std::fprintf(stderr, "ota-client: %s\n", st.to_string().c_str());
    return 2;
  }

  // Payloads named cloud://... are fetched (resumable, checked against the verified sizes and
  // digests) into the cache before anything is sent to an ECU.
  if (cloud) {
    auto local = client::localize(campaign, state_dir + "/cache", *cloud);
    if (!local) return reject(local.status().with_context("download"));
    campaign = std::move(local.value());
  }

  FileVehicleState vehicle(conditions_file);
  ScriptedConsent consent(consent_answers);
  client::CampaignRunner runner(fleet, *transport, vehicle, consent, ropts);
  g_runner = &runner;
  auto report = runner.run(campaign);
  g_runner = nullptr;
  if (store && report && report->result() != v1::CAMPAIGN_POSTPONED) {
    // Finished (in any way): the same signed campaign can no longer be resumed, only replaced.
    if (Status m = store->mark_campaign_finished(director_version); !m.is_ok()) {
      OTA_LOGW(kLog, "trust: %s", m.to_string().c_str());
    }
  }
  if (!report) {
    std::fprintf(stderr, "ota-client: %s\n", report.status().to_string().c_str());
    return 1;
  }
  const std::string json = client::report_to_json(*report);
  (void)transport->publish(topics::kVehicleReport, report->SerializeAsString(), 1, true);
  (void)transport->flush(std::chrono::seconds(5));
  if (cloud) {
    if (Status p = cloud->publish_report(*report); !p.is_ok())
      OTA_LOGW(kLog, "cloud: %s", p.to_string().c_str());
  }
  if (!report_file.empty()) {
    if (Status w = atomic_write_file(report_file, json); !w.is_ok()) {
      std::fprintf(stderr, "ota-client: %s\n", w.to_string().c_str());
      return 1;
    }
  }
  OTA_LOGI(kLog, "campaign %s: %s%s%s", report->campaign_id().c_str(),
           v1::CampaignResult_Name(report->result()).c_str(), report->reason().empty() ? "" : ": ",
           report->reason().c_str());
  transport->disconnect(std::chrono::seconds(2));
  return report->result() == v1::CAMPAIGN_SUCCESS ? 0 : 3;
}
