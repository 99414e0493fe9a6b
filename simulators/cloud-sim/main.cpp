// ota-cloud-sim: plays the OTA platform on the cloud broker (proto/ota/v1/cloud.proto).
//
// Connects as CN ota-cloud (MQTT v5 over TLS), publishes a campaign to a vehicle (retained on
// ota/v1/cloud/{vehicle}/down/campaign; --campaign plain or --signed-campaign), serves
// DownloadRequests for the files in --packages, and writes every VehicleReport it receives as JSON
// into --reports-dir. One line per event on stdout. Exits on SIGINT/SIGTERM, or after the first report with
// --exit-after-report.
#include <google/protobuf/util/json_util.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/file.hpp"
#include "ota/core/program_info.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/transport.hpp"
#include "ota/v1/cloud.pb.h"

namespace {

using namespace ota;
using std::chrono::milliseconds;

constexpr size_t kMaxQueue = 4096;       // queued requests/messages beyond this are dropped
constexpr size_t kMaxReport = 4u << 20;  // largest VehicleReport accepted
constexpr size_t kMaxInventory = 1u << 20;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

void event(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void event(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::printf("ota-cloud-sim: ");
  std::vprintf(fmt, ap);
  std::printf("\n");
  std::fflush(stdout);
  va_end(ap);
}

bool valid_name(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len || s[0] == '.') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

struct Config {
  std::string broker;
  std::string pki;
  std::string ca, cert, key;
  std::string client_id = "ota-cloud-sim";
  std::string vehicle = "ota-client";
  std::string packages;
  std::string campaign;
  std::string signed_campaign;
  std::string reports_dir;
  bool exit_after_report = false;
  uint64_t drop_after = 0;  // 0: never
};

class CloudSim {
 public:
  explicit CloudSim(Config c) : cfg_(std::move(c)) {}

  int run() {
    v1::CampaignOffer offer;
    if (!cfg_.campaign.empty()) {
      Status st = load_campaign(&offer);
      if (!st.is_ok()) return fail("campaign " + cfg_.campaign + ": " + st.to_string());
    } else if (!cfg_.signed_campaign.empty()) {
      Status st = load_signed_campaign(&offer);
      if (!st.is_ok()) return fail("signed campaign " + cfg_.signed_campaign + ": " + st.to_string());
    }
    if (!cfg_.reports_dir.empty()) {
      Status st = make_dirs(cfg_.reports_dir);
      if (!st.is_ok()) return fail(st.to_string());
    }
    TransportOptions t;
    t.uri = cfg_.broker;
    t.client_id = cfg_.client_id;
    t.mqtt_v5 = true;
    t.tls = TlsOptions{cfg_.ca, cfg_.cert, cfg_.key};
    transport_ = make_transport(t);
    transport_->on_message([this](const TransportMessage& m) { enqueue(m); });
    Status st = transport_->connect(milliseconds(10000));
    if (!st.is_ok()) return fail("connect: " + st.to_string());
    st = transport_->subscribe("ota/v1/cloud/+/up/#", 1);
    if (!st.is_ok()) return fail(st.to_string());
    event("connected to %s as %s", cfg_.broker.c_str(), cfg_.client_id.c_str());
    if (offer.has_campaign() || offer.has_signed_campaign()) {
      const std::string topic = "ota/v1/cloud/" + cfg_.vehicle + "/down/campaign";
      st = transport_->publish(topic, offer.SerializeAsString(), 1, true);
      if (st.is_ok()) st = transport_->flush(milliseconds(10000));
      if (!st.is_ok()) return fail("publish campaign: " + st.to_string());
      offered_ = true;
      campaign_id_ = offer.campaign().campaign_id();
      if (offer.has_signed_campaign()) {
        event("signed campaign published to vehicle %s (%d payloads, %d root updates)", cfg_.vehicle.c_str(),
              offer.signed_campaign().payloads_size(), offer.signed_campaign().root_updates_size());
      } else {
        event("campaign %s published to vehicle %s (%d targets)", campaign_id_.c_str(), cfg_.vehicle.c_str(),
              offer.campaign().targets_size());
      }
    }
    event("serving packages from %s", cfg_.packages.c_str());

    int rc = 0;
    while (!g_stop && !done_) {
      std::deque<TransportMessage> batch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, milliseconds(200), [this] { return !queue_.empty(); });
        batch.swap(queue_);
      }
      for (const auto& m : batch) dispatch(m);
    }
    (void)transport_->flush(milliseconds(5000));
    transport_->disconnect(milliseconds(2000));
    event("exit");
    return rc;
  }

 private:
  int fail(const std::string& msg) {
    std::fprintf(stderr, "ota-cloud-sim: error: %s\n", msg.c_str());
    return 1;
  }

