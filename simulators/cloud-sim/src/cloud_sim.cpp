#include "cloud_sim.hpp"

#include <cstdio>

#include "offer_loader.hpp"
#include "ota/core/codec.hpp"

namespace ota::cloudsim {
namespace {

using std::chrono::milliseconds;
constexpr size_t kMaxQueue = 4096;       // queued messages beyond this are dropped
constexpr size_t kMaxReport = 4u << 20;  // largest VehicleReport accepted
constexpr size_t kMaxInventory = 1u << 20;
constexpr milliseconds kIdleWait{200};  // the loop checks `stop` this often

}  // namespace

int CloudSim::fail(const std::string& msg) {
  std::fprintf(stderr, "ota-cloud-sim: error: %s\n", msg.c_str());
  return 1;
}

Status CloudSim::publish(const std::string& topic, const std::string& payload, bool retain) {
  return transport_->publish(topic, payload, 1, retain);
}

Status CloudSim::connect() {
  TransportOptions t;
  t.uri = cfg_.broker;
  t.client_id = cfg_.client_id;
  t.mqtt_v5 = true;
  t.tls = TlsOptions{cfg_.ca, cfg_.cert, cfg_.key};
  transport_ = make_transport(t);
  transport_->on_message([this](const TransportMessage& m) { enqueue(m); });
  // The subscription is restored before a reconnect is reported (Transport::on_connection).
  transport_->on_connection([this](bool up) {
    if (!up) {
      event("connection to the broker lost");
    } else if (subscribed_) {
      event("reconnected to the broker");
    }
  });
  OTA_RETURN_IF_ERROR(transport_->connect(milliseconds(10000)).with_context("connect"));
  OTA_RETURN_IF_ERROR(transport_->subscribe("ota/v1/cloud/+/up/#", 1));
  subscribed_ = true;
  event("connected to %s as %s", cfg_.broker.c_str(), cfg_.client_id.c_str());
  return Status::ok();
}

int CloudSim::run(const std::atomic<bool>& stop) {
  auto offer = load_offer(cfg_);
  if (!offer) return fail(offer.status().to_string());
  if (Status st = reports_.open(); !st.is_ok()) return fail(st.to_string());
  if (Status st = connect(); !st.is_ok()) return fail(st.to_string());
  auto pub = [this](const std::string& topic, const std::string& payload, bool retain) {
    return publish(topic, payload, retain);
  };
  packages_.emplace(cfg_, [pub](const std::string& topic, const std::string& payload) {
    if (Status st = pub(topic, payload, false); !st.is_ok())
      event("answer on %s failed: %s", topic.c_str(), st.to_string().c_str());
  });
  const bool signed_offer = offer->has_signed_campaign();
  offer_.emplace(cfg_, *offer, pub);
  if (offer_->has_offer()) {
    Status st = offer_->start();
    if (st.is_ok()) st = transport_->flush(milliseconds(10000));
    if (!st.is_ok()) return fail("publish campaign: " + st.to_string());
    if (signed_offer) {
      event("signed campaign %s published to vehicle %s (%d payloads, %d root updates)",
            offer->campaign_id().c_str(), cfg_.vehicle.c_str(), offer->signed_campaign().payloads_size(),
            offer->signed_campaign().root_updates_size());
    } else {
      event("campaign %s published to vehicle %s (%d targets)", offer->campaign_id().c_str(),
            cfg_.vehicle.c_str(), offer->campaign().targets_size());
    }
  }
  event("serving packages from %s", cfg_.packages.c_str());

  auto next_resend = OfferKeeper::Clock::time_point::max();
  while (!stop && !done_) {
    std::deque<TransportMessage> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const auto until = std::min(next_resend, OfferKeeper::Clock::now() + kIdleWait);
      cv_.wait_until(lock, until, [this] { return !queue_.empty(); });
      batch.swap(queue_);
    }
    for (const auto& m : batch) dispatch(m);
    next_resend = offer_->tick(OfferKeeper::Clock::now());
  }
  (void)transport_->flush(milliseconds(5000));
  transport_->disconnect(milliseconds(2000));
  if (dropped_ > 0) event("%zu messages dropped (queue full)", dropped_);
  event("exit");
  return 0;
}

