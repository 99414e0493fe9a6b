#include "clock.hpp"

#include "ota/core/codec.hpp"

namespace ota::agent_impl {

void PendingStatus::set(Status st) {
  {
    std::lock_guard<std::mutex> lock(value_mu_);
    if (value_) return;
    value_ = std::move(st);
  }
  value_set_or_woken_.notify_all();
}

bool PendingStatus::wait(const std::function<bool()>& give_up) {
  std::unique_lock<std::mutex> lock(value_mu_);
  value_set_or_woken_.wait(lock, [&] { return value_.has_value() || give_up(); });
  return value_.has_value();
}

bool PendingStatus::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(value_mu_);
  return value_set_or_woken_.wait_for(lock, timeout, [&] { return value_.has_value(); });
}

void PendingStatus::wake() {
  // Taking the lock orders this wake after a waiter's check of give_up, or before it: never lost.
  { std::lock_guard<std::mutex> lock(value_mu_); }
  value_set_or_woken_.notify_all();
}

Status PendingStatus::value() const {
  std::lock_guard<std::mutex> lock(value_mu_);
  return value_ ? *value_ : Status(Code::kInternal, "no value yet");
}

int64_t SystemAgentClock::now() const { return trust::SystemClock().now(); }

uint64_t SystemAgentClock::unix_ms() const { return codec::now_ms(); }

std::chrono::steady_clock::time_point SystemAgentClock::steady_now() const {
  return std::chrono::steady_clock::now();
}

bool SystemAgentClock::wait(PendingStatus& pending, std::chrono::milliseconds timeout) const {
  return pending.wait_for(timeout);
}

}  // namespace ota::agent_impl
