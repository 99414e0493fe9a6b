#include "endpoint.hpp"

#include <cstring>

namespace ota::native {

size_t plain_scheme_length(const std::string& uri) {
  for (const char* scheme : {"tcp://", "mqtt://"}) {
    if (uri.rfind(scheme, 0) == 0) return std::strlen(scheme);
  }
  return 0;
}

Result<Endpoint> parse_uri(const std::string& uri) {
  const size_t scheme = plain_scheme_length(uri);
  std::string rest = scheme > 0 ? uri.substr(scheme) : std::string();
  if (rest.empty()) {
    return Status(Code::kInvalidArgument,
                  uri + ": the native MQTT client speaks tcp:// only (ssl:// and MQTT 5 go through Paho)");
  }
  Endpoint e;
  if (!rest.empty() && rest[0] == '[') {  // [v6 address]:port
    auto close = rest.find(']');
    if (close == std::string::npos)
      return Status(Code::kInvalidArgument, uri + ": unterminated IPv6 address");
    e.host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    e.port = rest.rfind(':', 0) == 0 ? rest.substr(1) : "1883";
  } else {
    auto colon = rest.rfind(':');
    e.host = rest.substr(0, colon);
    e.port = colon == std::string::npos ? "1883" : rest.substr(colon + 1);
  }
  if (e.host.empty() || e.port.empty()) return Status(Code::kInvalidArgument, uri + ": no host or port");
  return e;
}

}  // namespace ota::native
