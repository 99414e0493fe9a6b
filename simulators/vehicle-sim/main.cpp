// ota-sim: the whole in-vehicle chain on a desktop. Starts a private broker, N simulated ECUs
// (ota-agent-sim) and the vehicle client (ota-client) as child processes, has the client run one
// campaign (full images, or deltas where the ECU can take them), and prints a per-ECU summary.
// Exits 0 only if every ECU was updated.
#include <google/protobuf/util/json_util.h>
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "campaign/report.hpp"
#include "images.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "ota/core/trust.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/cloud_broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/sim/wait.hpp"
#include "ota/v1/ota.pb.h"
#include "signing.hpp"

namespace {

using namespace ota;
namespace v1 = ota::v1;
constexpr const char* kLog = "ota-sim";

const char* kEcuNames[] = {"bcm", "tcu", "adas", "ivi", "brake", "steering", "bms", "gateway"};

std::string ecu_name(int i) {
  if (i < 8) return kEcuNames[i];
  char buf[16];
  std::snprintf(buf, sizeof buf, "ecu-%02d", i + 1);
  return buf;
}

std::string self_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

std::string bytes_field(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// "ECU:VALUE" options, repeatable.
std::map<std::string, std::string> per_ecu(const std::vector<std::string>& items, const std::string& flag) {
  std::map<std::string, std::string> out;
  for (const auto& it : items) {
    auto colon = it.find(':');
    if (colon == std::string::npos) throw CLI::ValidationError(flag, "expected ECU:VALUE, got '" + it + "'");
    out[it.substr(0, colon)] = it.substr(colon + 1);
  }
  return out;
}

struct Options {
  int agents = 3;
  std::string image_size = "8MiB";
  std::string report;
  std::string work_dir;
  bool keep = false;
  bool delta = false;
  int full_only = 0;  // the first K ECUs do not declare delta capability
  std::vector<std::string> fail, crash, fail_offset;
  double write_speed = 0;
  int dtcs = 0;
  uint32_t chunk_size = 256 * 1024;
  uint32_t window = 0;  // 0: the client's default
  int soc = 80;
  int min_soc = 20;
  bool not_parked = false;
  bool ignition_on = false;
  std::vector<std::string> consent;
  int cancel_at = -1;          // percent of bytes acknowledged overall
  int kill_client_at = -1;     // percent: kill -9 the client there and start it again
  int restart_broker_at = -1;  // percent of every ECU: kill -9 the broker there, restart it on its port
  bool non_atomic = false;
  int health_timeout_ms = 10000;
  int timeout_s = 600;
  bool quiet = false;
  std::string attack;  // sign (or tamper) as this attack does; see signing.hpp
  bool unsigned_campaign = false;
  bool no_cloud = false;     // hand the client the campaign file instead of going through the platform
  bool rotate_root = false;  // the platform rotates its root to v2 and ships it with the campaign
};

// Watches the client's status topic, shows progress, and fires the scenario's triggers. Also
// watches the agents' results, to tell where transfers resumed after a broker restart.
class Observer {
 public:
  Observer(const sim::Broker& broker, bool show) : show_(show) {
    TransportOptions o;
    o.uri = broker.uri();
    o.client_id = "ota-sim-observer";
    o.username = "ota-observer";
    o.password = broker.password("ota-observer");
    t_ = make_transport(o);
    t_->on_message([this](const TransportMessage& m) {
      if (m.topic == topics::kVehicleStatus) {
        on_status(m);
      } else {
        on_result(m);
      }
    });
  }
  Status start() {
    OTA_RETURN_IF_ERROR(t_->connect(std::chrono::seconds(5)));
    OTA_RETURN_IF_ERROR(t_->subscribe(std::string(topics::kPrefix) + "ecu/+/up/result", 1));
    return t_->subscribe(topics::kVehicleStatus, 1);
  }
  // Acknowledged bytes over payload bytes, all ECUs together.
  int percent() const { return percent_.load(); }
  // The same for the ECU that is furthest behind (0 until the client reports every ECU).
  int min_percent() const { return min_percent_.load(); }
  // Acknowledged payload bytes per ECU, as of the client's last status.
  std::map<std::string, uint64_t> acked() const {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  // From now on, record per ECU the resume offset of the first StartTransfer answered.
  void watch_resumes() {
    std::lock_guard<std::mutex> lock(mu_);
    resumes_.clear();
    watch_resumes_ = true;
  }
  std::map<std::string, uint64_t> resumes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return resumes_;
  }
  void stop() { t_->disconnect(std::chrono::seconds(1)); }
  void finish_line() {
    if (show_ && printed_) std::fprintf(stderr, "\n");
  }

 private:
  void on_status(const TransportMessage& m) {
    v1::CampaignStatus s;
    if (!codec::decode(m.payload, &s, codec::kMaxControlMessage, "status").is_ok()) return;
    uint64_t done = 0, total = 0;
    int lowest = 100;
    std::string line = "  " + s.state();
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : s.ecus()) {
      done += std::min(e.bytes_done(), e.bytes_total());
      total += e.bytes_total();
      int pct = e.bytes_total()
                    ? static_cast<int>(std::min(e.bytes_done(), e.bytes_total()) * 100 / e.bytes_total())
                    : 0;
      lowest = std::min(lowest, pct);
      acked_[e.ecu_id()] = e.bytes_done();
      line += "  " + e.ecu_id() + " " + std::to_string(pct) + "%";
    }
    if (total > 0) percent_ = static_cast<int>(done * 100 / total);
    min_percent_ = s.ecus().empty() ? 0 : lowest;
    if (show_) {
      std::fprintf(stderr, "\r%-120s", line.c_str());
      printed_ = true;
    }
  }
  void on_result(const TransportMessage& m) {
    std::string ecu;
    topics::Leaf leaf = topics::Leaf::kUnknown;
    if (!topics::parse_ecu_topic(m.topic, &ecu, &leaf) || leaf != topics::Leaf::kResult) return;
    v1::Result r;
    if (!codec::decode(m.payload, &r, codec::kMaxControlMessage, "result").is_ok()) return;
    if (!r.has_transfer_ready() || r.outcome() != v1::OUTCOME_OK) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (watch_resumes_) resumes_.emplace(ecu, r.transfer_ready().resume_offset());
  }
  bool show_;
  bool printed_ = false;
  mutable std::mutex mu_;
  std::atomic<int> percent_{0};
  std::atomic<int> min_percent_{0};
  std::map<std::string, uint64_t> acked_;
  bool watch_resumes_ = false;
  std::map<std::string, uint64_t> resumes_;
  std::unique_ptr<Transport> t_;
};

int run(const Options& opt) {
  uint64_t image_size = 0;
  if (!sim::parse_size(opt.image_size, &image_size) || image_size == 0) {
    std::fprintf(stderr, "ota-sim: --image-size '%s' is not a size (e.g. 8MiB)\n", opt.image_size.c_str());
    return 2;
  }
  std::optional<sim::TempDir> temp;
  std::string work = opt.work_dir;
  if (work.empty()) {
    auto t = sim::TempDir::create("ota-sim");
    if (!t) {
      std::fprintf(stderr, "ota-sim: %s\n", t.status().to_string().c_str());
      return 2;
    }
    temp.emplace(std::move(*t));
    work = temp->path();
    if (opt.keep) temp->release();
  }
  if (Status st = make_dirs(work); !st.is_ok()) {
    std::fprintf(stderr, "ota-sim: %s\n", st.to_string().c_str());
    return 2;
  }
  // Without --report, the report goes where it outlives a temporary work directory.
  const std::string report_path = !opt.report.empty()    ? opt.report
                                  : opt.work_dir.empty() ? std::string("ota-sim-report.json")
                                                         : work + "/report.json";
  const std::string bin = self_dir();
  auto fail = per_ecu(opt.fail, "--fail");
  auto crash = per_ecu(opt.crash, "--crash");
  auto fail_offset = per_ecu(opt.fail_offset, "--fail-offset");

  std::vector<std::string> ecus;
  for (int i = 0; i < opt.agents; ++i) ecus.push_back(ecu_name(i));

  // 1. Images: version 1.0.0 in each ECU's bank A, version 1.1.0 to install.
  if (!opt.quiet)
    std::fprintf(stderr, "ota-sim: preparing %d ECU(s) with %s images in %s\n", opt.agents,
                 opt.image_size.c_str(), work.c_str());
  v1::Campaign campaign;
  codec::set_protocol(campaign.mutable_protocol());
  campaign.set_campaign_id("sim-campaign-1");
  campaign.set_vin("SIMVIN0000000001");
  campaign.set_chunk_size(opt.chunk_size);
  campaign.set_window(opt.window);
  campaign.set_health_timeout_ms(static_cast<uint32_t>(opt.health_timeout_ms));
  campaign.set_require_consent(!opt.consent.empty());
  campaign.mutable_preconditions()->set_require_parked(true);
  campaign.mutable_preconditions()->set_require_ignition_off(true);
  campaign.mutable_preconditions()->set_min_battery_soc_percent(static_cast<uint32_t>(opt.min_soc));
  auto* group = campaign.add_groups();
  group->set_group(1);
  group->set_atomic(!opt.non_atomic);
  for (size_t i = 0; i < ecus.size(); ++i) {
    const std::string dir = work + "/ecu/" + ecus[i];
    const std::string pkg = work + "/packages/" + ecus[i];
    Status st = make_dirs(dir);
    if (st.is_ok()) st = make_dirs(pkg);
    auto base = st.is_ok() ? sim::write_base_image(dir + "/bank_a.img", image_size, i + 1)
                           : Result<sim::ImageFile>(st);
    if (base) st = sim::copy_image(*base, dir + "/bank_b.img");
    if (!st.is_ok()) base = st;
    auto next = base ? sim::write_next_image(*base, pkg + "/image-1.1.0.bin", i + 1)
                     : Result<sim::ImageFile>(base.status());
    if (!next) {
      std::fprintf(stderr, "ota-sim: %s\n", next.status().to_string().c_str());
      return 2;
    }
    auto* t = campaign.add_targets();
    t->set_ecu_id(ecus[i]);
    t->set_hardware_id(ecus[i] + "-hw1");
    t->set_version("1.1.0");
    t->set_size(next->size);
    t->set_sha256(bytes_field(next->sha256));
    t->set_group(1);
    auto* full = t->mutable_full();
    full->set_encoding(v1::PAYLOAD_ENCODING_RAW);
    full->set_uri(next->path);
    full->set_size(next->size);
    full->set_sha256(bytes_field(next->sha256));
    if (opt.dtcs > 0) t->add_resolves_dtcs(0xC10000u);
    if (opt.delta) {
      auto d = sim::write_delta(*base, *next, pkg + "/delta-1.0.0-1.1.0.otad");
      if (!d) {
        std::fprintf(stderr, "ota-sim: %s\n", d.status().to_string().c_str());
        return 2;
      }
      auto* delta = t->mutable_delta();
      delta->set_encoding(v1::PAYLOAD_ENCODING_DELTA);
      delta->set_uri(d->path);
      delta->set_size(d->size);
      delta->set_sha256(bytes_field(d->sha256));
      delta->set_base_version("1.0.0");
      delta->set_base_sha256(bytes_field(base->sha256));
    }
  }
  std::string campaign_json;
  {
    google::protobuf::util::JsonPrintOptions jo;
    jo.add_whitespace = true;
    jo.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(campaign, &campaign_json, jo);
  }
  // Vehicle conditions the client reads.
  v1::VehicleConditions cond;
  cond.set_parked(!opt.not_parked);
  cond.set_ignition_off(!opt.ignition_on);
  cond.set_battery_soc_percent(static_cast<uint32_t>(opt.soc));
  std::string cond_json;
  (void)google::protobuf::util::MessageToJsonString(cond, &cond_json);
  Status st = atomic_write_file(work + "/campaign.json", campaign_json);
  if (st.is_ok()) st = atomic_write_file(work + "/vehicle-state.json", cond_json);
  // The platform signs the campaign (director and image roles); vehicle and ECUs get the root.
  sim::Attack attack = sim::Attack::kNone;
  if (!sim::parse_attack(opt.attack, &attack)) {
    std::fprintf(stderr, "ota-sim: unknown --attack '%s'\n", opt.attack.c_str());
    return 2;
  }
  std::string trust_root;
  std::string client_campaign = work + "/campaign.json";
  // By default the campaign travels the whole chain: the platform (ota-cloud-sim) offers it over
  // MQTT v5 + TLS and serves the payloads, which the client downloads. Payload tampering attacks
  // alter the vehicle's copy, and oversized metadata would already be refused by the cloud broker's
  // packet limit, so these skip the platform to reach the client's own checks.
  const bool payload_attack = attack == sim::Attack::kCorruptPayload ||
                              attack == sim::Attack::kTruncatedPayload || attack == sim::Attack::kOversized;
  const bool use_cloud = !opt.no_cloud && !opt.unsigned_campaign && !payload_attack;
  std::map<std::string, std::string> cloud_names;  // local payload path -> cloud://name
  const std::string cloud_packages = work + "/cloud-packages";
  if (use_cloud) {
    for (const auto& t : campaign.targets()) {
      cloud_names[t.full().uri()] =
          "cloud://" + t.ecu_id() + "-" + t.full().uri().substr(t.full().uri().rfind('/') + 1);
      if (t.has_delta()) {
        cloud_names[t.delta().uri()] =
            "cloud://" + t.ecu_id() + "-" + t.delta().uri().substr(t.delta().uri().rfind('/') + 1);
      }
    }
  }
  if (st.is_ok() && !opt.unsigned_campaign) {
    auto material = sim::sign_campaign(campaign, work + "/keys", 1, attack, cloud_names, opt.rotate_root);
    if (!material) {
      st = material.status();
    } else {
      trust_root = material->root_path;
      client_campaign = work + "/signed-campaign.json";
      st = atomic_write_file(client_campaign, material->signed_campaign_json);
    }
  }
  // The platform's package store: the same files, by their cloud names (hard links, no copies).
  if (st.is_ok() && use_cloud) st = make_dirs(cloud_packages);
  for (const auto& [path, name] : cloud_names) {
    if (!st.is_ok()) break;
    const std::string dest = cloud_packages + "/" + name.substr(8);
    if (::link(path.c_str(), dest.c_str()) != 0 && errno != EEXIST) st = errno_status(errno, "link " + dest);
  }

  // 2. Broker.
  sim::BrokerOptions bo;
  bo.dir = work + "/broker";
  bo.agents = ecus;
  auto broker = st.is_ok() ? sim::Broker::start(bo) : Result<std::unique_ptr<sim::Broker>>(st);
  if (!broker) {
    std::fprintf(stderr, "ota-sim: %s\n", broker.status().to_string().c_str());
    return 2;
  }
  sim::Broker& b = **broker;

  // 3. Client configuration.
  std::string ecu_list;
  for (size_t i = 0; i < ecus.size(); ++i) ecu_list += (i ? ", \"" : "\"") + ecus[i] + "\"";
  std::string toml = "# written by ota-sim\n[vehicle]\nvin = \"" + campaign.vin() + "\"\necus = [" +
                     ecu_list + "]\n[broker]\nuri = \"" + b.uri() +
                     "\"\nusername = \"ota-client\"\npassword_file = \"" + b.credentials_file("ota-client") +
                     "\"\n[state]\ndir = \"" + work + "/client-state\"\n[conditions]\nfile = \"" + work +
                     "/vehicle-state.json\"\n[report]\nfile = \"" + work + "/client-report.json\"\n";
  std::unique_ptr<sim::CloudBroker> cloud_broker;
  std::optional<sim::ChildProcess> cloud_sim;
  if (use_cloud) {
    sim::CloudBrokerOptions co;
    co.dir = work + "/cloud-broker";
    auto cb = sim::CloudBroker::start(co);
    if (!cb) {
      std::fprintf(stderr, "ota-sim: cloud broker: %s\n", cb.status().to_string().c_str());
      return 2;
    }
    cloud_broker = std::move(*cb);
    sim::SpawnOptions so;
    so.log_path = work + "/cloud-sim.log";
    so.name = "cloud-sim";
    auto cs = sim::ChildProcess::spawn(
        {bin + "/ota-cloud-sim", "--broker", cloud_broker->uri(), "--pki", cloud_broker->pki_dir(),
         "--packages", cloud_packages, "--signed-campaign", client_campaign, "--reports-dir",
         work + "/cloud-reports", "--exit-after-report"},
        so);
    if (!cs) {
      std::fprintf(stderr, "ota-sim: %s\n", cs.status().to_string().c_str());
      return 2;
    }
    cloud_sim.emplace(std::move(*cs));
    if (!sim::wait_for_file_contains(so.log_path, "serving packages", std::chrono::seconds(15))) {
      std::fprintf(stderr, "ota-sim: ota-cloud-sim did not start:\n%s\n",
                   sim::tail_file(so.log_path).c_str());
      return 2;
    }
    toml += "[cloud]\nuri = \"" + cloud_broker->uri() + "\"\nca = \"" + cloud_broker->ca_file() +
            "\"\ncert = \"" + cloud_broker->cert_file("ota-client") + "\"\nkey = \"" +
            cloud_broker->key_file("ota-client") + "\"\nvehicle = \"ota-client\"\n";
  }
  // Each ECU has its own key pair and signs its results; the client knows the public halves.
  const std::string ecu_keys = work + "/keys/ecus";
  if (Status k = make_dirs(ecu_keys); !k.is_ok()) {
    std::fprintf(stderr, "ota-sim: %s\n", k.to_string().c_str());
    return 2;
  }
  for (const auto& e : ecus) {
    auto key = trust::PrivateKey::generate();
    Status k = key ? key->save(ecu_keys + "/" + e + ".key") : key.status();
    if (k.is_ok()) k = key->save_public(ecu_keys + "/" + e + ".pub");
    if (!k.is_ok()) {
      std::fprintf(stderr, "ota-sim: ECU key: %s\n", k.to_string().c_str());
      return 2;
    }
  }
  if (trust_root.empty()) {
    toml += "[trust]\nallow_unsigned = true\necu_keys = \"" + ecu_keys + "\"\n";
  } else {
    toml += "[trust]\nroot = \"" + trust_root + "\"\necu_keys = \"" + ecu_keys + "\"\n";
  }
  if (!opt.consent.empty()) {
    toml += "[consent]\nanswers = [";
    for (size_t i = 0; i < opt.consent.size(); ++i) toml += (i ? ", \"" : "\"") + opt.consent[i] + "\"";
    toml += "]\n";
  }
  if (Status w = atomic_write_file(work + "/client.toml", toml); !w.is_ok()) {
    std::fprintf(stderr, "ota-sim: %s\n", w.to_string().c_str());
    return 2;
  }

  // 4. Agents.
  std::map<std::string, sim::ChildProcess> agents;
  std::vector<v1::ProcessStats> stats;
  for (size_t i = 0; i < ecus.size(); ++i) {
    const std::string& e = ecus[i];
    std::vector<std::string> argv = {bin + "/ota-agent-sim",
                                     "--ecu",
                                     e,
                                     "--hardware-id",
                                     e + "-hw1",
                                     "--serial",
                                     "SN-" + e,
                                     "--broker",
                                     b.uri(),
                                     "--password-file",
                                     b.credentials_file(e),
                                     "--dir",
                                     work + "/ecu/" + e,
                                     "--factory-version",
                                     "1.0.0",
                                     "--bank-size",
                                     std::to_string(image_size * 2)};
    if (static_cast<int>(i) < opt.full_only) argv.push_back("--no-delta");
    if (!trust_root.empty()) argv.insert(argv.end(), {"--trust-root", trust_root});
    argv.insert(argv.end(), {"--ecu-key", work + "/keys/ecus/" + e + ".key"});
    if (fail.count(e)) argv.insert(argv.end(), {"--fail", fail[e]});
    if (crash.count(e)) argv.insert(argv.end(), {"--crash", crash[e]});
    if (fail_offset.count(e)) argv.insert(argv.end(), {"--fail-offset", fail_offset[e]});
    if (opt.write_speed > 0) argv.insert(argv.end(), {"--write-speed", std::to_string(opt.write_speed)});
    if (opt.dtcs > 0) argv.insert(argv.end(), {"--dtcs", std::to_string(opt.dtcs)});
    sim::SpawnOptions so;
    so.log_path = work + "/ecu/" + e + "/agent.log";
    so.name = "agent " + e;
    auto child = sim::ChildProcess::spawn(argv, so);
    if (!child) {
      std::fprintf(stderr, "ota-sim: %s\n", child.status().to_string().c_str());
      return 2;
    }
    agents.emplace(e, std::move(*child));
  }

  // 5. The client runs the campaign; the observer shows progress and fires the triggers.
  Observer observer(b, !opt.quiet && isatty(STDERR_FILENO));
  if (Status o = observer.start(); !o.is_ok()) {
    std::fprintf(stderr, "ota-sim: observer: %s\n", o.to_string().c_str());
    return 2;
  }
  auto spawn_client = [&]() {
    sim::SpawnOptions so;
    so.log_path = work + "/client.log";
    so.name = "client";
    std::vector<std::string> argv = {bin + "/ota-client", "--config", work + "/client.toml"};
    if (!use_cloud) argv.insert(argv.end(), {"--campaign", client_campaign});
    return sim::ChildProcess::spawn(argv, so);
  };
  auto client = spawn_client();
  if (!client) {
    std::fprintf(stderr, "ota-sim: %s\n", client.status().to_string().c_str());
    return 2;
  }
  std::optional<sim::ChildProcess> proc(std::move(*client));
  bool cancelled = false, killed = false, broker_restarted = false;
  int broker_restart_pct = 0;
  std::map<std::string, uint64_t> acked_at_restart;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opt.timeout_s);
  std::optional<sim::ExitInfo> client_exit;
  while (!client_exit) {
    client_exit = proc->wait_for(std::chrono::milliseconds(20));
    if (client_exit) break;
    int pct = observer.percent();
    if (opt.cancel_at >= 0 && !cancelled && pct >= opt.cancel_at) {
      cancelled = true;
      (void)proc->send_signal(SIGUSR1);
    }
    if (opt.kill_client_at >= 0 && !killed && pct >= opt.kill_client_at) {
      killed = true;
      auto info = proc->kill();
      v1::ProcessStats ps;
      ps.set_name("client (killed at " + std::to_string(pct) + "%)");
      ps.set_peak_rss_kib(static_cast<uint64_t>(info.peak_rss_kib));
      ps.set_exit_code(-info.term_signal);
      stats.push_back(ps);
      if (!opt.quiet) std::fprintf(stderr, "\nota-sim: killed the client at %d%%; starting it again\n", pct);
      auto again = spawn_client();
      if (!again) {
        std::fprintf(stderr, "ota-sim: %s\n", again.status().to_string().c_str());
        return 2;
      }
      proc.emplace(std::move(*again));
    }
    if (opt.restart_broker_at >= 0 && !broker_restarted && observer.min_percent() >= opt.restart_broker_at) {
      // A broker crash: no orderly shutdown, no database save. The same instance directory (config,
      // passwords, ACL, persistence) comes back on the same port; every client reconnects by itself.
      broker_restarted = true;
      broker_restart_pct = observer.min_percent();
      acked_at_restart = observer.acked();
      observer.watch_resumes();
      auto info = b.kill();
      v1::ProcessStats ps;
      ps.set_name("broker (killed at " + std::to_string(broker_restart_pct) + "%)");
      ps.set_peak_rss_kib(info ? static_cast<uint64_t>(info->peak_rss_kib) : 0);
      ps.set_exit_code(info ? -info->term_signal : 0);
      stats.push_back(ps);
      if (!opt.quiet) {
        std::fprintf(stderr, "\nota-sim: killed the broker at %d%%; starting it again on port %d\n",
                     broker_restart_pct, b.port());
      }
      if (Status rs = b.restart(); !rs.is_ok()) {
        std::fprintf(stderr, "ota-sim: broker restart: %s\n", rs.to_string().c_str());
        proc->kill();
        return 2;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "\nota-sim: the campaign did not finish within %d s\n", opt.timeout_s);
      proc->kill();
      return 1;
    }
  }
  observer.finish_line();
  observer.stop();
  {
    v1::ProcessStats ps;
    ps.set_name("client");
    ps.set_peak_rss_kib(static_cast<uint64_t>(client_exit->peak_rss_kib));
    ps.set_exit_code(client_exit->exit_code);
    stats.push_back(ps);
  }
  for (auto& [e, child] : agents) {
    auto info = child.terminate(std::chrono::seconds(5));
    v1::ProcessStats ps;
    ps.set_name("agent " + e);
    ps.set_peak_rss_kib(static_cast<uint64_t>(info.peak_rss_kib));
    ps.set_exit_code(info.exited() ? info.exit_code : -info.term_signal);
    stats.push_back(ps);
  }
  if (cloud_sim) {
    // It exits by itself once it has the report; a client that failed early sent none.
    auto info = cloud_sim->wait_for(std::chrono::seconds(5));
    if (!info) info = cloud_sim->terminate(std::chrono::seconds(5));
    v1::ProcessStats ps;
    ps.set_name("cloud-sim");
    ps.set_peak_rss_kib(static_cast<uint64_t>(info->peak_rss_kib));
    ps.set_exit_code(info->exited() ? info->exit_code : -info->term_signal);
    stats.push_back(ps);
  }
  if (cloud_broker) cloud_broker->stop();
  if (auto info = b.stop()) {
    v1::ProcessStats ps;
    ps.set_name("broker");
    ps.set_peak_rss_kib(static_cast<uint64_t>(info->peak_rss_kib));
    ps.set_exit_code(info->exit_code);
    stats.push_back(ps);
  }

