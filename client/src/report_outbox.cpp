// ReportOutbox: see report_outbox.hpp. The order of writes is what makes it crash-safe: "acked" is
// removed before a new report is written (a crash in between resends the old one, harmlessly),
// and the report file is removed before its marker when a report is dropped.
#include "report_outbox.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "reports";
constexpr const char* kReportExt = ".report";
constexpr const char* kAckedExt = ".acked";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_final_report(const v1::VehicleReport& r) {
  return r.result() != v1::CAMPAIGN_REJECTED && r.result() != v1::CAMPAIGN_POSTPONED &&
         r.result() != v1::CAMPAIGN_RESULT_UNSPECIFIED;
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "remove " + path);
  return Status::ok();
}

}  // namespace

std::string report_key(const std::string& id) {
  if (id.empty() || id.size() > 100 || id[0] == '.') return {};
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return {};
  }
  return id;
}

Result<std::unique_ptr<ReportOutbox>> ReportOutbox::open(const std::string& dir) {
  std::unique_ptr<ReportOutbox> box(new ReportOutbox(dir));
  if (!dir.empty()) OTA_RETURN_IF_ERROR(box->load().with_context("report outbox " + dir));
  return box;
}

std::string ReportOutbox::path(const std::string& key, const char* ext) const {
  return dir_ + "/" + key + ext;
}

Status ReportOutbox::load() {
  OTA_RETURN_IF_ERROR(make_dirs(dir_));
  namespace fs = std::filesystem;
  std::vector<std::pair<fs::file_time_type, std::string>> found;  // (time, key)
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (ends_with(name, ".tmp")) {
      (void)remove_file(e.path().string());  // an interrupted atomic write
    } else if (ends_with(name, kReportExt)) {
      found.emplace_back(e.last_write_time(ec), name.substr(0, name.size() - std::string(kReportExt).size()));
    }
  }
  if (ec) return make_error(Code::kIoError, "list " + dir_ + ": " + ec.message());
  std::sort(found.begin(), found.end());
  for (const auto& [time, key] : found) {
    const std::string file = path(key, kReportExt);
    auto bytes = read_small_file(file, kMaxReportFileBytes);
    Entry entry{key, {}, false};
    Status st = bytes.status();
    if (st.is_ok()) st = codec::decode(*bytes, &entry.report, kMaxReportFileBytes, "VehicleReport");
    if (!st.is_ok()) {
      OTA_LOGE(kLog, "stored report %s dropped: %s", file.c_str(), st.to_string().c_str());
      (void)remove_file(file);
      (void)remove_file(path(key, kAckedExt));
      continue;
    }
    entry.acked = fs::exists(path(key, kAckedExt), ec);
    entries_.push_back(std::move(entry));
  }
  // Markers without their report (a drop interrupted between the two removals).
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (ends_with(name, kAckedExt) &&
        !fs::exists(dir_ + "/" + name.substr(0, name.size() - 6) + kReportExt, ec))
      (void)remove_file(e.path().string());
  }
  while (entries_.size() > kMaxReports) drop_oldest();
  if (!entries_.empty()) {
    OTA_LOGI(kLog, "%zu stored reports in %s, %zu not yet acknowledged by the platform", entries_.size(),
             dir_.c_str(),
             static_cast<size_t>(
                 std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return !e.acked; })));
  }
  return Status::ok();
}

Status ReportOutbox::set_acked(Entry& e, bool acked) {
  if (!dir_.empty()) {
    const std::string marker = path(e.key, kAckedExt);
    OTA_RETURN_IF_ERROR(acked ? atomic_write_file(marker, "") : remove_file(marker));
    if (!acked) OTA_RETURN_IF_ERROR(fsync_dir(dir_));
  }
  e.acked = acked;
  return Status::ok();
}

void ReportOutbox::drop_oldest() {
  auto victim = std::find_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.acked; });
  if (victim == entries_.end()) victim = entries_.begin();
  if (victim == entries_.end()) return;
  if (victim->acked) {
    OTA_LOGW(kLog, "outbox full (%zu reports): dropping the acknowledged report of campaign '%s'",
             kMaxReports, victim->report.campaign_id().c_str());
  } else {
    OTA_LOGE(kLog, "outbox full (%zu reports): dropping the report of campaign '%s' never acknowledged",
             kMaxReports, victim->report.campaign_id().c_str());
  }
  if (!dir_.empty()) {
    (void)remove_file(path(victim->key, kReportExt));
    (void)remove_file(path(victim->key, kAckedExt));
  }
  entries_.erase(victim);
}

Status ReportOutbox::put(const v1::VehicleReport& report) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string key = report_key(report.campaign_id());
  auto it = key.empty() ? entries_.end()
                        : std::find_if(entries_.begin(), entries_.end(),
                                       [&](const Entry& e) { return e.key == key; });
  if (it != entries_.end() && report.result() == v1::CAMPAIGN_REJECTED && is_final_report(it->report)) {
    OTA_LOGW(kLog, "campaign %s rejected again; its stored %s report is kept", key.c_str(),
             v1::CampaignResult_Name(it->report.result()).c_str());
    return Status::ok();
  }
  if (key.empty()) {
    const std::string base = "unnamed-" + std::to_string(codec::now_ms());
    key = base;
    for (int n = 1;
         std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; }); ++n)
      key = base + "-" + std::to_string(n);
  }
  if (it == entries_.end()) {
    if (entries_.size() >= kMaxReports) drop_oldest();
    entries_.push_back(Entry{key, report, true});
    it = entries_.end() - 1;
  } else {
    // Newest last: the stored report moves to the end.
    Entry moved = std::move(*it);
    entries_.erase(it);
    moved.report = report;
    entries_.push_back(std::move(moved));
    it = entries_.end() - 1;
  }
  // Not acknowledged first, then the new content: a crash in between resends the old report.
  OTA_RETURN_IF_ERROR(set_acked(*it, false));
  if (!dir_.empty())
    OTA_RETURN_IF_ERROR(atomic_write_file(path(key, kReportExt), report.SerializeAsString()));
  return Status::ok();
}

std::optional<v1::VehicleReport> ReportOutbox::find(const std::string& campaign_id) const {
  if (campaign_id.empty()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& e : entries_) {
    if (e.report.campaign_id() == campaign_id) return e.report;
  }
  return std::nullopt;
}

bool ReportOutbox::requeue(const std::string& campaign_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& e : entries_) {
    if (e.report.campaign_id() != campaign_id || campaign_id.empty()) continue;
    if (Status st = set_acked(e, false); !st.is_ok()) OTA_LOGW(kLog, "%s", st.to_string().c_str());
    return true;
  }
  return false;
}

std::vector<v1::VehicleReport> ReportOutbox::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::VehicleReport> out;
  for (const auto& e : entries_) {
    if (!e.acked) out.push_back(e.report);
  }
  return out;
}

size_t ReportOutbox::acknowledge(const std::string& campaign_id) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (auto& e : entries_) {
    if (e.acked || e.report.campaign_id() != campaign_id) continue;
    // A marker that cannot be written only means the report is sent again: the platform acks duplicates.
    if (Status st = set_acked(e, true); !st.is_ok()) OTA_LOGW(kLog, "%s", st.to_string().c_str());
    ++n;
  }
  return n;
}

size_t ReportOutbox::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace ota::client
