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

namespace ota::client {
namespace {

constexpr const char* kLog = "cloud";
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Beyond this many queued chunks the platform is sending what nobody asked for: drop them.
constexpr size_t kQueueSlack = 16;
// fdatasync the .part file this often, so that a power cut loses at most this much.
constexpr uint64_t kSyncEvery = 16u << 20;
// Re-requests of a range whose CRC did not match before the download fails.
constexpr int kMaxCrcRetries = 3;

bool valid_segment(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len || s[0] == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

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

uint64_t file_size_or(const std::string& path, uint64_t fallback) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? fallback : static_cast<uint64_t>(n);
}

}  // namespace

Result<std::string> cloud_package_name(const std::string& uri) {
  const std::string scheme = kCloudScheme;
  if (uri.compare(0, scheme.size(), scheme) != 0) {
    return make_error(Code::kInvalidArgument, "uri '" + uri + "' is not a " + scheme + " uri");
  }
  std::string name = uri.substr(scheme.size());
  if (!valid_segment(name, 128)) {
    return make_error(
        Code::kInvalidArgument,
        "uri '" + uri + "': package name must be 1-128 of [A-Za-z0-9._-], not starting with '.'");
  }
  return name;
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
  if (!valid_segment(options.vehicle, 64)) {
    return make_error(Code::kInvalidArgument, "cloud link: vehicle id '" + options.vehicle + "' is invalid");
  }
  OTA_RETURN_IF_ERROR(check_readable(options.ca_file, "CA file"));
  OTA_RETURN_IF_ERROR(check_readable(options.cert_file, "client certificate file"));
  OTA_RETURN_IF_ERROR(check_readable(options.key_file, "client key file"));
  options.chunk_size = std::max<uint32_t>(1024, std::min(options.chunk_size, codec::kMaxChunkSize));
  options.window = std::max<uint32_t>(1, std::min<uint32_t>(options.window, 64));
  if (options.client_id.empty()) options.client_id = options.vehicle + "-cloud";

  std::unique_ptr<CloudLink> link(new CloudLink(std::move(options)));
  CloudLink* self = link.get();
  const CloudLinkOptions& o = self->options_;
  self->on_campaign_ = std::move(on_campaign);
  self->prefix_ = "ota/v1/cloud/" + o.vehicle + "/";
  self->session_ = random_hex(8);

  TransportOptions t;
  t.uri = o.uri;
  t.client_id = o.client_id;
  t.mqtt_v5 = true;
  t.tls = TlsOptions{o.ca_file, o.cert_file, o.key_file};
  self->transport_ = make_transport(t);
  self->transport_->on_message([self](const TransportMessage& m) { self->handle(m); });
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
  return link;
}

void CloudLink::disconnect() {
  if (transport_) transport_->disconnect(milliseconds(2000));
}

void CloudLink::handle(const TransportMessage& msg) {
  const std::string down = prefix_ + "down/";
  if (msg.topic.compare(0, down.size(), down) != 0) return;
  const std::string rest = msg.topic.substr(down.size());
  if (rest == "campaign") {
    if (msg.payload.empty()) return;  // offer withdrawn
    v1::CampaignOffer offer;
    Status st = codec::decode(msg.payload, &offer, options_.max_offer_size, "CampaignOffer");
    if (st.is_ok()) st = codec::check_protocol(offer.protocol(), "CampaignOffer");
    if (st.is_ok() && !offer.has_campaign() && !offer.has_signed_campaign()) {
      st = make_error(Code::kCorrupt, "CampaignOffer holds neither campaign nor signed_campaign");
    }
    if (!st.is_ok()) {
      OTA_LOGW(kLog, "campaign offer dropped: %s", st.to_string().c_str());
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (msg.payload == last_offer_bytes_) return;  // the same offer again (reconnect)
      last_offer_bytes_ = msg.payload;
      pending_offer_ = offer;
    }
    cv_.notify_all();
    if (offer.has_signed_campaign()) {
      OTA_LOGI(kLog, "signed campaign offer (%d payloads, %d root updates)",
               offer.signed_campaign().payloads_size(), offer.signed_campaign().root_updates_size());
    } else {
      OTA_LOGI(kLog, "campaign offer %s (%d targets)", offer.campaign().campaign_id().c_str(),
               offer.campaign().targets_size());
    }
    if (on_campaign_) on_campaign_(offer);
    return;
  }
  if (rest.compare(0, 9, "download/") == 0) {
    if (msg.payload.size() > codec::kMaxDataMessage) {
      OTA_LOGW(kLog, "download chunk of %zu bytes dropped (limit %zu)", msg.payload.size(),
               codec::kMaxDataMessage);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!download_active_ || chunks_.size() >= options_.window + kQueueSlack) {
        OTA_LOGD(kLog, "unexpected download chunk on %s dropped", msg.topic.c_str());
        return;
      }
      chunks_.emplace_back(rest.substr(9), msg.payload);
    }
    cv_.notify_all();
  }
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

Status CloudLink::publish_report(const v1::VehicleReport& report, milliseconds timeout) {
  v1::VehicleReport m = report;
  codec::set_protocol(m.mutable_protocol());
  OTA_RETURN_IF_ERROR(transport_->publish(topic("up/report"), m.SerializeAsString(), 1, false));
  return transport_->flush(timeout).with_context("report of campaign " + report.campaign_id());
}

Status CloudLink::download(const v1::PayloadRef& ref, const std::string& dest_path,
                           const DownloadProgress& progress, DownloadStats* stats) {
  std::lock_guard<std::mutex> serial(download_mu_);
  auto name = cloud_package_name(ref.uri());
  if (!name) return name.status();
  const std::string& package = name.value();
  Digest want;
  if (!digest_from_bytes(ref.sha256(), &want)) {
    return make_error(Code::kInvalidArgument,
                      "package " + package + ": the campaign gives no 32-byte SHA-256");
  }
  DownloadStats local;
  DownloadStats& st = stats ? *stats : local;
  st = DownloadStats{};
  st.total = ref.size();
  const auto started = Clock::now();

  // Already complete from an earlier run?
  std::error_code ec;
  if (std::filesystem::exists(dest_path, ec)) {
    if (file_size_or(dest_path, UINT64_MAX) == ref.size()) {
      auto have = sha256_file(dest_path);
      if (have && have.value() == want) {
        st.resumed_from = ref.size();
        if (progress) progress(ref.size(), ref.size());
        return Status::ok();
      }
    }
    std::filesystem::remove(dest_path, ec);
  }

  const std::string part = dest_path + ".part";
  uint64_t have = file_size_or(part, 0);
  if (have > ref.size()) {
    OTA_LOGW(kLog,
             "package %s: %s holds %" PRIu64 " bytes, more than the package's %" PRIu64 "; starting over",
             package.c_str(), part.c_str(), have, ref.size());
    have = 0;
  }
  st.resumed_from = have;
  if (have > 0)
    OTA_LOGI(kLog, "package %s: resuming at %" PRIu64 " of %" PRIu64, package.c_str(), have, ref.size());

  Status s = download_attempt(package, ref, part, &st, progress);
  st.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (!s.is_ok()) return s;

  auto got = sha256_file(part);
  if (!got) return got.status().with_context("package " + package);
  if (got.value() != want) {
    std::filesystem::remove(part, ec);
    return make_error(Code::kHashMismatch, "package " + package + ": SHA-256 of the downloaded bytes is " +
                                               to_hex(got.value()) + ", the campaign says " + to_hex(want) +
                                               " (" + part + " deleted)");
  }
  if (::rename(part.c_str(), dest_path.c_str()) != 0) {
    return errno_status(errno, "rename " + part + " -> " + dest_path);
  }
  std::string dir = std::filesystem::path(dest_path).parent_path().string();
  OTA_RETURN_IF_ERROR(fsync_dir(dir.empty() ? "." : dir));
  OTA_LOGI(kLog, "package %s: %" PRIu64 " bytes fetched (resumed at %" PRIu64 ") in %.2f s", package.c_str(),
           st.fetched, st.resumed_from, st.seconds);
  return Status::ok();
}

Status CloudLink::download_attempt(const std::string& package, const v1::PayloadRef& ref,
                                   const std::string& part, DownloadStats* st,
                                   const DownloadProgress& progress) {
  const uint64_t total = ref.size();
  auto sink_or = FileSink::open(part, st->resumed_from);
  if (!sink_or) return sink_or.status().with_context("package " + package);
  std::unique_ptr<FileSink> sink = std::move(sink_or.value());
  uint64_t next_write = st->resumed_from;
  uint64_t next_request = next_write;
  uint64_t synced = next_write;
  if (progress) progress(next_write, total);

  const uint32_t chunk = options_.chunk_size;
  std::string download_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    download_id = session_ + "-" + std::to_string(++next_download_);
    chunks_.clear();
    download_active_ = true;
  }
  // Stops accepting chunks whatever way this attempt ends.
  struct Deactivate {
    CloudLink* self;
    ~Deactivate() {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->download_active_ = false;
      self->chunks_.clear();
    }
  } deactivate{this};

