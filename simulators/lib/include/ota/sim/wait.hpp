// Polling with a deadline, for external state that cannot signal (files, other processes).
// Tests wait for MQTT messages with a condition variable instead.
#pragma once

#include <chrono>
#include <functional>

namespace ota::sim {

// Calls pred() until it returns true (-> true) or `deadline` has passed (-> false, after one
// last call). Sleeps `poll` between calls.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline,
                std::chrono::milliseconds poll = std::chrono::milliseconds(5));

}  // namespace ota::sim
