// Root rotation chains, walked the same way by the client's TrustStore and by each agent's
// AgentVerifier (see trust_wire.hpp).
#include "internal.hpp"
#include "ota/core/trust_wire.hpp"

namespace ota::trust {

namespace {

// Before anything is verified: a chain is short and its versions strictly increase. Padding (many
// copies of old roots) and reordering are refused as a whole rather than skipped one by one.
Status check_chain_shape(const google::protobuf::RepeatedPtrField<std::string>& chain, const Limits& limits,
                         std::vector<uint64_t>* claimed) {
  if (static_cast<size_t>(chain.size()) > limits.max_root_updates)
    return make_error(Code::kRejected, "root update: " + std::to_string(chain.size()) +
                                           " roots in the chain, more than the limit of " +
                                           std::to_string(limits.max_root_updates));
  for (const auto& signed_root : chain) {
    auto version = claimed_root_version(signed_root, limits);
    if (!version) return version.status().with_context("root update");
    if (!claimed->empty() && *version <= claimed->back())
      return make_error(Code::kRejected, "root update: version " + std::to_string(*version) +
                                             " follows version " + std::to_string(claimed->back()) +
                                             " in the chain (versions must increase)");
    claimed->push_back(*version);
  }
  return Status::ok();
}

// Holder: TrustStore or AgentVerifier (update_root, root_version).
template <typename Holder>
Status walk_chain(const google::protobuf::RepeatedPtrField<std::string>& chain, Holder& holder,
                  const Limits& limits) {
  std::vector<uint64_t> claimed;
  OTA_RETURN_IF_ERROR(check_chain_shape(chain, limits, &claimed));
  for (int i = 0; i < chain.size(); ++i) {
    if (claimed[static_cast<size_t>(i)] <= holder.root_version()) continue;  // already in force
    OTA_RETURN_IF_ERROR(holder.update_root(chain[i]).with_context("root update"));
  }
  return Status::ok();
}

}  // namespace

Status apply_root_updates(const google::protobuf::RepeatedPtrField<std::string>& chain, TrustStore& store,
                          const Limits& limits) {
  return walk_chain(chain, store, limits);
}

Status apply_root_updates(const google::protobuf::RepeatedPtrField<std::string>& chain,
                          AgentVerifier& verifier, const Limits& limits) {
  return walk_chain(chain, verifier, limits);
}

}  // namespace ota::trust
