// Image metadata: envelope + image-role threshold, and the body decoder and hash/hardware matching
// on their own (mutated bodies rarely keep a valid signature), then the payload checks that run on
// what matched.
#include "fuzz_common.hpp"
#include "internal.hpp"

namespace d = ota::trust::detail;

namespace {
ota::trust::Limits g_limits;
d::RootInfo* g_root = nullptr;
std::vector<ota::trust::CampaignTarget>* g_targets = nullptr;

// What the client and the agents then check with the images matched: each payload against its
// signed size and hash (trust::check_payload), as the client checks a download and the agent a
// transfer.
void match_all(const ota::trust::VerifiedImages& images) {
  for (auto t : *g_targets) {
    if (!d::match_image(&t, images).is_ok()) continue;
    if (t.image.has_full)
      (void)ota::trust::check_payload(t.image.full, t.image.full.sha256, t.image.full.size, "full");
    for (const auto& delta : t.image.deltas)
      (void)ota::trust::check_payload(delta.payload, t.sha256, delta.payload.size + 1, "delta");
  }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ota_fuzz::init();
  const auto& k = trust_test::Keys::get();
  std::string root =
      trust_test::signed_by(trust_test::root_body(trust_test::default_root()), {k.root1, k.root2});
  g_root = new d::RootInfo(d::verify_self_signed_root(root, g_limits).value());
  auto dir =
      d::decode_director(trust_test::director_body(1, trust_test::default_targets()), g_limits).value();
  g_targets = new std::vector<ota::trust::CampaignTarget>(dir.campaign.targets);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto env = d::parse_envelope(in, g_limits.max_image_bytes, g_limits, "image metadata");
  if (env.is_ok() && d::check_threshold(*env, g_root->image, "image metadata").is_ok()) {
    auto images = d::decode_image(env->body(), g_limits);
    if (images.is_ok()) {
      (void)d::check_expiry(images->expires, trust_test::kNow, "image metadata");
      match_all(*images);
    }
  }
  if (size <= g_limits.max_image_bytes) {
    auto images = d::decode_image(in, g_limits);
    if (images.is_ok()) match_all(*images);
  }
  return 0;
}
