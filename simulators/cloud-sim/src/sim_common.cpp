#include "sim_common.hpp"

#include <cstdarg>
#include <cstdio>

namespace ota::cloudsim {

void event(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::printf("ota-cloud-sim: ");
  std::vprintf(fmt, ap);
  std::printf("\n");
  std::fflush(stdout);
  va_end(ap);
}

bool valid_name(const std::string& s, size_t max_len) {
  if (s.empty() || s.size() > max_len || s[0] == '.') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

}  // namespace ota::cloudsim
