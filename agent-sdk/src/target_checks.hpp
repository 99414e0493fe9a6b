// What a StartTransfer must pass before anything is written (docs/PROTOCOL.md 6.1): the target's
// shape, whether it fits this ECU, and, with a trust root, the signed metadata over exactly this
// image and this payload: the director's signature for this ECU and, under full verification (the
// default), the image role's metadata for the same image and payload (ota/core/trust_wire.hpp
// check_target_matches). A director metadata version serves one transfer, once. Also owns the
// trust root: the provisioned one, replaced by a newer one accepted over the air
// (StartTransfer.root_updates) and kept in {state_dir}/trust-root.signed.
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

  // Loads AgentConfig::trust_root_file and the newer root saved in `state_dir`, if any, and logs
  // which verification runs (full, partial, or none without a trust root file).
  Status load_trust_root(const std::string& state_dir);

  // Runs every check of docs/PROTOCOL.md 6.1 in order against the state held. On the way it
  // applies (and persists) root updates; *director_version is set to the director metadata version
  // verified, if any, even when a later check fails (0 otherwise).
  Status check(const v1::StartTransfer& req, const v1::AgentDiskState& state, uint64_t* director_version);

  // Records in `state` what check() saw: the director metadata version verified (never lowered)
  // and, when the transfer was accepted, the transfer that version now belongs to.
  static void record(uint64_t director_version, const std::string& accepted_transfer_id,
                     v1::AgentDiskState* state);

 private:
  Status check_shape(const v1::StartTransfer& req, const v1::AgentDiskState& state) const;
  Status apply_root_updates(const v1::StartTransfer& req);
  Status verify_signed_target(const v1::StartTransfer& req, const v1::AgentDiskState& state,
                              uint64_t* director_version) const;

  const agent::AgentConfig& cfg_;
  const agent::Device& dev_;
  const AgentClock& clock_;
  std::unique_ptr<trust::AgentVerifier> verifier_;  // null: no trust root configured
  std::string trust_root_path_;  // {state_dir}/trust-root.signed: the newest root accepted over the air
};

}  // namespace ota::agent_impl
