// Signing of role metadata (platform side): a serialized role body wrapped in an ota.v1.SignedMetadata
// with one signature per key, and co-signing of an existing envelope.
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/trust.hpp"
#include "ota/v1/trust.pb.h"

namespace ota::trust {

Result<std::string> sign(std::string_view body, const std::vector<PrivateKey>& keys) {
  if (keys.empty()) return make_error(Code::kInvalidArgument, "sign: no keys");
  ota::v1::SignedMetadata env;
  env.set_body(std::string(body));
  for (const auto& k : keys) {
    auto sig = k.sign(body);
    if (!sig) return sig.status();
    auto* s = env.add_signatures();
    s->set_key_id(k.key_id());
    s->set_sig(std::move(*sig));
  }
  std::string out;
  if (!env.SerializeToString(&out))
    return make_error(Code::kInternal, "sign: cannot serialize SignedMetadata");
  return out;
}

Result<std::string> add_signature(std::string_view signed_metadata, const PrivateKey& key) {
  ota::v1::SignedMetadata env;
  if (!env.ParseFromArray(signed_metadata.data(), static_cast<int>(signed_metadata.size())))
    return make_error(Code::kCorrupt, "add_signature: cannot decode SignedMetadata");
  auto sig = key.sign(env.body());
  if (!sig) return sig.status();
  auto* s = env.add_signatures();
  s->set_key_id(key.key_id());
  s->set_sig(std::move(*sig));
  std::string out;
  if (!env.SerializeToString(&out)) return make_error(Code::kInternal, "add_signature: cannot serialize");
  return out;
}

}  // namespace ota::trust
