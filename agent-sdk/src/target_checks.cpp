#include "target_checks.hpp"

#include "digests.hpp"
#include "disk_state.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"

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
  auto saved = read_small_file(trust_root_path_, kMaxRootFile);
  if (saved) {
    auto accepted = trust::AgentVerifier::from_root(*saved);
    if (!accepted) return accepted.status().with_context(trust_root_path_);
    if (accepted->root_version() > verifier_->root_version()) {
      verifier_ = std::make_unique<trust::AgentVerifier>(std::move(*accepted));
    }
  } else if (saved.status().code() != Code::kNotFound) {
    return saved.status().with_context(trust_root_path_);
  }
  OTA_LOGI(kLog, "%s: trust root version %llu", cfg_.ecu_id.c_str(),
           static_cast<unsigned long long>(verifier_->root_version()));
  return Status::ok();
}

Status TargetChecks::check(const v1::StartTransfer& req, const v1::AgentDiskState& state,
                           uint64_t* director_version) {
  *director_version = 0;
  OTA_RETURN_IF_ERROR(check_shape(req, state));
  OTA_RETURN_IF_ERROR(apply_root_updates(req));
  OTA_RETURN_IF_ERROR(verify_signed_target(req.target(), state, director_version));
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

// Root rotations handed over with the transfer, oldest first: those above the root in force go
// through AgentVerifier::update_root (version + 1, thresholds of the old and the new root keys) in
// order, and the newest accepted one is persisted. A bad one refuses the transfer.
Status TargetChecks::apply_root_updates(const v1::StartTransfer& req) {
  if (!verifier_ || req.root_updates().empty()) return Status::ok();
  const uint64_t before = verifier_->root_version();
  Status result;
  for (const auto& signed_root : req.root_updates()) {
    auto claimed = trust::claimed_root_version(signed_root);
    if (!claimed) {
      result = claimed.status().with_context("root update");
      break;
    }
    if (*claimed <= verifier_->root_version()) continue;  // already in force: nothing is trusted from it
    result = verifier_->update_root(signed_root).with_context("root update");
    if (!result.is_ok()) break;
  }
  // The roots accepted before a bad one stay accepted: persist them whatever follows.
  if (verifier_->root_version() != before) {
    OTA_RETURN_IF_ERROR(
        atomic_write_file(trust_root_path_, verifier_->signed_root()).with_context("root update"));
    OTA_LOGI(kLog, "%s: trust root rotated from version %llu to %llu", cfg_.ecu_id.c_str(),
             static_cast<unsigned long long>(before),
             static_cast<unsigned long long>(verifier_->root_version()));
  }
  return result;
}

// The agent's own check of what the client hands it: signed by the director for this ECU, the very
// image (hash, size, version) the client announces, no downgrade unless allowed, no replay, not
// expired by the agent's clock.
Status TargetChecks::verify_signed_target(const v1::Target& t, const v1::AgentDiskState& state,
                                          uint64_t* director_version) const {
  if (!verifier_) return Status::ok();
  if (t.signed_target().empty()) {
    return Status(Code::kSignatureInvalid, "target " + t.version() + " carries no signed director metadata");
  }
  trust::AgentIdentity me;
  me.ecu_id = cfg_.ecu_id;
  me.hardware_id = cfg_.hardware_id;
  me.active_version = active_record(state).version();
  me.min_director_version = state.director_version();
  auto verified = verifier_->verify_target(t.signed_target(), t.signed_image(), me, &clock_);
  if (!verified) return verified.status();
  const trust::CampaignTarget& signed_target = verified->target;
  if (digest_bytes(signed_target.sha256) != t.sha256() || signed_target.size != t.size() ||
      signed_target.version != t.version()) {
    return Status(Code::kRejected, "the target announced (" + t.version() + ", " + std::to_string(t.size()) +
                                       " bytes) is not the one the director signed for " + cfg_.ecu_id +
                                       " (" + signed_target.version + ", " +
                                       std::to_string(signed_target.size) + " bytes)");
  }
  if (t.allow_downgrade() && !signed_target.allow_downgrade) {
    return Status(Code::kRejected, "allow_downgrade is set but not signed by the director");
  }
  *director_version = verified->director_version;
  return Status::ok();
}

}  // namespace ota::agent_impl
