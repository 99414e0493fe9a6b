// ReportOutbox: the vehicle's durable queue of campaign reports for the platform.
//
// A report is written here before it is first published, so that a crash, a lost broker or a
// platform that is down loses none: the cloud link (cloud_link.hpp) publishes every report not yet
// acknowledged at start, after every reconnect and on a backoff, until the platform answers with
// a ReportAck naming its campaign id. Acknowledged reports stay (bounded) so that a campaign the
// platform offers again after it finished is answered with its report, not run or refused again.
//
// On disk, one directory (the client's STATE/reports): per campaign "<key>.report" (the
// VehicleReport, protobuf binary, written with atomic_write_file) and, once acknowledged, an empty
// "<key>.acked". <key> is the campaign id when it is a usable file name ([A-Za-z0-9_-] and '.',
// 1-100 bytes, not starting with '.'), otherwise "unnamed-<Unix ms>". With an empty directory
// the outbox lives in memory only (for tests and links without a state directory).
//
// Bounds: at most kMaxReports reports (storing one more drops the oldest acknowledged report, or
// the oldest of all when none is acknowledged; every drop is logged as an error when unacknowledged,
// a warning otherwise); a report file above kMaxReportFileBytes, or one that does not parse, is
// dropped and logged when the outbox is opened.
//
// Threading: every method may be called from any thread (one mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

class ReportOutbox {
 public:
  static constexpr size_t kMaxReports = 32;
  // Reports are cut to 512 KiB (AgentFieldLimits::kMaxReportBytes) before they are queued.
  static constexpr size_t kMaxReportFileBytes = 1u << 20;

  // Opens (creates) `dir` and loads what it holds, oldest first by file time. Errors: the
  // directory cannot be created or listed (kIoError...). Empty `dir`: in memory only.
  static Result<std::unique_ptr<ReportOutbox>> open(const std::string& dir);

  // Stores `report` as not acknowledged, durably before it returns, replacing the stored report of
  // the same campaign id, except that a CAMPAIGN_REJECTED report never replaces a stored report
  // that is not a rejection (it is then not stored, logged, and OK is returned: the stored report
  // is what the platform gets). Errors: the write failed (kIoError, kNoSpace).
  Status put(const v1::VehicleReport& report);

  // The stored report of campaign `campaign_id` (acknowledged or not); nullopt when none or when
  // `campaign_id` is empty.
  std::optional<v1::VehicleReport> find(const std::string& campaign_id) const;

  // Marks the stored report of `campaign_id` not acknowledged again (to resend it). False when none.
  bool requeue(const std::string& campaign_id);

  // The reports not yet acknowledged, oldest first.
  std::vector<v1::VehicleReport> pending() const;

  // Marks every report of `campaign_id` acknowledged (durably when on disk); returns how many were
  // pending. Idempotent: a duplicate ReportAck returns 0.
  size_t acknowledge(const std::string& campaign_id);

  size_t size() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    std::string key;
    v1::VehicleReport report;
    bool acked = false;
  };
  explicit ReportOutbox(std::string dir) : dir_(std::move(dir)) {}
  Status load();
  Status set_acked(Entry& e, bool acked);
  void drop_oldest();
  std::string path(const std::string& key, const char* ext) const;

  const std::string dir_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // oldest first
};

// The file key of a campaign id: the id itself when it is a usable file name, else empty.
std::string report_key(const std::string& campaign_id);

}  // namespace ota::client
