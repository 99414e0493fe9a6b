#include "transfer_acks.hpp"

#include <algorithm>

#include "ota/core/codec.hpp"

namespace ota::client::transfer_detail {
namespace {

std::string ms_text(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

AckListener::AckListener(AgentDirectory& agents, const TransferPlan& plan,
                         const std::function<void(uint64_t)>& progress)
    : agents_(agents), plan_(plan) {
  agents_.set_ack_listener(plan_.ecu_id, [this, &progress](const v1::ChunkAck& ack) {
    if (ack.transfer_id() != plan_.transfer_id) return;
    uint64_t acked = 0;
    bool counted = false;
    {
      std::lock_guard<std::mutex> lock(state_.mu);
      counted = take(ack);
      acked = state_.acked;
    }
    state_.cv.notify_all();
    if (counted && progress) progress(acked);
  });
}

AckListener::~AckListener() { agents_.clear_ack_listener(plan_.ecu_id); }

// With state_.mu held. Returns whether the ack moved the transfer.
bool AckListener::take(const v1::ChunkAck& ack) {
  if (!state_.violation.is_ok()) return false;
  const AckMeaning meaning = ack_meaning(ack);
  const uint64_t next = ack.next_offset();
  const uint64_t total = plan_.target.payload_size();
  // Beyond the payload is wrong whenever it comes. Otherwise, acks from before this run's
  // StartTransfer was answered (of chunks a client that ran before this one sent) say nothing about
  // what this run sent: they are not counted.
  if (meaning != AckMeaning::kFailed && next > total) {
    return violate("ack with next_offset " + std::to_string(next) + " beyond the payload of " +
                   std::to_string(total) + " bytes");
  }
  if (!state_.listening || !state_.failure.is_ok()) return false;
  if (meaning == AckMeaning::kFailed) {
    state_.failure = codec::from_wire(ack.error()).with_context(plan_.ecu_id);
    return false;
  }
  if (next > state_.sent_end) {
    return violate("ack with next_offset " + std::to_string(next) + " beyond the " +
                   std::to_string(state_.sent_end) + " bytes sent");
  }
  if (meaning == AckMeaning::kResend) {
    state_.resend_requested = true;
    state_.refusal = ack.error().message();
    state_.acked = next;
  } else if (next > state_.acked) {
    state_.advanced += next - state_.acked;
    state_.acked = next;
  }
  return true;
}

bool AckListener::violate(const std::string& what) {
  state_.violation = Status(Code::kCorrupt, plan_.ecu_id + ": protocol error: " + what);
  state_.failure = state_.violation;
  return false;
}

void Bounds::restart_window(uint64_t advanced, uint64_t acked, Clock::time_point now) {
  window_start_ = now;
  window_advanced_ = advanced;
  window_acked_ = acked;
}

Status Bounds::check(uint64_t advanced, uint64_t acked, Clock::time_point now) {
  const uint64_t total = plan_.target.payload_size();
  if (now >= plan_.deadline) {
    return Status(Code::kTimeout, "the campaign's deadline passed at byte " + std::to_string(acked) + " of " +
                                      std::to_string(total));
  }
  if (plan_.min_rate == 0 || now < window_start_ + plan_.rate_window) return Status::ok();
  const uint64_t floor = plan_.min_rate * static_cast<uint64_t>(plan_.rate_window.count()) / 1000;
  const uint64_t rest = total - std::min(total, window_acked_);
  const uint64_t need = std::max<uint64_t>(1, std::min(floor, rest));
  const uint64_t got = advanced - window_advanced_;
  if (got < need) {
    return Status(Code::kTimeout, "too slow: " + std::to_string(got) + " bytes acknowledged in " +
                                      ms_text(now - window_start_) + ", below the floor of " +
                                      std::to_string(plan_.min_rate) + " bytes/s");
  }
  restart_window(advanced, acked, now);
  return Status::ok();
}

Clock::time_point Bounds::next_check() const {
  return plan_.min_rate ? std::min(plan_.deadline, window_start_ + plan_.rate_window) : plan_.deadline;
}

}  // namespace ota::client::transfer_detail
