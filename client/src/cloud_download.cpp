// Package downloads over the cloud link (CloudLink::download, localize; see cloud_link.hpp).
// DownloadAttempt is one attempt: it keeps `window` requests in flight, checks every answer,
// writes the bytes in order to the .part file and gives up (kTimeout, .part kept) on a stall.
// It runs on the caller's thread; CloudLink::handle() only queues the raw chunks for it.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <set>

#include "cloud_link.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/sha256.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "cloud";
using Clock = std::chrono::steady_clock;

// fdatasync the .part file this often, so that a power cut loses at most this much.
constexpr uint64_t kSyncEvery = 16u << 20;
// Re-requests of a range whose CRC did not match before the download fails.
constexpr int kMaxCrcRetries = 3;

uint64_t file_size_or(const std::string& path, uint64_t fallback) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? fallback : static_cast<uint64_t>(n);
}

}  // namespace

class DownloadAttempt {
 public:
  DownloadAttempt(CloudLink& link, const std::string& package, const v1::PayloadRef& ref,
                  const std::string& part, DownloadStats* st, const DownloadProgress& progress)
      : link_(link), package_(package), part_(part), total_(ref.size()), st_(*st), progress_(progress) {}

  // Stops accepting chunks whatever way the attempt ends.
  ~DownloadAttempt() {
    std::lock_guard<std::mutex> lock(link_.mu_);
    link_.download_active_ = false;
    link_.chunks_.clear();
  }

  Status run() {
    auto sink = FileSink::open(part_, st_.resumed_from);
    if (!sink) return sink.status().with_context("package " + package_);
    sink_ = std::move(sink.value());
    next_write_ = next_request_ = synced_ = st_.resumed_from;
    if (progress_) progress_(next_write_, total_);
    {
      std::lock_guard<std::mutex> lock(link_.mu_);
      download_id_ = link_.session_ + "-" + std::to_string(++link_.next_download_);
      link_.chunks_.clear();
      link_.download_active_ = true;
    }
    auto last_progress = Clock::now();
    std::deque<std::pair<std::string, std::string>> batch;
    while (next_write_ < total_) {
      OTA_RETURN_IF_ERROR(fill_window());
      {
        std::unique_lock<std::mutex> lock(link_.mu_);
        if (!link_.cv_.wait_until(lock, last_progress + link_.options_.stall_timeout,
                                  [this] { return !link_.chunks_.empty(); })) {
          lock.unlock();
          return stalled("no data from the platform for " +
                         std::to_string(link_.options_.stall_timeout.count()) + " ms");
        }
        batch.swap(link_.chunks_);
      }
      for (auto& [request_id, payload] : batch) {
        bool fresh = false;
        OTA_RETURN_IF_ERROR(take(request_id, payload, &fresh));
        if (fresh) last_progress = Clock::now();
      }
      batch.clear();
      OTA_RETURN_IF_ERROR(write_ready());
    }
    return sink_->sync().with_context("package " + package_);
  }

 private:
  uint64_t length_at(uint64_t offset) const {
    return std::min<uint64_t>(link_.options_.chunk_size, total_ - offset);
  }

  Status fill_window() {
    while (outstanding_.size() + ready_.size() < link_.options_.window && next_request_ < total_) {
      OTA_RETURN_IF_ERROR(request(next_request_).with_context("package " + package_));
      next_request_ += length_at(next_request_);
    }
    return Status::ok();
  }

  Status request(uint64_t offset) {
    v1::DownloadRequest req;
    codec::set_protocol(req.mutable_protocol());
    req.set_request_id(download_id_ + "-" + std::to_string(++seq_));
    req.set_package(package_);
    req.set_offset(offset);
    req.set_length(static_cast<uint32_t>(length_at(offset)));
    req.set_download_id(download_id_);
    outstanding_[req.request_id()] = offset;
    return link_.transport_->publish(link_.topic("up/download"), req.SerializeAsString(), 1, false);
  }

