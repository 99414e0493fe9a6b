// Time as the agent sees it, behind one seam: health-check deadlines, metadata expiry, progress
// pacing and message timestamps. The Agent uses SystemAgentClock; tests give it a clock they move.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "ota/core/status.hpp"
#include "ota/core/trust.hpp"

namespace ota::agent_impl {

// A Status produced on another thread (a health check), awaited with a deadline. Shared between the
// producer and the waiter (the producer may outlive a waiter that gave up). Thread-safe.
class PendingStatus {
 public:
  // Sets the value (the first call wins) and wakes the waiter.
  void set(Status st);
  // Blocks until the value is set or `give_up()` returns true; `give_up` is checked under this
  // object's lock at the start and after every wake(). True when the value is set.
  bool wait(const std::function<bool()>& give_up);
  // Blocks until the value is set or `timeout` of real time has passed. True when set.
  bool wait_for(std::chrono::milliseconds timeout);
  // Wakes a waiter so that it checks `give_up` again (a clock moved).
  void wake();
  // The value; only after a wait that returned true.
  Status value() const;

 private:
  mutable std::mutex value_mu_;  // guards value_
  std::condition_variable value_set_or_woken_;
  std::optional<Status> value_;
};

class AgentClock : public trust::Clock {
 public:
  // trust::Clock::now(): unix seconds; signed metadata expires against it.
  // Unix milliseconds: the timestamps of published messages.
  virtual uint64_t unix_ms() const = 0;
  // Monotonic time: how often progress is reported.
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  // Blocks until `pending` is set or `timeout` has passed on this clock. True when set.
  virtual bool wait(PendingStatus& pending, std::chrono::milliseconds timeout) const = 0;
};

class SystemAgentClock final : public AgentClock {
 public:
  int64_t now() const override;
  uint64_t unix_ms() const override;
  std::chrono::steady_clock::time_point steady_now() const override;
  bool wait(PendingStatus& pending, std::chrono::milliseconds timeout) const override;
};

}  // namespace ota::agent_impl
