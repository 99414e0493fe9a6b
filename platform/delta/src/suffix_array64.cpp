#include <divsufsort64.h>

#include "suffix_array.hpp"

namespace ota::delta::detail {

bool build_suffix_array64(const uint8_t* data, size_t size, std::vector<int64_t>* sa) {
  sa->assign(size, 0);
  if (size == 0) return true;
  return divsufsort64(data, sa->data(), static_cast<saidx64_t>(size)) == 0;
}

}  // namespace ota::delta::detail
