#include "inbox.hpp"

namespace ota::agent_impl {

void Inbox::start() {
  worker_ = std::thread([this] { run(); });
}

void Inbox::deliver(Inbound&& m) {
  std::unique_lock<std::mutex> lock(queue_mu_);
  if (stop_requested_) return;
  if (busy_ || !queue_.empty() || m.kind != Inbound::Kind::kData) {
    queue_.push_back(std::move(m));
    lock.unlock();
    queue_changed_.notify_all();
    return;
  }
  busy_ = true;
  lock.unlock();
  handle_(m);
  lock.lock();
  busy_ = false;
  // Only a queued message (the worker) or stop() waits for this: waking the worker for nothing
  // after every chunk cost two futex calls and a context switch per chunk.
  const bool wake = !queue_.empty() || stop_requested_;
  lock.unlock();
  if (wake) queue_changed_.notify_all();
}

void Inbox::run() {
  for (;;) {
    Inbound m;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_changed_.wait(lock, [this] { return stop_requested_ || (!queue_.empty() && !busy_); });
      if (stop_requested_) return;
      m = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    handle_(m);
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      busy_ = false;
    }
    queue_changed_.notify_all();
  }
}

void Inbox::wait_for_stop() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  stop_requested_cv_.wait(lock, [this] { return stop_requested_; });
}

void Inbox::stop() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stop_requested_ = true;
  }
  queue_changed_.notify_all();
  stop_requested_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  // A message being handled on a delivering thread finishes before stop() returns.
  std::unique_lock<std::mutex> lock(queue_mu_);
  queue_changed_.wait(lock, [this] { return !busy_; });
}

}  // namespace ota::agent_impl
