// CloudLink: see cloud_link.hpp. Threading: handle() runs on the transport's thread and only
// queues (never waits for a lock held across a publish); download() and wait_campaign() run on
// the caller's thread and wait on cv_.
#include "cloud_link.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/sha256.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::client {
namespace {

constexpr const char* kLog = "cloud";
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Beyond this many queued chunks the platform is sending what nobody asked for: drop them.
constexpr size_t kQueueSlack = 16;

Status check_readable(const std::string& path, const char* what) {
  if (path.empty()) return make_error(Code::kInvalidArgument, std::string(what) + " is not configured");
  if (::access(path.c_str(), R_OK) != 0) {
    return errno_status(errno, std::string(what) + " '" + path + "'").with_context("cloud link");
  }
  return Status::ok();
}

std::string random_hex(size_t bytes) {
  std::random_device rd;
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xff;
    out += kHex[v >> 4];
    out += kHex[v & 15];
  }
  return out;
}

// Plain TCP connect to the host:port of an "ssl://host:port" uri, so that "unreachable" and
// "TLS handshake refused" get different messages (Paho reports both as "TCP/TLS connect failure").
Status tcp_probe(const std::string& uri, milliseconds timeout) {
  std::string hostport = uri.substr(6);
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return make_error(Code::kInvalidArgument, "uri '" + uri + "' has no port");
  std::string host = hostport.substr(0, colon);
  const std::string port = hostport.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return make_error(Code::kUnavailable, "cannot resolve '" + host + "': " + gai_strerror(rc));
  }
  std::string why = "no address";
  bool ok = false;
  for (addrinfo* a = res; a != nullptr && !ok; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
      if (rc == 1) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        rc = -1;
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      ok = true;
    } else {
      why = std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (!ok) return make_error(Code::kUnavailable, "cloud broker " + uri + " is unreachable: " + why);
  return Status::ok();
}

}  // namespace

