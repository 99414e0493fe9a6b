// Before the first group: the versions and DTCs before, the pre-conditions, the owner's consent.
#include "campaign/preconditions.hpp"
#include "campaign/runner.hpp"
#include "ota/core/log.hpp"

namespace ota::client {
namespace {
constexpr const char* kLog = "campaign";
}

std::optional<CampaignRunner::Impl::Refusal> CampaignRunner::Impl::admit() {
  const auto views = agents_.agents();
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    for (auto& e : *journal_.data().mutable_ecus()) {
      const AgentView& view = views.at(e.ecu_id());  // wait_online saw every target
      e.mutable_report()->set_version_before(active_bank(view).version());
      *e.mutable_report()->mutable_dtcs_before() = view.dtcs.dtcs();
    }
  }
  Status met = preconditions_now();
  if (!met.is_ok()) {
    OTA_LOGW(kLog, "campaign %s refused: %s", journal_.campaign().campaign_id().c_str(),
             met.message().c_str());
    return Refusal{v1::CAMPAIGN_REJECTED, "pre-condition not met: " + met.message()};
  }
  if (!journal_.campaign().require_consent()) return std::nullopt;
  return ask_consent();
}

// Reads the vehicle's conditions, records them as the conditions at start, and checks them.
Status CampaignRunner::Impl::preconditions_now() {
  auto conditions = vehicle_.read();
  if (conditions) {
    std::lock_guard<std::mutex> lock(journal_mu_);
    *journal_.data().mutable_report()->mutable_conditions_start() = *conditions;
  }
  return check_preconditions(journal_.campaign(), conditions, agents_.agents());
}

// Asks until the owner accepts (nullopt) or declines, the postponements run out, a cancel comes
// during one, or the pre-conditions no longer hold after one.
std::optional<CampaignRunner::Impl::Refusal> CampaignRunner::Impl::ask_consent() {
  publish_status(v1::CampaignStatus::CAMPAIGN_STATE_AWAITING_CONSENT);
  for (int asked = 0;; ++asked) {
    ConsentAnswer a = consent_.ask(journal_.campaign());
    if (a.kind == ConsentAnswer::kAccept) return std::nullopt;
    if (a.kind == ConsentAnswer::kDecline)
      return Refusal{v1::CAMPAIGN_REJECTED, "owner declined" + (a.reason.empty() ? "" : ": " + a.reason)};
    if (asked >= options_.max_postpones) return Refusal{v1::CAMPAIGN_POSTPONED, "postponed too often"};
    OTA_LOGI(kLog, "owner postponed the update by %lld ms", static_cast<long long>(a.postpone_for.count()));
    publish_status(v1::CampaignStatus::CAMPAIGN_STATE_POSTPONED);
    const auto until = clock_.now() + a.postpone_for;
    while (clock_.now() < until && !cancel_) clock_.sleep_for(std::chrono::milliseconds(20));
    if (cancel_) return Refusal{v1::CAMPAIGN_CANCELLED, "cancelled while postponed"};
    Status again = preconditions_now();
    if (!again.is_ok())
      return Refusal{v1::CAMPAIGN_REJECTED, "pre-condition not met after postponement: " + again.message()};
  }
}

}  // namespace ota::client
