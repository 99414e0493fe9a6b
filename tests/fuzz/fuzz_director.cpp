// Director metadata (the campaign) as the client sees it: envelope + director threshold, then the body
// decoder, VIN/hardware/mix-and-match checks against fixed image metadata; the body decoder also on
// its own. And the same bytes as the agent sees them (AgentVerifier::verify_target).
#include "fuzz_common.hpp"
#include "internal.hpp"

namespace d = ota::trust::detail;

namespace {
ota::trust::Limits g_limits;
d::RootInfo* g_root = nullptr;
ota::trust::VerifiedImages* g_images = nullptr;
ota::trust::AgentVerifier* g_agent = nullptr;
ota::trust::FixedClock* g_clock = nullptr;

void check_campaign(ota::trust::VerifiedCampaign& c) {
  const auto vehicle = trust_test::default_vehicle();
  (void)d::check_expiry(c.expires, trust_test::kNow, "director metadata");
  if (c.vin != vehicle.vin) return;
  for (auto& t : c.targets) {
    auto it = vehicle.ecu_hardware_ids.find(t.ecu_id);
    if (it == vehicle.ecu_hardware_ids.end() || it->second != t.hardware_id) return;
    if (!d::match_image(&t, *g_images).is_ok()) return;
    ota::Digest sha{};
    (void)ota::trust::check_installed(t, sha, t.size);
    (void)ota::trust::check_downgrade(t, 150);
  }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ota_fuzz::init();
  const auto& k = trust_test::Keys::get();
  std::string root =
      trust_test::signed_by(trust_test::root_body(trust_test::default_root()), {k.root1, k.root2});
  g_root = new d::RootInfo(d::verify_self_signed_root(root, g_limits).value());
  g_images = new ota::trust::VerifiedImages(
      d::decode_image(trust_test::image_body(1, trust_test::default_images()), g_limits).value());
  g_agent = new ota::trust::AgentVerifier(ota::trust::AgentVerifier::from_root(root, g_limits).value());
  g_clock = new ota::trust::FixedClock(trust_test::kNow);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto env = d::parse_envelope(in, g_limits.max_director_bytes, g_limits, "director metadata");
  if (env.is_ok() && d::check_threshold(*env, g_root->director, "director metadata").is_ok()) {
    auto dir = d::decode_director(env->body(), g_limits);
    if (dir.is_ok()) check_campaign(dir->campaign);
  }
  ota::trust::AgentIdentity me;
  me.ecu_id = "ecu-brake";
  me.hardware_id = "hw-brake-a";
  me.vin = "VIN0000000000001";
  me.active_version_number = 100;
  (void)g_agent->verify_target(in, "", me, g_clock);

  if (size <= g_limits.max_director_bytes) {
    auto dir = d::decode_director(in, g_limits);
    if (dir.is_ok()) check_campaign(dir->campaign);
  }
  return 0;
}
