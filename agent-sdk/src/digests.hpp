// SHA-256 digests as the wire and the state file hold them: raw bytes in protobuf bytes fields.
#pragma once

#include <string>
#include <string_view>

#include "ota/core/sha256.hpp"

namespace ota::agent_impl {

inline std::string digest_bytes(const Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

inline std::string hex_of_bytes(std::string_view bytes) {
  return to_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace ota::agent_impl