  // Transport thread: queue only.
  void enqueue(const TransportMessage& m) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.size() >= kMaxQueue) {
        ++dropped_;
        return;
      }
      queue_.push_back(m);
    }
    cv_.notify_one();
  }

  Status load_campaign(v1::CampaignOffer* offer) {
    auto text = read_small_file(cfg_.campaign, 4u << 20);
    if (!text) return text.status();
    google::protobuf::util::JsonParseOptions opts;
    auto js = google::protobuf::util::JsonStringToMessage(*text, offer->mutable_campaign(), opts);
    if (!js.ok()) return make_error(Code::kCorrupt, "not a Campaign in JSON: " + js.ToString());
    v1::Campaign* c = offer->mutable_campaign();
    if (!c->has_protocol()) codec::set_protocol(c->mutable_protocol());
    codec::set_protocol(offer->mutable_protocol());
    offer->set_timestamp_ms(codec::now_ms());
    // Sizes and digests come from the package files when the campaign leaves them out; when it
    // gives them they must match (a wrong campaign fails here, not in the vehicle).
    auto fill = [&](v1::PayloadRef* ref, const std::string& what) -> Status {
      const std::string scheme = "cloud://";
      if (ref->uri().compare(0, scheme.size(), scheme) != 0) return Status::ok();
      const std::string name = ref->uri().substr(scheme.size());
      if (!valid_name(name, 128))
        return make_error(Code::kInvalidArgument, what + ": bad package name '" + name + "'");
      const std::string path = cfg_.packages + "/" + name;
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path, ec))
        return make_error(Code::kNotFound, what + ": package file " + path + " not found");
      const uint64_t size = std::filesystem::file_size(path, ec);
      auto digest = sha256_file(path);
      if (!digest) return digest.status().with_context(what);
      const std::string bytes(reinterpret_cast<const char*>(digest->data()), digest->size());
      if (ref->size() == 0) ref->set_size(size);
      if (ref->sha256().empty()) ref->set_sha256(bytes);
      if (ref->size() != size || ref->sha256() != bytes)
        return make_error(Code::kHashMismatch, what + ": size/sha256 in the campaign do not match " + path);
      return Status::ok();
    };
    for (auto& t : *c->mutable_targets()) {
      OTA_RETURN_IF_ERROR(fill(t.mutable_full(), "target " + t.ecu_id() + " full"));
      if (t.has_delta()) OTA_RETURN_IF_ERROR(fill(t.mutable_delta(), "target " + t.ecu_id() + " delta"));
    }
    return Status::ok();
  }

  // A signed campaign is published as signed; only its payload locations are checked here (that
  // each cloud:// package exists and, when it names a digest, has it).
  Status load_signed_campaign(v1::CampaignOffer* offer) {
    auto text = read_small_file(cfg_.signed_campaign, 16u << 20);
    if (!text) return text.status();
    google::protobuf::util::JsonParseOptions opts;
    auto js = google::protobuf::util::JsonStringToMessage(*text, offer->mutable_signed_campaign(), opts);
    if (!js.ok()) return make_error(Code::kCorrupt, "not a SignedCampaign in JSON: " + js.ToString());
    codec::set_protocol(offer->mutable_protocol());
    offer->set_timestamp_ms(codec::now_ms());
    for (const auto& loc : offer->signed_campaign().payloads()) {
      const std::string scheme = "cloud://";
      if (loc.uri().compare(0, scheme.size(), scheme) != 0) continue;
      const std::string name = loc.uri().substr(scheme.size());
      if (!valid_name(name, 128))
        return make_error(Code::kInvalidArgument, "bad package name '" + name + "'");
      const std::string path = cfg_.packages + "/" + name;
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path, ec))
        return make_error(Code::kNotFound, "package file " + path + " not found");
      if (!loc.sha256().empty()) {
        auto digest = sha256_file(path);
        if (!digest) return digest.status();
        if (loc.sha256() != std::string(reinterpret_cast<const char*>(digest->data()), digest->size()))
          return make_error(Code::kHashMismatch,
                            path + " does not have the SHA-256 its payload location names");
      }
    }
    return Status::ok();
  }

  void dispatch(const TransportMessage& m) {
    // ota/v1/cloud/{vehicle}/up/{what}
    const std::string pre = "ota/v1/cloud/";
    if (m.topic.compare(0, pre.size(), pre) != 0) return;
    const std::string rest = m.topic.substr(pre.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos) return;
    const std::string vehicle = rest.substr(0, slash);
    const std::string what = rest.substr(slash + 1);
    if (what == "up/download") {
      serve(vehicle, m.payload);
    } else if (what == "up/report") {
      on_report(vehicle, m.payload);
    } else if (what == "up/inventory") {
      if (m.payload.empty()) return;
      v1::VehicleInventory inv;
      Status st = codec::decode(m.payload, &inv, kMaxInventory, "VehicleInventory");
      if (!st.is_ok()) return event("inventory from %s dropped: %s", vehicle.c_str(), st.to_string().c_str());
      std::string ecus;
      for (const auto& e : inv.ecus()) {
        std::string version;
        for (const auto& b : e.banks())
          if (b.bank() == e.active_bank()) version = b.version();
        ecus += " " + e.ecu_id() + "=" + version;
      }
      event("inventory from %s: %d ECUs%s", vehicle.c_str(), inv.ecus_size(), ecus.c_str());
    } else if (what == "up/status") {
      if (m.payload.empty()) return;
      v1::CampaignStatus s;
      if (!codec::decode(m.payload, &s, codec::kMaxControlMessage, "CampaignStatus").is_ok()) return;
      std::string& last = last_state_[vehicle];
      if (s.state() != last) {
        last = s.state();
        event("status from %s: campaign %s %s", vehicle.c_str(), s.campaign_id().c_str(), s.state().c_str());
      }
    }
  }

  void answer(const std::string& vehicle, v1::DownloadChunk& chunk) {
    codec::set_protocol(chunk.mutable_protocol());
    const std::string topic = "ota/v1/cloud/" + vehicle + "/down/download/" + chunk.request_id();
    Status st = transport_->publish(topic, chunk.SerializeAsString(), 1, false);
    if (!st.is_ok()) event("answer on %s failed: %s", topic.c_str(), st.to_string().c_str());
  }

  void refuse(const std::string& vehicle, v1::DownloadChunk& chunk, const Status& why) {
    event("download request %s from %s refused: %s", chunk.request_id().c_str(), vehicle.c_str(),
          why.to_string().c_str());
    codec::to_wire(why, v1::PHASE_TRANSFER, chunk.mutable_error());
    answer(vehicle, chunk);
  }

  void serve(const std::string& vehicle, const std::string& payload) {
    v1::DownloadRequest req;
    Status st = codec::decode(payload, &req, codec::kMaxControlMessage, "DownloadRequest");
    if (st.is_ok()) st = codec::check_protocol(req.protocol(), "DownloadRequest");
    if (!st.is_ok() || !valid_name(req.request_id(), 64)) {
      // Without a valid request id there is no topic to answer on.
      event("download request from %s dropped: %s", vehicle.c_str(),
            st.is_ok() ? "request_id is not a valid topic segment" : st.to_string().c_str());
      return;
    }
    if (!dropped_download_.empty() && req.download_id() == dropped_download_)
      return;  // --drop-download-after
    v1::DownloadChunk chunk;
    chunk.set_request_id(req.request_id());
    chunk.set_package(req.package());
    chunk.set_offset(req.offset());
    if (!valid_name(req.package(), 128)) {
      return refuse(vehicle, chunk,
                    make_error(Code::kInvalidArgument, "bad package name '" + req.package() + "'"));
    }
    FileReader* reader = open_package(req.package());
    if (reader == nullptr) {
      return refuse(vehicle, chunk, make_error(Code::kNotFound, "package '" + req.package() + "' not found"));
    }
    const uint64_t size = reader->size();
    chunk.set_total_size(size);
    if (req.length() == 0 || req.length() > codec::kMaxChunkSize) {
      return refuse(
          vehicle, chunk,
          make_error(Code::kInvalidArgument, "length " + std::to_string(req.length()) + " not in 1.." +
                                                 std::to_string(codec::kMaxChunkSize)));
    }
    if (req.offset() >= size) {
      return refuse(vehicle, chunk,
                    make_error(Code::kInvalidArgument, "offset " + std::to_string(req.offset()) +
                                                           " is not below the size " + std::to_string(size)));
    }
    if (cfg_.drop_after > 0 && dropped_download_.empty() && served_[req.package()] >= cfg_.drop_after) {
      dropped_download_ = req.download_id().empty() ? "-" : req.download_id();
      event("dropping download %s of %s after %llu bytes served (--drop-download-after)",
            dropped_download_.c_str(), req.package().c_str(),
            static_cast<unsigned long long>(served_[req.package()]));
      return;
    }
    if (seen_downloads_.insert(req.download_id()).second) {
      if (seen_downloads_.size() > 10000) seen_downloads_.clear();
      event("download %s of %s by %s from offset %llu of %llu", req.download_id().c_str(),
            req.package().c_str(), vehicle.c_str(), static_cast<unsigned long long>(req.offset()),
            static_cast<unsigned long long>(size));
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(req.length(), size - req.offset()));
    std::string* data = chunk.mutable_data();
    data->resize(n);
    st = reader->read_at(req.offset(), reinterpret_cast<uint8_t*>(&(*data)[0]), n);
    if (!st.is_ok()) {
      chunk.clear_data();
      return refuse(vehicle, chunk, st);
    }
    chunk.set_crc32c(crc32c(data->data(), n));
    chunk.set_last(req.offset() + n == size);
    served_[req.package()] += n;
    answer(vehicle, chunk);
    if (chunk.last()) {
      event("download %s of %s: served its last chunk", req.download_id().c_str(), req.package().c_str());
    }
  }

  FileReader* open_package(const std::string& name) {
    auto it = readers_.find(name);
    if (it != readers_.end()) return it->second.get();
    const std::string path = cfg_.packages + "/" + name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return nullptr;
    auto r = FileReader::open(path);
    if (!r) return nullptr;
    if (readers_.size() > 64) readers_.clear();
    return (readers_[name] = std::move(r.value())).get();
  }

  void on_report(const std::string& vehicle, const std::string& payload) {
    v1::VehicleReport report;
    Status st = codec::decode(payload, &report, kMaxReport, "VehicleReport");
    if (!st.is_ok()) return event("report from %s dropped: %s", vehicle.c_str(), st.to_string().c_str());
    std::string path = "(not saved: no --reports-dir)";
    if (!cfg_.reports_dir.empty()) {
      google::protobuf::util::JsonPrintOptions opts;
      opts.add_whitespace = true;
      opts.preserve_proto_field_names = true;
      opts.always_print_primitive_fields = true;
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(report, &json, opts);
      std::string id = valid_name(report.campaign_id(), 100) ? report.campaign_id() : "campaign";
      path = cfg_.reports_dir + "/" + vehicle + "-" + id + "-" + std::to_string(++reports_) + ".json";
      st = atomic_write_file(path, json);
      if (!st.is_ok()) return event("report from %s not saved: %s", vehicle.c_str(), st.to_string().c_str());
    }
    event("report from %s: campaign %s %s (%d ECUs) -> %s", vehicle.c_str(), report.campaign_id().c_str(),
          v1::CampaignResult_Name(report.result()).c_str(), report.ecus_size(), path.c_str());
    // A final report withdraws the offer, so that the vehicle does not run it again after a restart.
    if (offered_ && (campaign_id_.empty() || report.campaign_id() == campaign_id_) &&
        vehicle == cfg_.vehicle && report.result() != v1::CAMPAIGN_POSTPONED) {
      offered_ = false;
      (void)transport_->publish("ota/v1/cloud/" + vehicle + "/down/campaign", std::string(), 1, true);
      event("campaign %s withdrawn from %s", campaign_id_.c_str(), vehicle.c_str());
    }
    if (cfg_.exit_after_report) done_ = true;
  }

  Config cfg_;
  std::unique_ptr<Transport> transport_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TransportMessage> queue_;
  size_t dropped_ = 0;
  bool done_ = false;
  bool offered_ = false;
  std::string campaign_id_;  // empty for a signed campaign (its id is inside the signed metadata)
  std::map<std::string, std::string> last_state_;
  std::map<std::string, uint64_t> served_;
  std::string dropped_download_;
  std::set<std::string> seen_downloads_;
  std::map<std::string, std::unique_ptr<FileReader>> readers_;
  int reports_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
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
  app.add_option("--reports-dir", cfg.reports_dir, "write each received VehicleReport here as JSON");
  app.add_flag("--exit-after-report", cfg.exit_after_report, "exit 0 once one report was received");
  app.add_option("--drop-download-after", cfg.drop_after,
                 "once, stop answering a download after this many bytes of its package were served "
                 "(tests resume)");
  CLI11_PARSE(app, argc, argv);
  auto from_pki = [&](std::string& v, const std::string& rel) {
    if (v.empty() && !cfg.pki.empty()) v = cfg.pki + "/" + rel;
  };
  from_pki(cfg.ca, "ca.crt");
  from_pki(cfg.cert, "clients/ota-cloud.crt");
  from_pki(cfg.key, "clients/ota-cloud.key");
  if (cfg.ca.empty() || cfg.cert.empty() || cfg.key.empty()) {
    std::fprintf(stderr, "ota-cloud-sim: error: give --pki DIR or all of --ca, --cert and --key\n");
    return 2;
  }
  if (!valid_name(cfg.vehicle, 64)) {
    std::fprintf(stderr, "ota-cloud-sim: error: --vehicle '%s' is not a valid id\n", cfg.vehicle.c_str());
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return CloudSim(std::move(cfg)).run();
}
