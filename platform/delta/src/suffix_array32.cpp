#include <divsufsort.h>

#include "suffix_array.hpp"

namespace ota::delta::detail {

bool build_suffix_array32(const uint8_t* data, size_t size, std::vector<int32_t>* sa) {
  sa->assign(size, 0);
  if (size == 0) return true;
  return divsufsort(data, sa->data(), static_cast<saidx_t>(size)) == 0;
}

}  // namespace ota::delta::detail
