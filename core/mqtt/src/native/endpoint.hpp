// Where a tcp:// broker URI points: the native client's address parsing, and the scheme test the
// factory's engine choice shares with it.
#pragma once

#include <cstddef>
#include <string>

#include "ota/core/status.hpp"

namespace ota::native {

struct Endpoint {
  std::string host;
  std::string port;
};

// The length of the uri's plain-TCP scheme ("tcp://", "mqtt://"), 0 for any other.
size_t plain_scheme_length(const std::string& uri);

// "tcp://host:port", "tcp://[v6 address]:port" (port 1883 when left out). kInvalidArgument for any
// other scheme (ssl:// and MQTT 5 go through Paho), an unterminated IPv6 address, or no host.
Result<Endpoint> parse_uri(const std::string& uri);

}  // namespace ota::native
