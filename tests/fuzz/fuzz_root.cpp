// Root metadata from the network (root rotation) or disk (provisioned root): envelope, body with its
// PEM keys, self-signature threshold, and the rotation checks against a fixed trusted root.
#include "fuzz_common.hpp"
#include "internal.hpp"

namespace d = ota::trust::detail;

namespace {
ota::trust::Limits g_limits;
d::RootInfo* g_root = nullptr;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ota_fuzz::init();
  const auto& k = trust_test::Keys::get();
  std::string root =
      trust_test::signed_by(trust_test::root_body(trust_test::default_root()), {k.root1, k.root2});
  g_root = new d::RootInfo(d::verify_self_signed_root(root, g_limits).value());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // As a provisioned root / an agent's root.
  (void)d::verify_self_signed_root(in, g_limits);
  (void)ota::trust::AgentVerifier::from_root(in, g_limits);
  // As a rotation of the trusted root (what TrustStore::update_root checks, without persisting).
  auto env = d::parse_envelope(in, g_limits.max_root_bytes, g_limits, "root metadata");
  if (env.is_ok()) {
    auto next = d::decode_root(env->body(), g_limits);
    if (next.is_ok() && next->version == g_root->version + 1 &&
        d::check_threshold(*env, g_root->root, "root (previous keys)").is_ok())
      (void)d::check_threshold(*env, next->root, "root (new keys)");
  }
  // The body alone, so that mutations are not all stopped by the signature check.
  (void)d::decode_root(in, g_limits);
  return 0;
}
