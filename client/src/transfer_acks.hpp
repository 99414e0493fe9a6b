// Internal to run_transfer (transfer.cpp): what the agent's acknowledgements said, and the time
// bounds a transfer keeps whatever the agent does.
//
// AckListener routes the ECU's ChunkAcks into an AckState on the transport's callback thread and
// judges them: an ack beyond the payload (at any time), or beyond the bytes sent (once the run's
// StartTransfer was answered), is a protocol violation that fails the transfer; the agent cannot
// hold bytes it was never sent. Bounds and wait_acks run on the sending thread, with the
// AckState's lock held by the caller.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "agent_directory.hpp"
#include "ota/core/status.hpp"
#include "transfer.hpp"

namespace ota::client::transfer_detail {

using Clock = std::chrono::steady_clock;

// What the acknowledgements said so far; shared between the sender and the transport's callback
// thread, under mu.
struct AckState {
  std::mutex mu;
  std::condition_variable cv;
  bool listening = false;         // acks count once a StartTransfer of this run was answered
  uint64_t acked = 0;             // the agent's next_offset
  uint64_t advanced = 0;          // sum of every forward move of acked (the progress floor's measure)
  uint64_t sent_end = 0;          // end of the furthest chunk published, or the resume offset
  bool resend_requested = false;  // the agent refused a chunk: send again from acked
  std::string refusal;            // the last refusal's message
  Status failure;                 // the agent gave up the transfer, or broke the protocol
  Status violation;               // the agent broke the protocol: never cleared
};

// Routes the ECU's acknowledgements into an AckState while a transfer runs. `plan` and `progress`
// must outlive it.
class AckListener {
 public:
  AckListener(AgentDirectory& agents, const TransferPlan& plan,
              const std::function<void(uint64_t)>& progress);
  // Waits for a listener that is running: nothing calls into this object afterwards.
  ~AckListener();
  AckListener(const AckListener&) = delete;
  AckListener& operator=(const AckListener&) = delete;

  AckState& state() { return state_; }

 private:
  bool take(const v1::ChunkAck& ack);
  bool violate(const std::string& what);

  AgentDirectory& agents_;
  const TransferPlan& plan_;
  AckState state_;
};

// The time bounds of a transfer: the campaign's deadline and the progress floor, measured in
// consecutive windows from the start of the run (a resync does not restart them: an agent that
// answers StartTransfer but acknowledges nothing gains no time). Its errors (kTimeout) do not name
// the ECU.
class Bounds {
 public:
  explicit Bounds(const TransferPlan& plan) : plan_(plan) {}

  // A new floor window from `now`, measuring progress from `advanced`; `acked` is where it starts.
  void restart_window(uint64_t advanced, uint64_t acked, Clock::time_point now);
  // kTimeout when the deadline passed, or when a floor window ended with less progress than the
  // floor asks (the rest of the payload at most); a window that passed rolls on.
  Status check(uint64_t advanced, uint64_t acked, Clock::time_point now);
  // When check() must run next.
  Clock::time_point next_check() const;

 private:
  const TransferPlan& plan_;
  Clock::time_point window_start_ = Clock::now();
  uint64_t window_advanced_ = 0;
  uint64_t window_acked_ = 0;
};

// Why a wait for acknowledgements ended.
enum class Wake { kReady, kStalled, kBounded };

// Waits until `ready` (checked first), stall_timeout without it, or a bound of `bounds` failing
// (its Status in *bound). Checks the bounds whenever they are due, however the waits end.
template <class Ready>
Wake wait_acks(std::unique_lock<std::mutex>& lock, AckState& acks, Bounds& bounds,
               std::chrono::milliseconds stall_timeout, Ready ready, Status* bound) {
  const auto stall_at = Clock::now() + stall_timeout;
  for (;;) {
    if (ready()) return Wake::kReady;
    const auto now = Clock::now();
    if (now >= bounds.next_check()) {
      *bound = bounds.check(acks.advanced, acks.acked, now);
      if (!bound->is_ok()) return Wake::kBounded;
    }
    if (now >= stall_at) return Wake::kStalled;
    acks.cv.wait_until(lock, std::min(stall_at, bounds.next_check()), ready);
  }
}

}  // namespace ota::client::transfer_detail
