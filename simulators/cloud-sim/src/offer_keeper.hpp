// The life of the campaign offer ota-cloud-sim makes to its vehicle (--vehicle): published
// retained on down/campaign; published again, with a backoff from --offer-resend-min-ms doubling
// to --offer-resend-max-ms (each resend logged), until an OfferAck names its campaign id; published
// again at once for every OfferRequest (a vehicle that reconnected, perhaps to a broker that lost
// the retained message), which also restarts the resends until the next OfferAck; withdrawn (an
// empty retained message) once the vehicle's final report for it arrived. Loop thread only.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "ota/core/status.hpp"
#include "ota/v1/cloud.pb.h"
#include "sim_common.hpp"

namespace ota::cloudsim {

class OfferKeeper {
 public:
  using Clock = std::chrono::steady_clock;
  // publish(topic, payload, retain): QoS 1.
  using Publish = std::function<Status(const std::string& topic, const std::string& payload, bool retain)>;
  OfferKeeper(const Config& cfg, v1::CampaignOffer offer, Publish publish);

  bool has_offer() const { return !bytes_.empty(); }
  // Publishes the offer for the first time (logged). Errors: the publish's.
  Status start();
  void on_request(const std::string& vehicle);
  void on_ack(const std::string& vehicle, const std::string& payload);
  // A report arrived: a final one (not CAMPAIGN_POSTPONED) for the offered campaign withdraws it.
  void on_report(const std::string& vehicle, const v1::VehicleReport& report);
  // Publishes the offer again when a resend is due. Returns when the next one is due (max() when
  // none is).
  Clock::time_point tick(Clock::time_point now);

 private:
  void publish(const char* why);

  const Config& cfg_;
  const std::string topic_;
  const std::string id_;     // CampaignOffer.campaign_id (may be empty for a signed campaign)
  const std::string bytes_;  // the serialized offer, the same bytes every time
  Publish publish_;
  bool pending_ = false;  // offered and not withdrawn
  bool acked_ = false;
  std::chrono::milliseconds backoff_;
  Clock::time_point next_ = Clock::time_point::max();
};

}  // namespace ota::cloudsim
