#include "scripted_consent.hpp"

#include <algorithm>

#include "ota/core/log.hpp"

namespace ota::client {

Result<ScriptedConsent> ScriptedConsent::from_answers(const std::vector<std::string>& answers) {
  std::vector<ConsentStep> steps;
  for (const auto& a : answers) {
    auto step = parse_consent_step(a);
    if (!step) return step.status().with_context("consent");
    steps.push_back(*step);
  }
  return ScriptedConsent(std::move(steps));
}

ConsentAnswer ScriptedConsent::ask(const v1::Campaign& c) {
  const ConsentStep step = steps_.empty() ? ConsentStep{} : steps_[std::min(next_, steps_.size() - 1)];
  ++next_;
  ConsentAnswer out;
  switch (step.kind) {
    case ConsentStep::kAccept:
      OTA_LOGI("client", "consent for %s: accept", c.campaign_id().c_str());
      break;
    case ConsentStep::kDecline:
      OTA_LOGI("client", "consent for %s: decline", c.campaign_id().c_str());
      out.kind = ConsentAnswer::kDecline;
      out.reason = "declined by the owner";
      break;
    case ConsentStep::kPostpone:
      OTA_LOGI("client", "consent for %s: postpone:%lld", c.campaign_id().c_str(),
               static_cast<long long>(step.postpone_for.count()));
      out.kind = ConsentAnswer::kPostpone;
      out.postpone_for = step.postpone_for;
      break;
  }
  return out;
}

}  // namespace ota::client
