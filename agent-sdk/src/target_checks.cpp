#include "target_checks.hpp"

#include "digests.hpp"
#include "disk_state.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/trust_wire.hpp"

namespace ota::agent_impl {

namespace {
constexpr const char* kLog = "agent";
constexpr size_t kMaxRootFile = 256 * 1024;
}  // namespace

Status TargetChecks::load_trust_root(const std::string& state_dir) {
  if (cfg_.trust_root_file.empty()) {
    OTA_LOGW(kLog, "%s: no trust root configured: targets are not signature-checked", cfg_.ecu_id.c_str());
    return Status::ok();
  }
  auto root = read_small_file(cfg_.trust_root_file, kMaxRootFile);
  if (!root) return root.status().with_context("trust root");
  auto verifier = trust::AgentVerifier::from_root(*root);
  if (!verifier) return verifier.status().with_context("trust root " + cfg_.trust_root_file);
  verifier_ = std::make_unique<trust::AgentVerifier>(std::move(*verifier));
  // A root accepted over the air replaces the provisioned one if newer. It was verified against its
  // predecessor (both thresholds) before it was written; here it is re-checked only for being a
  // root signed by a threshold of its own keys.
  trust_root_path_ = state_dir + "/trust-root.signed";
  auto saved = read_state_file(trust_root_path_, kMaxRootFile);
  if (saved) {
    auto accepted = trust::AgentVerifier::from_root(*saved);
    if (!accepted) return accepted.status().with_context(trust_root_path_);
    if (accepted->root_version() > verifier_->root_version()) {
      verifier_ = std::make_unique<trust::AgentVerifier>(std::move(*accepted));
    }
  } else if (saved.status().code() != Code::kNotFound) {
    return saved.status().with_context(trust_root_path_);
  }
  if (cfg_.partial_verification) {
    OTA_LOGW(kLog,
             "%s: trust root version %llu, PARTIAL verification: targets are checked against the "
             "director's signature only, not the image role's metadata",
             cfg_.ecu_id.c_str(), static_cast<unsigned long long>(verifier_->root_version()));
  } else {
    OTA_LOGI(kLog, "%s: trust root version %llu, full verification (director and image metadata)",
             cfg_.ecu_id.c_str(), static_cast<unsigned long long>(verifier_->root_version()));
  }
  return Status::ok();
}

Status TargetChecks::check(const v1::StartTransfer& req, const v1::AgentDiskState& state,
                           uint64_t* director_version) {
  *director_version = 0;
  OTA_RETURN_IF_ERROR(check_shape(req, state));
  OTA_RETURN_IF_ERROR(apply_root_updates(req));
  OTA_RETURN_IF_ERROR(verify_signed_target(req, state, director_version));
  const v1::Target& t = req.target();
  if (t.kind() != v1::PAYLOAD_KIND_UNSPECIFIED && t.kind() != v1::PAYLOAD_KIND_FIRMWARE_IMAGE) {
    return Status(Code::kUnsupported, "payload kind " + std::to_string(t.kind()) + " is not supported");
  }
  return Status::ok();
}

Status TargetChecks::check_shape(const v1::StartTransfer& req, const v1::AgentDiskState& state) const {
  const v1::Target& t = req.target();
  Digest d;
  if (req.transfer_id().empty() || req.transfer_id().size() > 256) {
    return Status(Code::kInvalidArgument, "transfer_id must be 1-256 bytes");
  }
  if (!digest_from_bytes(t.sha256(), &d) || !digest_from_bytes(t.payload_sha256(), &d)) {
    return Status(Code::kInvalidArgument, "target sha256 and payload_sha256 must be 32 bytes");
  }
  if (!cfg_.hardware_id.empty() && !t.hardware_id().empty() && t.hardware_id() != cfg_.hardware_id) {
    return Status(Code::kRejected, "target is built for hardware '" + t.hardware_id() + "', this ECU is '" +
                                       cfg_.hardware_id + "'");
  }
  if (t.size() > dev_.bank_size()) {
    return Status(Code::kNoSpace, "image of " + std::to_string(t.size()) + " bytes does not fit a bank of " +
                                      std::to_string(dev_.bank_size()));
  }
  if (req.chunk_size() == 0 || req.chunk_size() > cfg_.max_chunk_size) {
    return Status(Code::kInvalidArgument, "chunk size " + std::to_string(req.chunk_size()) +
                                              " is outside 1.." + std::to_string(cfg_.max_chunk_size));
  }
  if (t.encoding() == v1::PAYLOAD_ENCODING_RAW) {
    if (t.payload_size() != t.size() || t.payload_sha256() != t.sha256()) {
      return Status(Code::kInvalidArgument, "a raw payload must be the image itself (size and sha256)");
    }
  } else if (t.encoding() == v1::PAYLOAD_ENCODING_DELTA) {
    if (!cfg_.delta_capable) return Status(Code::kUnsupported, "this agent does not accept delta payloads");
    const auto& base = active_record(state);
    if (t.base_sha256() != base.sha256()) {
      return Status(Code::kRejected, "delta base " + t.base_version() + " does not match the active bank (" +
                                         base.version() + ")");
    }
    if (t.payload_size() > dev_.free_space()) {
      return Status(Code::kNoSpace, "delta payload of " + std::to_string(t.payload_size()) +
                                        " bytes exceeds the free staging space");
    }
  } else {
    return Status(Code::kUnsupported,
                  "payload encoding " + std::to_string(t.encoding()) + " is not supported");
  }
  return Status::ok();
}

// Root rotations handed over with the transfer, walked as the client walks them
// (trust::apply_root_updates); the newest root accepted is persisted, even when a later one of the
// chain is bad (which refuses the transfer).
Status TargetChecks::apply_root_updates(const v1::StartTransfer& req) {
  if (!verifier_ || req.root_updates().empty()) return Status::ok();
  const uint64_t before = verifier_->root_version();
  Status result = trust::apply_root_updates(req.root_updates(), *verifier_);
  if (verifier_->root_version() != before) {
    OTA_RETURN_IF_ERROR(
        atomic_write_file(trust_root_path_, verifier_->signed_root()).with_context("root update"));
    OTA_LOGI(kLog, "%s: trust root rotated from version %llu to %llu", cfg_.ecu_id.c_str(),
             static_cast<unsigned long long>(before),
             static_cast<unsigned long long>(verifier_->root_version()));
  }
  return result;
}

// The agent's own check of what the client hands it: signed by the director for this ECU and, under
// full verification, listed by the image role with the payload sent; the very image (hash, size,
// version) the client announces (trust::check_target_matches); no downgrade unless allowed; no
// replay; not expired by the agent's clock.
Status TargetChecks::verify_signed_target(const v1::StartTransfer& req, const v1::AgentDiskState& state,
                                          uint64_t* director_version) const {
  if (!verifier_) return Status::ok();
  const v1::Target& t = req.target();
  if (t.signed_target().empty()) {
    return Status(Code::kSignatureInvalid, "target " + t.version() + " carries no signed director metadata");
  }
  const bool full = !cfg_.partial_verification;
  if (full && t.signed_image().empty()) {
    return Status(Code::kSignatureInvalid,
                  "target " + t.version() +
                      " carries no signed image metadata, and this ECU does full verification "
                      "(the director's signature alone is not enough)");
  }
  trust::AgentIdentity me;
  me.ecu_id = cfg_.ecu_id;
  me.hardware_id = cfg_.hardware_id;
  me.active_version = active_record(state).version();
  me.min_director_version = state.director_version();
  auto verified =
      verifier_->verify_target(t.signed_target(), full ? t.signed_image() : std::string(), me, &clock_);
  if (!verified) return verified.status();
  *director_version = verified->director_version;
  OTA_RETURN_IF_ERROR(trust::check_target_matches(t, *verified));
  // A director metadata version serves the one transfer it was first accepted for, and that one
  // only while it is held: once it has ended (rolled back, cancelled) or been replaced, the same
  // signed metadata would re-flash the inactive bank, the ECU's fallback, under a new transfer id.
  const uint64_t v = verified->director_version;
  const std::string& bound = state.director_transfer_id();
  if (v == state.director_version() && !bound.empty()) {
    if (req.transfer_id() != bound) {
      return Status(Code::kRejected, "director metadata version " + std::to_string(v) +
                                         " was accepted for transfer " + bound + "; transfer " +
                                         req.transfer_id().substr(0, 256) + " with it is a replay");
    }
    if (state.transfer_id() != bound) {
      return Status(Code::kRejected, "transfer " + bound + " of director metadata version " +
                                         std::to_string(v) + " has ended; it is not started again");
    }
  }
  return Status::ok();
}

void TargetChecks::record(uint64_t director_version, const std::string& accepted_transfer_id,
                          v1::AgentDiskState* state) {
  if (director_version == 0) return;
  if (director_version > state->director_version()) {
    state->set_director_version(director_version);
    state->clear_director_transfer_id();
  }
  if (!accepted_transfer_id.empty() && director_version == state->director_version()) {
    state->set_director_transfer_id(accepted_transfer_id);
  }
}

}  // namespace ota::agent_impl
