// CloudLink: the vehicle client's connection to the OTA platform (proto/ota/v1/cloud.proto).
//
// MQTT v5 over TLS to the cloud broker: the broker's certificate must chain to the configured CA
// file, and the link presents the vehicle's client certificate (its CN is the vehicle id of the
// topic tree). Campaign offers come in on down/campaign, and each valid one is acknowledged on
// up/offer-ack; after every (re)connect the link asks for its pending offer on up/offer-request (a
// broker restarted without the retained offer loses nothing). Inventory and status go out on up/.
// Reports go through a durable outbox (report_outbox.hpp) and are published on up/report until the
// platform acknowledges each by campaign id on down/report-ack. Packages named "cloud://<package>"
// are downloaded chunk by chunk over up/download and down/download/{request_id}, resuming from a
// "<dest>.part" file left by an interrupted download (cloud_download.cpp).
//
//   ota::client::CloudLinkOptions o;
//   o.uri = "ssl://127.0.0.1:8883"; o.ca_file = ...; o.cert_file = ...; o.key_file = ...;
//   o.vehicle = "ota-client"; o.report_dir = "/var/lib/ota/reports";
//   auto link = ota::client::CloudLink::connect(o);        // Result<std::unique_ptr<CloudLink>>
//   auto offer = (*link)->wait_campaign(std::chrono::minutes(1));  // or wait_offer() when signed
//   auto local = ota::client::localize(*offer, "/var/lib/ota/cache", **link);
//   ... run *local ...; (*link)->queue_report(report); (*link)->wait_reports_acknowledged(30s);
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"
#include "ota/v1/cloud.pb.h"
#include "ota/v1/ota.pb.h"
#include "report_outbox.hpp"

namespace ota::client {

inline constexpr const char* kCloudScheme = "cloud://";

struct CloudLinkOptions {
  std::string uri;                     // "ssl://host:port" of the cloud broker (TLS is mandatory)
  std::string ca_file;                 // PEM CA the broker's certificate must chain to
  std::string cert_file;               // the vehicle's client certificate (PEM); its CN must equal `vehicle`
  std::string key_file;                // its private key (PEM)
  std::string vehicle = "ota-client";  // topic segment: ota/v1/cloud/{vehicle}/...
  std::string client_id;               // MQTT client id; empty: "<vehicle>-cloud"
  std::chrono::milliseconds connect_timeout{10000};
  // Download tuning. chunk_size is capped at 512 KiB (the broker's 1 MiB message limit); memory
  // held by a download is about window * chunk_size.
  uint32_t chunk_size = 256 * 1024;
  uint32_t window = 16;  // measured: 256 KiB x 16 ~80 MB/s on loopback TLS, x 8 ~60 MB/s
  // A download attempt gives up (kTimeout, the .part file is kept) when no valid chunk arrives
  // for this long.
  std::chrono::milliseconds stall_timeout{10000};
  // Largest campaign offer accepted, bytes.
  size_t max_offer_size = 1 << 20;
  // The report outbox (ReportOutbox): STATE/reports for ota-client. Empty: in memory only.
  std::string report_dir;
  // Unacknowledged reports are published again after this long, doubling up to report_resend_max,
  // and at once after every reconnect.
  std::chrono::milliseconds report_resend_min{2000};
  std::chrono::milliseconds report_resend_max{60000};
};

struct DownloadStats {
  uint64_t total = 0;         // package size
  uint64_t resumed_from = 0;  // bytes already in the .part file when the attempt started
  uint64_t fetched = 0;       // payload bytes received over the network in this attempt
  double seconds = 0;         // wall time of the attempt
};

// Called from the downloading thread with (bytes present in the .part file, package size).
using DownloadProgress = std::function<void(uint64_t done, uint64_t total)>;

// Threading: every public method may be called from any thread. Messages are handled on the
// transport's thread (they only queue, or mark a report acknowledged); a resender thread of the
// link publishes unacknowledged reports; disconnect() (and the destructor) stops it.
class CloudLink {
 public:
  // Called on the transport's thread for every new campaign offer: must not block.
  using CampaignHandler = std::function<void(const v1::CampaignOffer&)>;

  // Checks the options (TLS files readable, uri ssl://), opens the report outbox, connects
  // (waits for the CONNACK), subscribes ota/v1/cloud/{vehicle}/down/#, asks for the pending offer
  // and publishes the reports the outbox holds unacknowledged. Errors name the cause:
  // kInvalidArgument (options, missing files), kUnavailable (unreachable, TLS handshake refused:
  // wrong CA or no accepted client certificate), kRejected (not authorised), the outbox's (kIoError).
  static Result<std::unique_ptr<CloudLink>> connect(CloudLinkOptions options,
                                                    CampaignHandler on_campaign = nullptr);

  ~CloudLink();
  CloudLink(const CloudLink&) = delete;
  CloudLink& operator=(const CloudLink&) = delete;

  const CloudLinkOptions& options() const { return options_; }
  std::string topic(const std::string& suffix) const;  // "ota/v1/cloud/{vehicle}/" + suffix

  // The next campaign offer not yet returned (the retained one arrives right after connect); it
  // holds signed_campaign (verify it with the trust layer) or, for development, campaign.
  // An offer byte-identical to the last one delivered (re-sent by the broker after a reconnect,
  // or by the platform until it saw the OfferAck) is acknowledged again but not delivered again.
  // kTimeout when none arrives in time.
  Result<v1::CampaignOffer> wait_offer(std::chrono::milliseconds timeout);
  // wait_offer() for an unsigned campaign; kUnsupported if the offer is signed (use wait_offer).
  Result<v1::Campaign> wait_campaign(std::chrono::milliseconds timeout);

