#include "vehicle_bus.hpp"

#include "ota/core/topics.hpp"

namespace ota::client {

Result<TransportOptions> vehicle_transport_options(const ClientConfig::Broker& broker) {
  TransportOptions topts;
  topts.uri = broker.uri;
  topts.client_id = "ota-client";
  topts.username = broker.username;
  if (!broker.password_file.empty()) {
    auto pw = read_password_file(broker.password_file);
    if (!pw) return pw.status();
    topts.password = *pw;
  }
  if (!broker.tls_ca.empty()) topts.tls = TlsOptions{broker.tls_ca, broker.tls_cert, broker.tls_key};
  return topts;
}

Result<std::unique_ptr<VehicleBus>> VehicleBus::connect(TransportOptions options) {
  std::unique_ptr<VehicleBus> bus(new VehicleBus());
  bus->transport_ = make_transport(std::move(options));
  bus->fleet_ = std::make_unique<AgentDirectory>(*bus->transport_);
  bus->transport_->on_message(
      [fleet = bus->fleet_.get()](const TransportMessage& m) { fleet->on_message(m); });
  // Commands sent around a lost connection may be lost: the agents' fresh hellos wake their callers.
  bus->transport_->on_connection([fleet = bus->fleet_.get()](bool up) {
    if (!up) fleet->on_connection_lost();
  });
  OTA_RETURN_IF_ERROR(bus->transport_->connect(std::chrono::seconds(10)));
  // The defined leaves only: a topic an agent made up under its up/ never reaches the client.
  for (topics::Leaf leaf : topics::kAgentUpLeaves)
    OTA_RETURN_IF_ERROR(bus->transport_->subscribe(topics::all_agents_filter(leaf), 1));
  return bus;
}

VehicleBus::~VehicleBus() { transport_.reset(); }

}  // namespace ota::client