// Transport thread: queue only.
void CloudSim::enqueue(const TransportMessage& m) {
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

void CloudSim::dispatch(const TransportMessage& m) {
  // ota/v1/cloud/{vehicle}/up/{what}
  const std::string pre = "ota/v1/cloud/";
  if (m.topic.compare(0, pre.size(), pre) != 0) return;
  const std::string rest = m.topic.substr(pre.size());
  const auto slash = rest.find('/');
  if (slash == std::string::npos) return;
  const std::string vehicle = rest.substr(0, slash);
  const std::string what = rest.substr(slash + 1);
  if (what == "up/download") {
    packages_->serve(vehicle, m.payload);
  } else if (what == "up/report") {
    on_report(vehicle, m.payload);
  } else if (what == "up/offer-request") {
    offer_->on_request(vehicle);
  } else if (what == "up/offer-ack") {
    offer_->on_ack(vehicle, m.payload);
  } else if (what == "up/inventory") {
    on_inventory(vehicle, m.payload);
  } else if (what == "up/status") {
    on_status(vehicle, m.payload);
  }
}

void CloudSim::on_inventory(const std::string& vehicle, const std::string& payload) {
  if (payload.empty()) return;
  v1::VehicleInventory inv;
  Status st = codec::decode(payload, &inv, kMaxInventory, "VehicleInventory");
  if (!st.is_ok()) return event("inventory from %s dropped: %s", vehicle.c_str(), st.to_string().c_str());
  std::string ecus;
  for (const auto& e : inv.ecus()) {
    std::string version;
    for (const auto& b : e.banks())
      if (b.bank() == e.active_bank()) version = b.version();
    ecus += " " + e.ecu_id() + "=" + version;
  }
  event("inventory from %s: %d ECUs%s", vehicle.c_str(), inv.ecus_size(), ecus.c_str());
}

void CloudSim::on_status(const std::string& vehicle, const std::string& payload) {
  if (payload.empty()) return;
  v1::CampaignStatus s;
  if (!codec::decode(payload, &s, codec::kMaxControlMessage, "CampaignStatus").is_ok()) return;
  std::string& last = last_state_[vehicle];
  if (s.state() != last) {
    last = s.state();
    event("status from %s: campaign %s %s", vehicle.c_str(), s.campaign_id().c_str(), s.state().c_str());
  }
}

// Stored first, then acknowledged: an ack is a promise that the report is kept.
void CloudSim::on_report(const std::string& vehicle, const std::string& payload) {
  v1::VehicleReport report;
  Status st = codec::decode(payload, &report, kMaxReport, "VehicleReport");
  if (!st.is_ok()) return event("report from %s dropped: %s", vehicle.c_str(), st.to_string().c_str());
  std::string path;
  auto stored = reports_.store(vehicle, report, &path);
  if (!stored)
    return event("report from %s not saved: %s", vehicle.c_str(), stored.status().to_string().c_str());
  if (*stored) {
    event("report from %s: campaign %s %s (%d ECUs) -> %s", vehicle.c_str(), report.campaign_id().c_str(),
          v1::CampaignResult_Name(report.result()).c_str(), report.ecus_size(), path.c_str());
  } else {
    event("duplicate report from %s: campaign %s %s, acknowledged, kept %s", vehicle.c_str(),
          report.campaign_id().c_str(), v1::CampaignResult_Name(report.result()).c_str(), path.c_str());
  }
  v1::ReportAck ack;
  codec::set_protocol(ack.mutable_protocol());
  ack.set_campaign_id(report.campaign_id());
  if (Status p = publish("ota/v1/cloud/" + vehicle + "/down/report-ack", ack.SerializeAsString(), false);
      !p.is_ok())
    event("report ack to %s not sent: %s", vehicle.c_str(), p.to_string().c_str());
  offer_->on_report(vehicle, report);
  if (cfg_.exit_after_report) done_ = true;
}

}  // namespace ota::cloudsim