  // up/inventory (retained), up/status (retained). publish_status sends every change of
  // campaign or state, and progress within one state at most once a second (safe to call from
  // RunnerOptions::on_status).
  Status publish_inventory(const v1::VehicleInventory& inventory);
  Status publish_status(const v1::CampaignStatus& status);

  // Stores the report in the outbox (durably, ReportOutbox::put) and publishes it on up/report
  // (QoS 1, not retained); from then on it is published again after every reconnect and on the
  // resend backoff until a ReportAck names its campaign id. Errors: the outbox's (the report was
  // then not stored; it is still published once). A failed publish is not an error: it is resent.
  Status queue_report(const v1::VehicleReport& report);
  // queue_report(), then waits until the broker acknowledged the publication (QoS 1) or `timeout`.
  Status publish_report(const v1::VehicleReport& report,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // Publishes the stored report of `campaign_id` again (a finished campaign offered again); false
  // when the outbox holds none.
  bool resend_stored_report(const std::string& campaign_id);
  // Waits until the platform acknowledged every queued report: OK, or kTimeout naming the
  // campaigns still waiting (they stay queued, and are resent at the next start).
  Status wait_reports_acknowledged(std::chrono::milliseconds timeout);
  // The report outbox (to look up the stored report of a campaign).
  const ReportOutbox& outbox() const { return *outbox_; }

  // Downloads the package of ref.uri ("cloud://<package>") into dest_path. Bytes go to
  // "<dest_path>.part" in order; if that file exists, the download continues from its size.
  // At the end the whole file's SHA-256 must equal ref.sha256 (and its size ref.size), then it
  // is renamed to dest_path. If dest_path already holds the right bytes, nothing is fetched.
  // Errors: kTimeout (stalled; .part kept, call again to resume), kHashMismatch (the .part is
  // deleted), kCorrupt (a malformed or inconsistent chunk), the platform's error (unknown
  // package...), kIoError/kNoSpace. One download at a time per link (others wait).
  Status download(const v1::PayloadRef& ref, const std::string& dest_path,
                  const DownloadProgress& progress = {}, DownloadStats* stats = nullptr);

  // Stops the report resender and disconnects (queued reports stay in the outbox).
  void disconnect();

 private:
  friend class DownloadAttempt;
  explicit CloudLink(CloudLinkOptions options);
  void handle(const TransportMessage& msg);
  void handle_offer(const std::string& payload);
  void handle_report_ack(const std::string& payload);
  void handle_chunk(const std::string& request_id, const std::string& payload);
  void on_connection(bool connected);
  void request_offer();
  void acknowledge_offer(const std::string& campaign_id);
  size_t publish_pending_reports();  // how many were pending
  void resend_loop();

  CloudLinkOptions options_;
  std::unique_ptr<Transport> transport_;
  CampaignHandler on_campaign_;
  std::string prefix_;  // "ota/v1/cloud/{vehicle}/"

  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<v1::CampaignOffer> pending_offer_;
  std::string last_offer_bytes_;
  // Chunks of the running download, raw, keyed by nothing: the downloader validates them.
  // Only accepted while a download runs (download_active_), capped at window + 16 entries.
  bool download_active_ = false;
  std::deque<std::pair<std::string, std::string>> chunks_;  // (request_id, payload)
  std::mutex status_mu_;
  std::string last_status_key_;  // campaign/state of the last status published
  std::chrono::steady_clock::time_point last_status_time_{};
  std::mutex download_mu_;  // serialises download()
  uint64_t next_download_ = 0;
  std::string session_;  // random per link: keeps request ids unique across restarts

  std::unique_ptr<ReportOutbox> outbox_;
  std::atomic<bool> subscribed_{false};  // down/# subscribed: an offer request can be answered
  // The resender: wakes on report_cv_ when a reconnect or a new report asks for a resend now.
  std::mutex report_mu_;
  std::condition_variable report_cv_;
  bool resend_now_ = false;       // publish the pending reports now (reconnect)
  bool restart_backoff_ = false;  // a report was just published: the backoff starts over
  bool stopping_ = false;
  std::thread resender_;
};

// The campaign id an offer names: CampaignOffer.campaign_id, else the plain campaign's id, else the
// id its signed director metadata claims (read WITHOUT checking a signature: only to acknowledge
// the offer, name a rejection and find a stored report). Empty when none can be read.
std::string offer_campaign_id(const v1::CampaignOffer& offer);
// The id a SignedCampaign's director metadata claims, unverified (empty when it does not parse).
std::string claimed_campaign_id(const v1::SignedCampaign& signed_campaign);

// Rewrites every cloud:// payload uri of the campaign to a local file in cache_dir, downloading
// what is not there yet (resuming .part files; up to `attempts` attempts per package on kTimeout).
// Only the payloads the client may send are fetched: `full` always, `delta` when present. Local
// file names are "<package>"; a package name must be [A-Za-z0-9._-] and not start with '.'.
Result<v1::Campaign> localize(const v1::Campaign& campaign, const std::string& cache_dir, CloudLink& link,
                              int attempts = 3, const DownloadProgress& progress = {});

// True when `s` is 1..max_len of [A-Za-z0-9._-], not starting with '.': a topic segment and a file name.
bool valid_cloud_name(const std::string& s, size_t max_len);

// The package name of a "cloud://<package>" uri; kInvalidArgument for other uris or bad names.
Result<std::string> cloud_package_name(const std::string& uri);

}  // namespace ota::client
