// ECU-signed reports as the client receives them, PEM public keys (ECU keys come from provisioning
// files; role keys from root metadata), and the TrustStore's counter state file (from disk).
#include "fuzz_common.hpp"
#include "internal.hpp"

namespace {
ota::trust::PublicKey* g_ecu = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ota_fuzz::init();
  g_ecu = new ota::trust::PublicKey(trust_test::Keys::get().ecu.public_key());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)ota::trust::verify_report(in, *g_ecu);
  (void)ota::trust::PublicKey::from_pem(in);
  // A detached signature over a fixed message (ota.v1.Result.ecu_signature).
  (void)g_ecu->verify("fixed message", in);
  uint64_t version = 0;
  ota::Digest sha{};
  bool done = false;
  (void)ota::trust::detail::parse_counter(in, &version, &sha, &done);
  return 0;
}
