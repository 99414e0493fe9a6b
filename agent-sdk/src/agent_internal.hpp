// In-tree only (not installed): building an Agent over another transport and clock, for unit
// tests and simulators. Suppliers use the public constructor, which is the same Agent over the MQTT
// transport of its AgentConfig and the system clock.
#pragma once

#include <functional>
#include <memory>

#include "clock.hpp"
#include "ota/agent.hpp"
#include "ota/core/transport.hpp"
#include "state_machine.hpp"

namespace ota::agent_impl {

// What the Agent does not build itself when given.
struct AgentSeams {
  // Builds the transport from the options the Agent derives from its config (client id,
  // credentials, TLS, Last Will). Called once, by start(). Default: ota::make_transport.
  std::function<std::unique_ptr<Transport>(const TransportOptions&)> make_transport;
  // Health-check deadlines, metadata expiry, progress pacing and timestamps. Shared with health
  // checks that outlive the Agent. Default: SystemAgentClock.
  std::shared_ptr<const AgentClock> clock;
  // Told, on the protocol thread, of every event once its action is done: the row of the
  // transition table it took, and the phases before and after. Default: none.
  std::function<void(const Rule& rule, v1::Phase before, v1::Phase after)> on_transition;
};

class AgentFactory {
 public:
  // An Agent over these seams. The Device must outlive the Agent and any health check it started.
  static std::unique_ptr<agent::Agent> make(agent::AgentConfig config, agent::Device& device,
                                            AgentSeams seams);
};

}  // namespace ota::agent_impl
