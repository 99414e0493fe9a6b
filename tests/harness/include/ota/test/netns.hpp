// What a test that puts an agent in its own network namespace needs from the machine: root and
// iproute2. A test calls require_network_namespaces() first; on a machine without them it fails,
// naming what is missing, rather than passing without having run.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>

#include "ota/sim/netns.hpp"

namespace ota::test {

inline void require_network_namespaces() {
  if (::geteuid() != 0) {
    FAIL("this test needs root to create a network namespace; it runs as uid " << ::geteuid());
  }
  if (!sim::NetNamespace::supported()) {
    FAIL("this test needs network namespaces: `ip netns list` (iproute2) failed or is missing");
  }
}

}  // namespace ota::test