  std::map<std::string, uint64_t> outstanding;  // request_id -> offset
  std::map<uint64_t, std::string> ready;        // offset -> data, waiting for the bytes before it
  std::map<uint64_t, int> crc_retries;
  uint64_t seq = 0;

  auto request = [&](uint64_t offset) -> Status {
    v1::DownloadRequest req;
    codec::set_protocol(req.mutable_protocol());
    req.set_request_id(download_id + "-" + std::to_string(++seq));
    req.set_package(package);
    req.set_offset(offset);
    req.set_length(static_cast<uint32_t>(std::min<uint64_t>(chunk, total - offset)));
    req.set_download_id(download_id);
    outstanding[req.request_id()] = offset;
    return transport_->publish(topic("up/download"), req.SerializeAsString(), 1, false);
  };
  auto stalled = [&](const std::string& why) {
    (void)sink->sync();
    return make_error(Code::kTimeout, "package " + package + ": " + why + " at offset " +
                                          std::to_string(next_write) + " (" + std::to_string(next_write) +
                                          " of " + std::to_string(total) + " bytes kept in " + part +
                                          "; download again to resume)");
  };

  auto last_progress = Clock::now();
  std::deque<std::pair<std::string, std::string>> batch;
  while (next_write < total) {
    while (outstanding.size() + ready.size() < options_.window && next_request < total) {
      OTA_RETURN_IF_ERROR(request(next_request).with_context("package " + package));
      next_request += std::min<uint64_t>(chunk, total - next_request);
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_until(lock, last_progress + options_.stall_timeout,
                          [this] { return !chunks_.empty(); })) {
        lock.unlock();
        return stalled("no data from the platform for " + std::to_string(options_.stall_timeout.count()) +
                       " ms");
      }
      batch.swap(chunks_);
    }
    for (auto& [request_id, payload] : batch) {
      auto it = outstanding.find(request_id);
      if (it == outstanding.end()) continue;  // a late answer to an earlier attempt or a resent range
      const uint64_t offset = it->second;
      const std::string where = "package " + package + " chunk at offset " + std::to_string(offset);
      v1::DownloadChunk c;
      OTA_RETURN_IF_ERROR(
          codec::decode(payload, &c, codec::kMaxDataMessage, "DownloadChunk").with_context(where));
      OTA_RETURN_IF_ERROR(codec::check_protocol(c.protocol(), "DownloadChunk"));
      if (c.has_error() && c.error().code() != v1::ERROR_CODE_OK) {
        return codec::from_wire(c.error()).with_context(where + ": refused by the platform");
      }
      const uint64_t expect_len = std::min<uint64_t>(chunk, total - offset);
      if (c.package() != package || c.offset() != offset) {
        return make_error(Code::kCorrupt, where + ": answer names package '" + c.package() + "' offset " +
                                              std::to_string(c.offset()));
      }
      if (c.total_size() != total) {
        return make_error(Code::kCorrupt, where + ": the platform says the package is " +
                                              std::to_string(c.total_size()) + " bytes, the campaign says " +
                                              std::to_string(total));
      }
      if (c.data().size() != expect_len || c.last() != (offset + expect_len == total)) {
        return make_error(Code::kCorrupt, where + ": " + std::to_string(c.data().size()) +
                                              " bytes (last=" + (c.last() ? "true" : "false") +
                                              "), expected " + std::to_string(expect_len));
      }
      outstanding.erase(it);
      if (crc32c(c.data().data(), c.data().size()) != c.crc32c()) {
        if (++crc_retries[offset] > kMaxCrcRetries) {
          return make_error(Code::kHashMismatch,
                            where + ": CRC-32C mismatch " + std::to_string(kMaxCrcRetries + 1) + " times");
        }
        OTA_LOGW(kLog, "%s: CRC-32C mismatch, asking again", where.c_str());
        OTA_RETURN_IF_ERROR(request(offset));
        continue;
      }
      ready.emplace(offset, std::move(*c.mutable_data()));
      last_progress = Clock::now();
    }
    batch.clear();
    while (!ready.empty() && ready.begin()->first == next_write) {
      const std::string& data = ready.begin()->second;
      OTA_RETURN_IF_ERROR(sink->write(reinterpret_cast<const uint8_t*>(data.data()), data.size())
                              .with_context("package " + package));
      next_write += data.size();
      st->fetched += data.size();
      ready.erase(ready.begin());
      if (next_write - synced >= kSyncEvery) {
        OTA_RETURN_IF_ERROR(sink->sync());
        synced = next_write;
      }
      if (progress) progress(next_write, total);
    }
  }
  return sink->sync().with_context("package " + package);
}