bool valid_cloud_name(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len || s[0] == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string claimed_campaign_id(const v1::SignedCampaign& signed_campaign) {
  // The bounds of the trust layer's director metadata: nothing larger is parsed.
  constexpr size_t kMaxDirector = 256 * 1024;
  if (signed_campaign.signed_director().size() > kMaxDirector) return {};
  v1::SignedMetadata envelope;
  v1::DirectorMetadata director;
  if (!envelope.ParseFromString(signed_campaign.signed_director()) ||
      !director.ParseFromString(envelope.body()))
    return {};
  return director.campaign_id().size() <= 256 ? director.campaign_id() : std::string();
}

std::string offer_campaign_id(const v1::CampaignOffer& offer) {
  if (!offer.campaign_id().empty()) return offer.campaign_id();
  if (offer.has_campaign()) return offer.campaign().campaign_id();
  return claimed_campaign_id(offer.signed_campaign());
}

CloudLink::CloudLink(CloudLinkOptions options) : options_(std::move(options)) {}

CloudLink::~CloudLink() {
  // The transport goes first: its callbacks use the members declared after it.
  disconnect();
  transport_.reset();
}

std::string CloudLink::topic(const std::string& suffix) const { return prefix_ + suffix; }

Result<std::unique_ptr<CloudLink>> CloudLink::connect(CloudLinkOptions options, CampaignHandler on_campaign) {
  if (options.uri.compare(0, 6, "ssl://") != 0) {
    return make_error(Code::kInvalidArgument,
                      "cloud link: uri '" + options.uri + "' must be ssl://host:port (TLS is mandatory)");
  }
  if (!valid_cloud_name(options.vehicle, 64)) {
    return make_error(Code::kInvalidArgument, "cloud link: vehicle id '" + options.vehicle + "' is invalid");
  }
  OTA_RETURN_IF_ERROR(check_readable(options.ca_file, "CA file"));
  OTA_RETURN_IF_ERROR(check_readable(options.cert_file, "client certificate file"));
  OTA_RETURN_IF_ERROR(check_readable(options.key_file, "client key file"));
  options.chunk_size = std::max<uint32_t>(1024, std::min(options.chunk_size, codec::kMaxChunkSize));
  options.window = std::max<uint32_t>(1, std::min<uint32_t>(options.window, 64));
  options.report_resend_min = std::max(options.report_resend_min, milliseconds(100));
  options.report_resend_max = std::max(options.report_resend_max, options.report_resend_min);
  if (options.client_id.empty()) options.client_id = options.vehicle + "-cloud";

  std::unique_ptr<CloudLink> link(new CloudLink(std::move(options)));
  CloudLink* self = link.get();
  const CloudLinkOptions& o = self->options_;
  self->on_campaign_ = std::move(on_campaign);
  self->prefix_ = "ota/v1/cloud/" + o.vehicle + "/";
  self->session_ = random_hex(8);
  auto outbox = ReportOutbox::open(o.report_dir);
  if (!outbox) return outbox.status().with_context("cloud link");
  self->outbox_ = std::move(*outbox);

  TransportOptions t;
  t.uri = o.uri;
  t.client_id = o.client_id;
  t.mqtt_v5 = true;
  t.tls = TlsOptions{o.ca_file, o.cert_file, o.key_file};
  self->transport_ = make_transport(t);
  self->transport_->on_message([self](const TransportMessage& m) { self->handle(m); });
  self->transport_->on_connection([self](bool up) { self->on_connection(up); });
  OTA_RETURN_IF_ERROR(tcp_probe(o.uri, o.connect_timeout).with_context("cloud link"));
  Status st = self->transport_->connect(o.connect_timeout);
  if (st.code() == Code::kUnavailable) {
    // The port answered TCP just before, so this is (almost always) the TLS handshake.
    return Status(st.code(), "cloud link: TLS handshake with " + o.uri +
                                 " failed: either the broker's certificate does not chain to CA '" +
                                 o.ca_file +
                                 "' (or does not name the host), or the broker refused client certificate '" +
                                 o.cert_file + "' (" + st.message() + ")");
  }
  if (!st.is_ok()) return st.with_context("cloud link");
  st = self->transport_->subscribe(self->topic("down/#"), 1);
  if (!st.is_ok()) {
    return st.with_context("cloud link: vehicle '" + o.vehicle + "' (must be the CN of '" + o.cert_file +
                           "')");
  }
  OTA_LOGI(kLog, "connected to %s as vehicle %s", o.uri.c_str(), o.vehicle.c_str());
  self->subscribed_ = true;
  self->request_offer();
  self->resender_ = std::thread([self] { self->resend_loop(); });
  self->publish_pending_reports();
  return link;
}

void CloudLink::disconnect() {
  {
    std::lock_guard<std::mutex> lock(report_mu_);
    stopping_ = true;
  }
  report_cv_.notify_all();
  if (resender_.joinable()) resender_.join();
  if (transport_) transport_->disconnect(milliseconds(2000));
}

// Transport thread. After a reconnect the subscription is restored before this runs, so the
// answer to the offer request cannot be missed.
void CloudLink::on_connection(bool connected) {
  if (!connected || !subscribed_) return;
  OTA_LOGI(kLog, "reconnected to %s: asking for the pending offer, resending queued reports",
           options_.uri.c_str());
  request_offer();
  {
    std::lock_guard<std::mutex> lock(report_mu_);
    resend_now_ = true;
  }
  report_cv_.notify_all();
}

void CloudLink::request_offer() {
  v1::OfferRequest req;
  codec::set_protocol(req.mutable_protocol());
  req.set_timestamp_ms(codec::now_ms());
  if (Status st = transport_->publish(topic("up/offer-request"), req.SerializeAsString(), 1, false);
      !st.is_ok())
    OTA_LOGW(kLog, "offer request not sent: %s", st.to_string().c_str());
}

void CloudLink::acknowledge_offer(const std::string& campaign_id) {
  v1::OfferAck ack;
  codec::set_protocol(ack.mutable_protocol());
  ack.set_campaign_id(campaign_id);
  if (Status st = transport_->publish(topic("up/offer-ack"), ack.SerializeAsString(), 1, false); !st.is_ok())
    OTA_LOGW(kLog, "offer ack for campaign %s not sent: %s", campaign_id.c_str(), st.to_string().c_str());
}

void CloudLink::handle(const TransportMessage& msg) {
  const std::string down = prefix_ + "down/";
  if (msg.topic.compare(0, down.size(), down) != 0) return;
  const std::string rest = msg.topic.substr(down.size());
  if (rest == "campaign") {
    handle_offer(msg.payload);
  } else if (rest == "report-ack") {
    handle_report_ack(msg.payload);
  } else if (rest.compare(0, 9, "download/") == 0) {
    handle_chunk(rest.substr(9), msg.payload);
  }
}

void CloudLink::handle_offer(const std::string& payload) {
  if (payload.empty()) return;  // offer withdrawn
  v1::CampaignOffer offer;
  Status st = codec::decode(payload, &offer, options_.max_offer_size, "CampaignOffer");
  if (st.is_ok()) st = codec::check_protocol(offer.protocol(), "CampaignOffer");
  if (st.is_ok() && !offer.has_campaign() && !offer.has_signed_campaign()) {
    st = make_error(Code::kCorrupt, "CampaignOffer holds neither campaign nor signed_campaign");
  }
  if (!st.is_ok()) {
    OTA_LOGW(kLog, "campaign offer dropped: %s", st.to_string().c_str());
    return;
  }
  // Every copy is acknowledged: the platform may have missed an earlier ack.
  const std::string id = offer_campaign_id(offer);
  acknowledge_offer(id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (payload == last_offer_bytes_) return;  // the same offer again (reconnect, platform resend)
    last_offer_bytes_ = payload;
    pending_offer_ = offer;
  }
  cv_.notify_all();
  if (offer.has_signed_campaign()) {
    OTA_LOGI(kLog, "signed campaign offer %s (%d payloads, %d root updates)", id.c_str(),
             offer.signed_campaign().payloads_size(), offer.signed_campaign().root_updates_size());
  } else {
    OTA_LOGI(kLog, "campaign offer %s (%d targets)", id.c_str(), offer.campaign().targets_size());
  }
  if (on_campaign_) on_campaign_(offer);
}

void CloudLink::handle_chunk(const std::string& request_id, const std::string& payload) {
  if (payload.size() > codec::kMaxDataMessage) {
    OTA_LOGW(kLog, "download chunk of %zu bytes dropped (limit %zu)", payload.size(), codec::kMaxDataMessage);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!download_active_ || chunks_.size() >= options_.window + kQueueSlack) {
      OTA_LOGD(kLog, "unexpected download chunk for request %s dropped", request_id.c_str());
      return;
    }
    chunks_.emplace_back(request_id, payload);
  }
  cv_.notify_all();
}

