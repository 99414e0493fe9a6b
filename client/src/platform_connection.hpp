// The client's link to the OTA platform ([cloud]): MQTT v5 over TLS, campaigns in, inventory,
// status and reports out (docs/PROTOCOL.md, "Cloud link").
#pragma once

#include <memory>

#include "cloud_link.hpp"
#include "config.hpp"

namespace ota::client {

// Connects when [cloud] uri is set; nullptr when it is not. Errors: CloudLink::connect's.
Result<std::unique_ptr<CloudLink>> connect_platform(const ClientConfig::Cloud& cloud);

}  // namespace ota::client