  // One answer: ignored when no request of this attempt waits for it; checked; on a CRC mismatch
  // asked for again; otherwise kept until the bytes before it are written. *fresh: it was kept.
  Status take(const std::string& request_id, std::string& payload, bool* fresh) {
    auto it = outstanding_.find(request_id);
    if (it == outstanding_.end())
      return Status::ok();  // a late answer to an earlier attempt or a resent range
    const uint64_t offset = it->second;
    const std::string where = "package " + package_ + " chunk at offset " + std::to_string(offset);
    v1::DownloadChunk c;
    OTA_RETURN_IF_ERROR(
        codec::decode(payload, &c, codec::kMaxDataMessage, "DownloadChunk").with_context(where));
    OTA_RETURN_IF_ERROR(codec::check_protocol(c.protocol(), "DownloadChunk"));
    OTA_RETURN_IF_ERROR(check_chunk(c, offset, where));
    outstanding_.erase(it);
    if (crc32c(c.data().data(), c.data().size()) != c.crc32c()) {
      if (++crc_retries_[offset] > kMaxCrcRetries) {
        return make_error(Code::kHashMismatch,
                          where + ": CRC-32C mismatch " + std::to_string(kMaxCrcRetries + 1) + " times");
      }
      OTA_LOGW(kLog, "%s: CRC-32C mismatch, asking again", where.c_str());
      return request(offset);
    }
    ready_.emplace(offset, std::move(*c.mutable_data()));
    *fresh = true;
    return Status::ok();
  }

  Status check_chunk(const v1::DownloadChunk& c, uint64_t offset, const std::string& where) const {
    if (c.has_error() && c.error().code() != v1::ERROR_CODE_OK) {
      return codec::from_wire(c.error()).with_context(where + ": refused by the platform");
    }
    const uint64_t expect_len = length_at(offset);
    if (c.package() != package_ || c.offset() != offset) {
      return make_error(Code::kCorrupt, where + ": answer names package '" + c.package() + "' offset " +
                                            std::to_string(c.offset()));
    }
    if (c.total_size() != total_) {
      return make_error(Code::kCorrupt, where + ": the platform says the package is " +
                                            std::to_string(c.total_size()) + " bytes, the campaign says " +
                                            std::to_string(total_));
    }
    if (c.data().size() != expect_len || c.last() != (offset + expect_len == total_)) {
      return make_error(Code::kCorrupt, where + ": " + std::to_string(c.data().size()) +
                                            " bytes (last=" + (c.last() ? "true" : "false") + "), expected " +
                                            std::to_string(expect_len));
    }
    return Status::ok();
  }

  Status write_ready() {
    while (!ready_.empty() && ready_.begin()->first == next_write_) {
      const std::string& data = ready_.begin()->second;
      OTA_RETURN_IF_ERROR(sink_->write(reinterpret_cast<const uint8_t*>(data.data()), data.size())
                              .with_context("package " + package_));
      next_write_ += data.size();
      st_.fetched += data.size();
      ready_.erase(ready_.begin());
      if (next_write_ - synced_ >= kSyncEvery) {
        OTA_RETURN_IF_ERROR(sink_->sync());
        synced_ = next_write_;
      }
      if (progress_) progress_(next_write_, total_);
    }
    return Status::ok();
  }

  Status stalled(const std::string& why) {
    (void)sink_->sync();
    return make_error(Code::kTimeout, "package " + package_ + ": " + why + " at offset " +
                                          std::to_string(next_write_) + " (" + std::to_string(next_write_) +
                                          " of " + std::to_string(total_) + " bytes kept in " + part_ +
                                          "; download again to resume)");
  }

  CloudLink& link_;
  const std::string package_;
  const std::string part_;
  const uint64_t total_;
  DownloadStats& st_;
  const DownloadProgress& progress_;
  std::unique_ptr<FileSink> sink_;
  std::string download_id_;
  uint64_t next_write_ = 0, next_request_ = 0, synced_ = 0, seq_ = 0;
  std::map<std::string, uint64_t> outstanding_;  // request_id -> offset
  std::map<uint64_t, std::string> ready_;        // offset -> data, waiting for the bytes before it
  std::map<uint64_t, int> crc_retries_;
};

Result<std::string> cloud_package_name(const std::string& uri) {
  const std::string scheme = kCloudScheme;
  if (uri.compare(0, scheme.size(), scheme) != 0) {
    return make_error(Code::kInvalidArgument, "uri '" + uri + "' is not a " + scheme + " uri");
  }
  std::string name = uri.substr(scheme.size());
  if (!valid_cloud_name(name, 128)) {
    return make_error(
        Code::kInvalidArgument,
        "uri '" + uri + "': package name must be 1-128 of [A-Za-z0-9._-], not starting with '.'");
  }
  return name;
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

  Status s = DownloadAttempt(*this, package, ref, part, &st, progress).run();
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