  // 6. Report: the client's, plus the processes.
  v1::VehicleReport report;
  auto content = read_small_file(work + "/client-report.json", 16 << 20);
  if (!content || !google::protobuf::util::JsonStringToMessage(*content, &report).ok()) {
    std::fprintf(stderr, "ota-sim: the client wrote no report (%s); its log: %s\n%s\n",
                 client_exit->describe().c_str(), (work + "/client.log").c_str(),
                 sim::tail_file(work + "/client.log", 15).c_str());
    return 1;
  }
  for (const auto& ps : stats) *report.add_processes() = ps;
  std::string json = client::report_to_json(report);
  if (Status w = atomic_write_file(report_path, json); !w.is_ok()) {
    std::fprintf(stderr, "ota-sim: %s\n", w.to_string().c_str());
    return 1;
  }

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
  if (opt.restart_broker_at >= 0) {
    if (!broker_restarted) {
      std::printf("  the broker was not restarted: the slowest ECU never reached %d%%\n",
                  opt.restart_broker_at);
    } else {
      // Where each transfer went on after the broker came back: the resume offset of the first
      // StartTransfer answered after it, or none if the transfer went on without a resync.
      const auto resumes = observer.resumes();
      std::printf("  broker killed at %d%% and restarted on port %d\n", broker_restart_pct, b.port());
      for (const auto& e : ecus) {
        auto acked = acked_at_restart.find(e);
        auto resumed = resumes.find(e);
        std::printf("  %s: %llu bytes acknowledged before the broker restart, %s\n", e.c_str(),
                    static_cast<unsigned long long>(acked != acked_at_restart.end() ? acked->second : 0),
                    resumed == resumes.end()
                        ? "no resync after it"
                        : ("resumed at byte " + std::to_string(resumed->second)).c_str());
      }
    }
  }
  std::printf("report: %s\n", report_path.c_str());
  return report.result() == v1::CAMPAIGN_SUCCESS ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ota-sim: a simulated vehicle (broker, client, N ECU agents) running one OTA campaign"};
  Options o;
  app.add_option("--agents", o.agents, "number of ECUs")->check(CLI::Range(1, 64));
  app.add_option("--image-size", o.image_size, "image size per ECU (e.g. 8MiB, 512KiB, 1GiB)");
  app.add_option("--report", o.report, "write the vehicle report (JSON) here");
  app.add_option("--work-dir", o.work_dir, "keep everything (images, logs, state) in this directory");
  app.add_flag("--keep", o.keep, "keep the temporary work directory");
  app.add_flag("--delta", o.delta, "offer deltas (ECUs that can take them get them)");
  app.add_option("--full-only", o.full_only, "the first K ECUs do not accept deltas (mixed campaign)");
  app.add_option("--fail", o.fail, "ECU:PHASE - make an ECU fail at transfer|install|activate|health|commit");
  app.add_option("--crash", o.crash,
                 "ECU:PHASE - make an ECU's agent crash (SIGKILL) at install|activate|health|commit");
  app.add_option("--fail-offset", o.fail_offset, "ECU:BYTES - fail an ECU's flash write at this offset");
  app.add_option("--write-speed", o.write_speed, "flash write speed of every ECU, MB/s (0: disk speed)");
  app.add_option("--dtcs", o.dtcs, "active DTCs per ECU before the update (the campaign resolves the first)");
  app.add_option("--chunk-size", o.chunk_size, "chunk size in bytes");
  app.add_option("--window", o.window,
                 "chunks in flight per ECU (0: the client shares 4 among the ECUs of a group)");
  app.add_option("--soc", o.soc, "battery state of charge, percent");
  app.add_option("--min-soc", o.min_soc, "the campaign's minimum state of charge, percent");
  app.add_flag("--not-parked", o.not_parked, "the vehicle is moving");
  app.add_flag("--ignition-on", o.ignition_on, "the ignition is on");
  app.add_option("--consent", o.consent, "owner's answers in order: accept, decline, postpone:MS")
      ->delimiter(',');
  app.add_option("--cancel-at", o.cancel_at, "cancel the campaign when this percent is transferred");
  app.add_option("--kill-client-at", o.kill_client_at, "kill -9 the client at this percent, then restart it");
  app.add_option(
         "--restart-broker-at", o.restart_broker_at,
         "kill -9 the broker when every ECU has this percent acknowledged, then restart it on the same port")
      ->check(CLI::Range(0, 100));
  app.add_flag("--non-atomic", o.non_atomic, "ECUs commit independently (default: one atomic group)");
  app.add_option("--health-timeout-ms", o.health_timeout_ms, "health check timeout per ECU");
  app.add_option("--timeout", o.timeout_s, "give up after this many seconds");
  app.add_flag("-q,--quiet", o.quiet, "no progress output");
  app.add_option("--attack", o.attack, "sign or tamper as an attacker would; the campaign must be refused")
      ->check(CLI::IsMember(ota::sim::attack_names()));
  auto* rotate = app.add_flag(
      "--rotate-root", o.rotate_root,
      "the platform rotates its root to version 2 (new root and director keys) and ships it with "
      "the campaign; vehicle and ECUs are provisioned with version 1");
  app.add_flag("--no-cloud", o.no_cloud,
               "give the client the campaign file directly (no platform, no downloads)");
  app.add_flag("--unsigned", o.unsigned_campaign,
               "do not sign the campaign (the client allows unsigned: development only)");
  rotate->excludes("--unsigned");
  CLI11_PARSE(app, argc, argv);
  set_log_level(LogLevel::kWarn);
  try {
    return run(o);
  } catch (const CLI::ValidationError& e) {
    std::fprintf(stderr, "ota-sim: %s\n", e.what());
    return 2;
  }
}
