// CAgentSetup: a C agent configuration (ota_agent_config_t) for agent ecu-a of a test's private
// Mosquitto (BrokerFixture), with a temporary state directory; shared by the C ABI tests.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <utility>

#include "ota/agent.h"
#include "ota/sim/tempdir.hpp"
#include "ota/test/broker_fixture.hpp"

namespace ota::test {

// Agent ecu-a of the fixture's broker: its state directory and a C config that points into this
// object (so it stays in place: not copyable).
struct CAgentSetup {
  sim::TempDir dir;
  std::string state_dir, password, uri;
  ota_agent_config_t cfg;

  CAgentSetup(BrokerFixture& f, const char* prefix)
      : dir(make_dir(prefix)),
        state_dir(dir.file("state")),
        password(f.broker().password("ecu-a")),
        uri(f.broker().uri()) {
    ota_agent_config_init(&cfg);
    cfg.ecu_id = "ecu-a";
    cfg.broker_uri = uri.c_str();
    cfg.password = password.c_str();
    cfg.state_dir = state_dir.c_str();
  }
  CAgentSetup(const CAgentSetup&) = delete;
  CAgentSetup& operator=(const CAgentSetup&) = delete;

  static sim::TempDir make_dir(const char* prefix) {
    auto d = sim::TempDir::create(prefix);
    REQUIRE(d.is_ok());
    return std::move(*d);
  }
};

}  // namespace ota::test
