// ECU-signed reports and results: what an ECU signs with its own key, and the client's check of it.
#include <string>
#include <string_view>

#include "internal.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::trust {

using namespace detail;  // NOLINT(google-build-using-namespace)

// The ECU's own envelope: the SignedMetadata form of platform metadata, with one signature by the
// ECU's key. (Platform metadata, signed by a threshold of role keys, is built by ota_signing.)
Result<std::string> sign_report(std::string_view report, const PrivateKey& ecu_key) {
  ota::v1::SignedMetadata env;
  env.set_body(std::string(report));
  auto sig = ecu_key.sign(report);
  if (!sig) return sig.status();
  auto* s = env.add_signatures();
  s->set_key_id(ecu_key.key_id());
  s->set_sig(std::move(*sig));
  std::string out;
  if (!env.SerializeToString(&out))
    return make_error(Code::kInternal, "sign_report: cannot serialize SignedMetadata");
  return out;
}

Result<std::string> verify_report(std::string_view signed_report, const PublicKey& ecu_key,
                                  size_t max_bytes) {
  Limits limits;
  auto env = parse_envelope(signed_report, max_bytes, limits, "ECU report");
  if (!env) return env.status();
  RoleSpec role;
  role.name = "ECU";
  role.keys.emplace(ecu_key.key_id(), ecu_key);
  role.threshold = 1;
  OTA_RETURN_IF_ERROR(check_threshold(*env, role, "ECU report"));
  return std::move(*env->mutable_body());
}

Result<std::string> sign_result(std::string_view result, const PrivateKey& ecu_key) {
  ota::v1::Result r;
  if (!r.ParseFromArray(result.data(), static_cast<int>(result.size())))
    return make_error(Code::kCorrupt, "sign_result: cannot decode Result");
  r.clear_ecu_signature();
  r.set_ecu_key_id(ecu_key.key_id());
  auto sig = ecu_key.sign(r.SerializeAsString());
  if (!sig) return sig.status();
  r.set_ecu_signature(std::move(*sig));
  return r.SerializeAsString();
}

Status verify_result_signature(std::string_view result, const PublicKey& ecu_key, size_t max_bytes) {
  if (result.size() > max_bytes)
    return make_error(Code::kRejected, "result is " + std::to_string(result.size()) +
                                           " bytes, above the cap of " + std::to_string(max_bytes) +
                                           " (endless data)");
  ota::v1::Result r;
  if (!r.ParseFromArray(result.data(), static_cast<int>(result.size())))
    return make_error(Code::kCorrupt, "result: cannot decode");
  const std::string who = "result from ECU " + r.ecu_id().substr(0, 64);
  if (r.ecu_signature().empty())
    return make_error(Code::kSignatureInvalid, who + " is not signed by the ECU");
  if (r.ecu_key_id() != ecu_key.key_id())
    return make_error(Code::kSignatureInvalid, who + " is signed by key " + short_id(r.ecu_key_id()) +
                                                   ", not by the ECU's key " + short_id(ecu_key.key_id()));
  std::string sig = r.ecu_signature();
  r.clear_ecu_signature();
  if (!ecu_key.verify(r.SerializeAsString(), sig))
    return make_error(Code::kSignatureInvalid, who + ": ECU signature is invalid (forged or altered)");
  return Status::ok();
}

}  // namespace ota::trust
