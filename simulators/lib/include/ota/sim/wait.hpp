// Polling with a deadline, for external state that cannot signal (files, other processes).
// Tests wait for MQTT messages with a condition variable instead.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace ota::sim {

// Calls pred() until it returns true (-> true) or `deadline` has passed (-> false, after one
// last call). Sleeps `poll` between calls.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline,
                std::chrono::milliseconds poll = std::chrono::milliseconds(5));

// Waits until the file at `path` exists and contains `needle` (e.g. a child's log line
// "serving on"). Polls every `poll`; false at the deadline.
bool wait_for_file_contains(const std::string& path, const std::string& needle,
                            std::chrono::milliseconds deadline,
                            std::chrono::milliseconds poll = std::chrono::milliseconds(10));

}  // namespace ota::sim
