#include "platform_connection.hpp"

#include "ota/core/log.hpp"

namespace ota::client {

Result<std::unique_ptr<CloudLink>> connect_platform(const ClientConfig::Cloud& cloud) {
  if (cloud.uri.empty()) return std::unique_ptr<CloudLink>();
  CloudLinkOptions co;
  co.uri = cloud.uri;
  co.ca_file = cloud.ca;
  co.cert_file = cloud.cert;
  co.key_file = cloud.key;
  co.vehicle = cloud.vehicle;
  auto link = CloudLink::connect(co);
  if (!link) return link.status();
  OTA_LOGI("client", "connected to the OTA platform at %s as %s", co.uri.c_str(), co.vehicle.c_str());
  return link;
}

}  // namespace ota::client
