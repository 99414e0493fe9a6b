// ManualClock: the agent's clock, moved by the test. Time stands still until advance(); a health
// check waiting on it ends when the test advances past its deadline, or when the check answers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "clock.hpp"

namespace ota::agent_test {

class ManualClock final : public agent_impl::AgentClock {
 public:
  explicit ManualClock(int64_t unix_seconds) : unix_ms_(unix_seconds * 1000) {}

  int64_t now() const override { return unix_ms_.load() / 1000; }
  uint64_t unix_ms() const override { return static_cast<uint64_t>(unix_ms_.load()); }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(unix_ms_.load()));
  }

  bool wait(agent_impl::PendingStatus& pending, std::chrono::milliseconds timeout) const override {
    const int64_t deadline = unix_ms_.load() + timeout.count();
    {
      std::lock_guard<std::mutex> lock(waiters_mu_);
      waiters_.push_back({&pending, deadline});
    }
    waiters_changed_.notify_all();
    // Never called with waiters_mu_ held: advance() takes it, then the pending's own lock.
    const bool set = pending.wait([&] { return unix_ms_.load() >= deadline; });
    {
      std::lock_guard<std::mutex> lock(waiters_mu_);
      for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
        if (it->pending == &pending) {
          waiters_.erase(it);
          break;
        }
      }
    }
    waiters_changed_.notify_all();
    return set;
  }

  // Moves time on and wakes the waits it ends.
  void advance(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(waiters_mu_);
    unix_ms_ += d.count();
    for (const Waiter& w : waiters_) w.pending->wake();
  }

  void set_unix_seconds(int64_t t) {
    std::lock_guard<std::mutex> lock(waiters_mu_);
    unix_ms_ = t * 1000;
    for (const Waiter& w : waiters_) w.pending->wake();
  }

  // Blocks (real time, up to `deadline`) until `n` waits are in progress; returns their deadlines
  // as milliseconds from now on this clock.
  std::vector<int64_t> wait_for_waiters(size_t n, std::chrono::milliseconds deadline) const {
    std::unique_lock<std::mutex> lock(waiters_mu_);
    waiters_changed_.wait_for(lock, deadline, [&] { return waiters_.size() >= n; });
    std::vector<int64_t> out;
    for (const Waiter& w : waiters_) out.push_back(w.deadline - unix_ms_.load());
    return out;
  }

 private:
  struct Waiter {
    agent_impl::PendingStatus* pending;
    int64_t deadline;
  };
  std::atomic<int64_t> unix_ms_;
  mutable std::mutex waiters_mu_;  // guards waiters_; held by advance() while it wakes them
  mutable std::condition_variable waiters_changed_;
  mutable std::vector<Waiter> waiters_;
};

}  // namespace ota::agent_test
