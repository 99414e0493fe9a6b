#include "offer_keeper.hpp"

#include <algorithm>

#include "ota/core/codec.hpp"

namespace ota::cloudsim {

OfferKeeper::OfferKeeper(const Config& cfg, v1::CampaignOffer offer, Publish publish)
    : cfg_(cfg),
      topic_("ota/v1/cloud/" + cfg.vehicle + "/down/campaign"),
      id_(offer.campaign_id()),
      bytes_(offer.has_campaign() || offer.has_signed_campaign() ? offer.SerializeAsString() : std::string()),
      publish_(std::move(publish)),
      backoff_(cfg.offer_resend_min) {}

Status OfferKeeper::start() {
  if (!has_offer()) return Status::ok();
  OTA_RETURN_IF_ERROR(publish_(topic_, bytes_, true));
  pending_ = true;
  backoff_ = cfg_.offer_resend_min;
  next_ = Clock::now() + backoff_;
  return Status::ok();
}

void OfferKeeper::publish(const char* why) {
  Status st = publish_(topic_, bytes_, true);
  if (!st.is_ok()) {
    event("campaign %s: offer to %s not published (%s): %s", id_.c_str(), cfg_.vehicle.c_str(), why,
          st.to_string().c_str());
  } else {
    event("campaign %s offered again to %s (%s)", id_.c_str(), cfg_.vehicle.c_str(), why);
  }
}

void OfferKeeper::on_request(const std::string& vehicle) {
  if (vehicle != cfg_.vehicle || !pending_) {
    event("offer request from %s: no offer pending", vehicle.c_str());
    return;
  }
  acked_ = false;
  backoff_ = cfg_.offer_resend_min;
  next_ = Clock::now() + backoff_;
  publish("the vehicle asked for it");
}

void OfferKeeper::on_ack(const std::string& vehicle, const std::string& payload) {
  v1::OfferAck ack;
  Status st = codec::decode(payload, &ack, codec::kMaxControlMessage, "OfferAck");
  if (!st.is_ok()) return event("offer ack from %s dropped: %s", vehicle.c_str(), st.to_string().c_str());
  if (vehicle != cfg_.vehicle || !pending_ || (!id_.empty() && ack.campaign_id() != id_)) {
    return event("offer ack from %s for campaign %s: not the pending offer", vehicle.c_str(),
                 ack.campaign_id().c_str());
  }
  if (!acked_) event("offer of campaign %s acknowledged by %s", ack.campaign_id().c_str(), vehicle.c_str());
  acked_ = true;
  next_ = Clock::time_point::max();
}

void OfferKeeper::on_report(const std::string& vehicle, const v1::VehicleReport& report) {
  if (!pending_ || vehicle != cfg_.vehicle || report.result() == v1::CAMPAIGN_POSTPONED) return;
  if (!id_.empty() && report.campaign_id() != id_) return;
  pending_ = false;
  next_ = Clock::time_point::max();
  // A final report withdraws the offer, so that the vehicle does not run it again after a restart.
  (void)publish_(topic_, std::string(), true);
  event("campaign %s withdrawn from %s", id_.c_str(), vehicle.c_str());
}

OfferKeeper::Clock::time_point OfferKeeper::tick(Clock::time_point now) {
  if (!pending_ || acked_) return Clock::time_point::max();
  if (now < next_) return next_;
  backoff_ = std::min(backoff_ * 2, cfg_.offer_resend_max);
  next_ = now + backoff_;
  publish(("not acknowledged; next in " + std::to_string(backoff_.count()) + " ms").c_str());
  return next_;
}

}  // namespace ota::cloudsim
