// Consent answers given in advance ([consent] answers): simulation, tests, fleets that pre-approve.
#pragma once

#include <string>
#include <vector>

#include "campaign.hpp"
#include "config.hpp"

namespace ota::client {

// Answers in order; the last one repeats; none: accept. Not thread-safe (the runner asks from one
// thread).
class ScriptedConsent : public ConsentProvider {
 public:
  explicit ScriptedConsent(std::vector<ConsentStep> steps) : steps_(std::move(steps)) {}
  // From the configuration's text form; kInvalidArgument names a malformed answer.
  static Result<ScriptedConsent> from_answers(const std::vector<std::string>& answers);

  ConsentAnswer ask(const v1::Campaign& campaign) override;

 private:
  std::vector<ConsentStep> steps_;
  size_t next_ = 0;
};

}  // namespace ota::client
