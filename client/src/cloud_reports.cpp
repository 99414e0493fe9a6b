// The report side of CloudLink (see cloud_link.hpp): every report goes into the durable outbox
// before it is first published, and is published again until the platform's ReportAck names its
// campaign. The resender thread publishes what is unacknowledged after every reconnect (at once)
// and on a backoff from report_resend_min doubling to report_resend_max; ReportAcks are handled on
// the transport's thread.
#include <algorithm>

#include "cloud_link.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/log.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "cloud";
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

}  // namespace

size_t CloudLink::publish_pending_reports() {
  const auto pending = outbox_->pending();
  for (const auto& report : pending) {
    v1::VehicleReport m = report;
    codec::set_protocol(m.mutable_protocol());
    if (Status st = transport_->publish(topic("up/report"), m.SerializeAsString(), 1, false); !st.is_ok()) {
      OTA_LOGW(kLog, "report of campaign '%s' not published now (%s); it stays queued",
               report.campaign_id().c_str(), st.to_string().c_str());
    }
  }
  return pending.size();
}

void CloudLink::resend_loop() {
  milliseconds backoff = options_.report_resend_min;
  auto next = Clock::now() + backoff;
  std::unique_lock<std::mutex> lock(report_mu_);
  while (!stopping_) {
    report_cv_.wait_until(lock, next, [this] { return stopping_ || resend_now_ || restart_backoff_; });
    if (stopping_) break;
    const bool now = resend_now_;
    if (now || restart_backoff_) {
      resend_now_ = restart_backoff_ = false;
      backoff = options_.report_resend_min;
      next = Clock::now() + backoff;
      if (!now) continue;
    } else if (Clock::now() < next) {
      continue;
    }
    lock.unlock();
    const size_t n = outbox_->pending().size();
    if (n > 0 && !now) {
      OTA_LOGI(kLog, "%zu report(s) not yet acknowledged by the platform: publishing again (next in %lld ms)",
               n, static_cast<long long>(std::min(backoff * 2, options_.report_resend_max).count()));
    }
    if (n > 0) publish_pending_reports();
    lock.lock();
    if (!now && n > 0) backoff = std::min(backoff * 2, options_.report_resend_max);
    next = Clock::now() + backoff;
  }
}

Status CloudLink::queue_report(const v1::VehicleReport& report) {
  Status stored = outbox_->put(report);
  if (!stored.is_ok()) {
    OTA_LOGE(kLog, "report of campaign '%s' not stored in the outbox: %s", report.campaign_id().c_str(),
             stored.to_string().c_str());
    v1::VehicleReport m = report;
    codec::set_protocol(m.mutable_protocol());
    (void)transport_->publish(topic("up/report"), m.SerializeAsString(), 1, false);
    return stored;
  }
  publish_pending_reports();
  {
    std::lock_guard<std::mutex> lock(report_mu_);
    restart_backoff_ = true;
  }
  report_cv_.notify_all();
  return Status::ok();
}

Status CloudLink::publish_report(const v1::VehicleReport& report, milliseconds timeout) {
  Status queued = queue_report(report);
  OTA_RETURN_IF_ERROR(transport_->flush(timeout).with_context("report of campaign " + report.campaign_id()));
  return queued;
}

bool CloudLink::resend_stored_report(const std::string& campaign_id) {
  if (!outbox_->requeue(campaign_id)) return false;
  publish_pending_reports();
  {
    std::lock_guard<std::mutex> lock(report_mu_);
    restart_backoff_ = true;
  }
  report_cv_.notify_all();
  return true;
}

Status CloudLink::wait_reports_acknowledged(milliseconds timeout) {
  std::unique_lock<std::mutex> lock(report_mu_);
  if (report_cv_.wait_for(lock, timeout, [this] { return outbox_->pending().empty(); })) return Status::ok();
  std::string ids;
  for (const auto& r : outbox_->pending()) ids += (ids.empty() ? "'" : ", '") + r.campaign_id() + "'";
  return make_error(Code::kTimeout, "the platform did not acknowledge the report of campaign " + ids +
                                        " within " + std::to_string(timeout.count()) +
                                        " ms; it stays queued and is sent again at the next start");
}

// Transport thread.
void CloudLink::handle_report_ack(const std::string& payload) {
  v1::ReportAck ack;
  Status st = codec::decode(payload, &ack, codec::kMaxControlMessage, "ReportAck");
  if (st.is_ok()) st = codec::check_protocol(ack.protocol(), "ReportAck");
  if (!st.is_ok()) {
    OTA_LOGW(kLog, "report ack dropped: %s", st.to_string().c_str());
    return;
  }
  const size_t n = outbox_->acknowledge(ack.campaign_id());
  if (n > 0) {
    OTA_LOGI(kLog, "report of campaign '%s' acknowledged by the platform", ack.campaign_id().c_str());
  } else {
    OTA_LOGD(kLog, "duplicate ack for the report of campaign '%s'", ack.campaign_id().c_str());
  }
  { std::lock_guard<std::mutex> lock(report_mu_); }  // a waiter is either before its check or waiting
  report_cv_.notify_all();
}

}  // namespace ota::client
