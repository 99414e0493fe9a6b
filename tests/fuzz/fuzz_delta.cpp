// Delta payloads from the network: the header parser, and reconstruction against a fixed small base
// (and as a full image), with a bounded output. Built when core/include/ota/core/delta.hpp exists.
#include "fuzz_common.hpp"
#include "ota/core/delta.hpp"

namespace {
std::string* g_base = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ota_fuzz::quiet_protobuf();
  g_base = new std::string(ota_fuzz::fuzz_base());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    ota_fuzz::MemSource src(data, size);
    (void)ota::delta::read_delta_header(src);
  }
  {
    ota_fuzz::MemSource src(data, size);
    ota_fuzz::MemReader base(*g_base);
    ota_fuzz::NullSink out(1 << 20);
    (void)ota::delta::apply_delta(base, src, out);
  }
  {
    ota_fuzz::MemSource src(data, size);
    ota_fuzz::NullSink out(1 << 20);
    (void)ota::delta::apply_full(src, out);
  }
  return 0;
}