Result<v1::Campaign> localize(const v1::Campaign& campaign, const std::string& cache_dir, CloudLink& link,
                              int attempts, const DownloadProgress& progress) {
  v1::Campaign out = campaign;
  std::map<std::string, std::string> sha_of;  // package -> sha256 bytes, to catch conflicting refs
  std::set<std::string> done;
  bool made_dir = false;
  auto fetch = [&](v1::PayloadRef* ref, const std::string& what) -> Status {
    if (ref->uri().compare(0, std::string(kCloudScheme).size(), kCloudScheme) != 0) return Status::ok();
    auto name = cloud_package_name(ref->uri());
    if (!name) return name.status().with_context(what);
    auto [it, fresh] = sha_of.emplace(name.value(), ref->sha256());
    if (!fresh && it->second != ref->sha256()) {
      return make_error(Code::kInvalidArgument,
                        what + ": package " + name.value() + " is named with two different SHA-256 digests");
    }
    const std::string dest = cache_dir + "/" + name.value();
    if (!done.count(name.value())) {
      if (!made_dir) {
        OTA_RETURN_IF_ERROR(make_dirs(cache_dir));
        made_dir = true;
      }
      Status st;
      for (int i = 0; i < std::max(1, attempts); ++i) {
        st = link.download(*ref, dest, progress);
        if (st.code() != Code::kTimeout) break;
        OTA_LOGW(kLog, "%s: %s", what.c_str(), st.to_string().c_str());
      }
      OTA_RETURN_IF_ERROR(st.with_context(what));
      done.insert(name.value());
    }
    ref->set_uri(dest);
    return Status::ok();
  };
  for (auto& t : *out.mutable_targets()) {
    OTA_RETURN_IF_ERROR(fetch(t.mutable_full(), "target " + t.ecu_id() + " full payload"));
    if (t.has_delta() && !t.delta().uri().empty()) {
      OTA_RETURN_IF_ERROR(fetch(t.mutable_delta(), "target " + t.ecu_id() + " delta payload"));
    }
  }
  return out;
}

}  // namespace ota::client