Result<v1::CampaignOffer> CloudLink::wait_offer(milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [this] { return pending_offer_.has_value(); })) {
    return make_error(Code::kTimeout, "no campaign offer on " + topic("down/campaign") + " within " +
                                          std::to_string(timeout.count()) + " ms");
  }
  v1::CampaignOffer o = std::move(*pending_offer_);
  pending_offer_.reset();
  return o;
}

Result<v1::Campaign> CloudLink::wait_campaign(milliseconds timeout) {
  auto offer = wait_offer(timeout);
  if (!offer) return offer.status();
  if (!offer->has_campaign()) {
    return make_error(Code::kUnsupported,
                      "the campaign offer is signed: take it with wait_offer() and verify it");
  }
  return std::move(*offer->mutable_campaign());
}

Status CloudLink::publish_inventory(const v1::VehicleInventory& inventory) {
  v1::VehicleInventory m = inventory;
  codec::set_protocol(m.mutable_protocol());
  if (m.timestamp_ms() == 0) m.set_timestamp_ms(codec::now_ms());
  return transport_->publish(topic("up/inventory"), m.SerializeAsString(), 1, true);
}

Status CloudLink::publish_status(const v1::CampaignStatus& status) {
  {
    // Progress updates can come per chunk; the platform needs state changes and about one
    // progress update a second, not every one of them.
    std::lock_guard<std::mutex> lock(status_mu_);
    const auto now = Clock::now();
    const std::string key = status.campaign_id() + "/" + status.state();
    if (key == last_status_key_ && now - last_status_time_ < std::chrono::seconds(1)) return Status::ok();
    last_status_key_ = key;
    last_status_time_ = now;
  }
  v1::CampaignStatus m = status;
  codec::set_protocol(m.mutable_protocol());
  return transport_->publish(topic("up/status"), m.SerializeAsString(), 1, true);
}

}  // namespace ota::client
