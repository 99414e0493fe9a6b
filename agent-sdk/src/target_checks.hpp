// What a StartTransfer must pass before anything is written (docs/PROTOCOL.md 6.1): the target's
// shape, whether it fits this ECU, and, with a trust root, the director's signature over exactly
// this image. Also owns that trust root: the provisioned one, replaced by a newer one accepted over
// the air (StartTransfer.root_updates) and kept in {state_dir}/trust-root.signed.
//
// Threading: protocol thread only (load_trust_root() before it starts).
#pragma once

#include <memory>
#include <string>

#include "clock.hpp"
#include "ota/agent.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/state.pb.h"

namespace ota::agent_impl {

namespace v1 = ::ota::v1;

class TargetChecks {
 public:
  // All must outlive the TargetChecks.
  TargetChecks(const agent::AgentConfig& cfg, const agent::Device& dev, const AgentClock& clock)
      : cfg_(cfg), dev_(dev), clock_(clock) {}

  // Loads AgentConfig::trust_root_file and the newer root saved in `state_dir`, if any. Without a
  // trust root file targets are not signature-checked (logged).
  Status load_trust_root(const std::string& state_dir);

  // Runs every check of docs/PROTOCOL.md 6.1 in order against the state held. On the way it
  // applies (and persists) root updates; *director_version is set to the director metadata version
  // verified, if any, even when a later check fails (0 otherwise).
  Status check(const v1::StartTransfer& req, const v1::AgentDiskState& state, uint64_t* director_version);

 private:
  Status check_shape(const v1::StartTransfer& req, const v1::AgentDiskState& state) const;
  Status apply_root_updates(const v1::StartTransfer& req);
  Status verify_signed_target(const v1::Target& t, const v1::AgentDiskState& state,
                              uint64_t* director_version) const;

  const agent::AgentConfig& cfg_;
  const agent::Device& dev_;
  const AgentClock& clock_;
  std::unique_ptr<trust::AgentVerifier> verifier_;  // null: no trust root configured
  std::string trust_root_path_;  // {state_dir}/trust-root.signed: the newest root accepted over the air
};

}  // namespace ota::agent_impl
