// TransportInbox: what one ota::Transport saw, for tests: its messages and connection changes,
// recorded by its callbacks (on the transport's thread) and waited for with a deadline.
//
//   ota::test::TransportInbox inbox;
//   transport->on_message([&](ota::TransportMessage&& m) { inbox.add(std::move(m)); });
//   transport->on_connection([&](bool up) { inbox.add_connection(up); });
//   auto m = inbox.wait_for_topic("ota/v1/ecu/ecu-a/up/hello", 5s);
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ota/core/transport.hpp"

namespace ota::test {

class TransportInbox {
 public:
  void add(TransportMessage&& m) {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(std::move(m));
    cv_.notify_all();
  }
  void add_connection(bool up) {
    std::lock_guard<std::mutex> lock(mu_);
    connections_.push_back(up);
    cv_.notify_all();
  }

  std::optional<TransportMessage> wait_for(const std::function<bool(const TransportMessage&)>& pred,
                                           std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<TransportMessage> found;
    cv_.wait_for(lock, deadline, [&] {
      for (const auto& m : messages_) {
        if (pred(m)) {
          found = m;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::optional<TransportMessage> wait_for_topic(const std::string& topic,
                                                 std::chrono::milliseconds deadline) {
    return wait_for([&](const TransportMessage& m) { return m.topic == topic; }, deadline);
  }
  std::optional<TransportMessage> wait_for_payload(const std::string& topic, const std::string& payload,
                                                   std::chrono::milliseconds deadline) {
    return wait_for([&](const TransportMessage& m) { return m.topic == topic && m.payload == payload; },
                    deadline);
  }

  // The messages on `topic` in arrival order, once there are `n` of them (fewer at the deadline).
  std::vector<TransportMessage> wait_for_count(const std::string& topic, std::size_t n,
                                               std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, deadline, [&] { return count_locked(topic) >= n; });
    std::vector<TransportMessage> out;
    for (const auto& m : messages_) {
      if (m.topic == topic) out.push_back(m);
    }
    return out;
  }

  // Waits for a connection change to `up` recorded at index `from` or later; returns its index.
  std::optional<std::size_t> wait_connection(bool up, std::size_t from, std::chrono::milliseconds deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<std::size_t> found;
    cv_.wait_for(lock, deadline, [&] {
      for (std::size_t i = from; i < connections_.size(); ++i) {
        if (connections_[i] == up) {
          found = i;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::size_t count_with_prefix(const std::string& prefix) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& m : messages_) n += m.topic.compare(0, prefix.size(), prefix) == 0 ? 1 : 0;
    return n;
  }
  std::size_t count_payload(const std::string& payload) const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<std::size_t>(std::count_if(
        messages_.begin(), messages_.end(), [&](const TransportMessage& m) { return m.payload == payload; }));
  }
  std::vector<bool> connections() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connections_;
  }
  // The topics of every message so far, in arrival order.
  std::vector<std::string> topics() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& m : messages_) out.push_back(m.topic);
    return out;
  }

 private:
  std::size_t count_locked(const std::string& topic) const {
    return static_cast<std::size_t>(std::count_if(
        messages_.begin(), messages_.end(), [&](const TransportMessage& m) { return m.topic == topic; }));
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TransportMessage> messages_;
  std::vector<bool> connections_;
};

}  // namespace ota::test
