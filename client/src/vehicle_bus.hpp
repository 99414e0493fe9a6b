// The client's connection to the vehicle broker ([broker]) and the view of the agents it feeds.
#pragma once

#include <memory>

#include "agent_directory.hpp"
#include "config.hpp"
#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"

namespace ota::client {

// Transport options for [broker]: client id "ota-client", the password read from password_file,
// TLS when tls_ca is set. Errors: the password file cannot be read.
Result<TransportOptions> vehicle_transport_options(const ClientConfig::Broker& broker);

// Owns the transport and the AgentDirectory its messages feed; the transport's callbacks stop before the
// AgentDirectory goes away.
class VehicleBus {
 public:
  // Connects (10 s at most) and subscribes to the leaves every agent publishes
  // (topics::kAgentUpLeaves), not to the whole up/ tree. Errors: broker unreachable or
  // refused, subscription refused.
  static Result<std::unique_ptr<VehicleBus>> connect(TransportOptions options);
  ~VehicleBus();
  VehicleBus(const VehicleBus&) = delete;
  VehicleBus& operator=(const VehicleBus&) = delete;

  Transport& transport() { return *transport_; }
  AgentDirectory& fleet() { return *fleet_; }

 private:
  VehicleBus() = default;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<AgentDirectory> fleet_;
};

}  // namespace ota::client
