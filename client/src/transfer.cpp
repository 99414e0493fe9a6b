#include "transfer.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/topics.hpp"
#include "transfer_acks.hpp"

namespace ota::client {
namespace {

using transfer_detail::AckListener;
using transfer_detail::AckState;
using transfer_detail::Bounds;
using transfer_detail::Clock;
using transfer_detail::Wake;

constexpr const char* kLog = "transfer";
static_assert(kMaxChunkSize == codec::kMaxChunkSize, "the sane range ends at the protocol's limit");

// Why a pass of the sender ended before the end of the payload.
enum class Interruption {
  kNone,
  kResend,       // the agent refused a chunk: a new pass from its next_offset
  kStalled,      // no acknowledgement within stall_timeout: resynchronise
  kBounded,      // the deadline passed or progress fell below the floor
  kCancelled,    // the caller's cancel flag
  kAgentFailed,  // the agent gave up the transfer or broke the protocol
};

// Cuts the payload into chunks, skips what the agent already holds, and blocks while the window is
// full. Each chunk is built in one buffer: the bytes are read (or decompressed) straight behind the
// room for its header, which is written in front of them once the CRC is known, and published from
// there. The next chunk is read while the previous one waits for the window. When it must stop before
// the end it fails the byte source with a Status (all a decompressor understands) and says why in
// interruption().
class ChunkSender : public ByteSink {
 public:
  ChunkSender(Transport& t, const TransferPlan& plan, AckState& acks, Bounds& bounds,
              const std::atomic<bool>& cancel, TransferStats& stats, uint64_t start, uint64_t stream_pos)
      : t_(t),
        plan_(plan),
        acks_(acks),
        bounds_(bounds),
        cancel_(cancel),
        stats_(stats),
        topic_(topics::ecu(plan.ecu_id, topics::Leaf::kData)),
        start_(start),
        pos_(stream_pos),
        room_(codec::chunk_header_bound(plan.transfer_id.size())) {}

  // The stream path (a decompressed payload): bytes arrive in pieces of any size.
  Status write(const uint8_t* data, size_t n) override {
    while (n > 0) {
      if (pos_ < start_) {  // bytes the agent already has
        size_t skip = static_cast<size_t>(std::min<uint64_t>(n, start_ - pos_));
        pos_ += skip;
        data += skip;
        n -= skip;
        continue;
      }
      size_t take = std::min<size_t>(n, plan_.chunk_size - fill_);
      std::memcpy(buffer() + room_ + fill_, data, take);
      fill_ += take;
      data += take;
      n -= take;
      pos_ += take;
      if (fill_ == plan_.chunk_size || pos_ == plan_.target.payload_size())
        OTA_RETURN_IF_ERROR(flush_chunk());
    }
    return Status::ok();
  }

  // The file path: reads the next chunk at pos_ (a chunk boundary) straight into place.
  Status send_next_from(RandomReader& file) {
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(plan_.chunk_size, plan_.target.payload_size() - pos_));
    OTA_RETURN_IF_ERROR(file.read_at(pos_, buffer() + room_, n));
    fill_ = n;
    pos_ += n;
    return flush_chunk();
  }

  bool done() const { return pos_ >= plan_.target.payload_size(); }
  Interruption interruption() const { return interruption_; }

  Status finish() {
    if (fill_ > 0) OTA_RETURN_IF_ERROR(flush_chunk());
    return Status::ok();
  }

 private:
  Status flush_chunk() {
    codec::ChunkView c;
    c.transfer_id = plan_.transfer_id;
    c.offset = pos_ - fill_;
    c.data = std::string_view(wire_.data() + room_, fill_);
    c.crc32c = crc32c(buffer() + room_, fill_);
    c.last = c.offset + fill_ == plan_.target.payload_size();
    uint8_t header[256 + 64];
    if (room_ > sizeof header) return Status(Code::kInvalidArgument, "transfer id too long");
    const size_t h = codec::encode_chunk_header(c, header);
    const size_t msg = room_ - h;
    std::memcpy(buffer() + msg, header, h);

    const uint64_t window_bytes = uint64_t{plan_.window} * plan_.chunk_size;
    {
      std::unique_lock<std::mutex> lock(acks_.mu);
      Status bound;
      const Wake wake = wait_acks(
          lock, acks_, bounds_, plan_.stall_timeout,
          [&] {
            return acks_.resend_requested || !acks_.failure.is_ok() || cancel_ ||
                   c.offset < acks_.acked + window_bytes;
          },
          &bound);
      if (!acks_.failure.is_ok()) return interrupt(Interruption::kAgentFailed, acks_.failure);
      if (cancel_) return interrupt(Interruption::kCancelled, Status(Code::kAborted, "transfer cancelled"));
      if (acks_.resend_requested) {
        return interrupt(Interruption::kResend,
                         Status(Code::kAborted, "the agent refused a chunk; resending from its offset"));
      }
      if (wake == Wake::kBounded) return interrupt(Interruption::kBounded, bound);
      if (wake == Wake::kStalled) {
        return interrupt(Interruption::kStalled,
                         Status(Code::kTimeout, "no acknowledgement for " +
                                                    std::to_string(plan_.stall_timeout.count()) + " ms"));
      }
      // Before the chunk leaves: an ack of it may come back before publish returns.
      acks_.sent_end = std::max<uint64_t>(acks_.sent_end, c.offset + fill_);
    }
    wire_.resize(room_ + fill_);
    // The buffer goes to the transport, which sends and keeps it until the broker's PUBACK without
    // copying it; the next chunk gets a new one.
    OTA_RETURN_IF_ERROR(t_.publish_owned(topic_, std::move(wire_), msg, 1, false));
    wire_ = std::string();
    stats_.bytes_sent += fill_;
    if (plan_.on_sent) plan_.on_sent(fill_);
    fill_ = 0;
    return Status::ok();
  }

  Status interrupt(Interruption why, Status st) {
    interruption_ = why;
    return st;
  }

  Transport& t_;
  const TransferPlan& plan_;
  AckState& acks_;
  Bounds& bounds_;
  const std::atomic<bool>& cancel_;
  TransferStats& stats_;
  std::string topic_;
  uint64_t start_;
  uint64_t pos_ = 0;
  size_t room_;  // bytes reserved in front of the data for the header
  // [room for the header][chunk data]; allocated for each chunk, handed to the transport with it.
  uint8_t* buffer() {
    if (wire_.size() != room_ + plan_.chunk_size) wire_.resize(room_ + plan_.chunk_size);
    return reinterpret_cast<uint8_t*>(&wire_[0]);
  }
  std::string wire_;
  size_t fill_ = 0;  // data bytes in wire_
  Interruption interruption_ = Interruption::kNone;
};

Status push_payload(const TransferPlan& plan, ChunkSender& sender) {
  auto file = FileReader::open(plan.payload_path);
  if (!file) return file.status();
  if (plan.source == PayloadSource::kCompressed) {
    // Streaming decompression; bytes before `start` are produced and skipped by the sender.
    OTA_RETURN_IF_ERROR(delta::apply_full(**file, sender));
    return sender.finish();
  }
  if ((*file)->size() != plan.target.payload_size()) {
    return Status(Code::kCorrupt, plan.payload_path + " has " + std::to_string((*file)->size()) +
                                      " bytes, the payload should have " +
                                      std::to_string(plan.target.payload_size()));
  }
  while (!sender.done()) OTA_RETURN_IF_ERROR(sender.send_next_from(**file));
  return Status::ok();
}

// The agent's answer to StartTransfer.
struct StartAnswer {
  enum Kind {
    kReady,       // resume_offset: what it holds durably of this transfer
    kUnanswered,  // no answer in time (error): a resync may try again
    kRefused,     // it answered with an error (error)
  } kind = kReady;
  uint64_t resume_offset = 0;
  Status error;
};

StartAnswer start_transfer(AgentDirectory& agents, const TransferPlan& plan,
                           std::chrono::milliseconds timeout) {
  v1::Command cmd;
  cmd.set_campaign_id(plan.campaign_id);
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id(plan.transfer_id);
  *st->mutable_target() = plan.target;
  *st->mutable_root_updates() = plan.root_updates;
  st->set_chunk_size(plan.chunk_size);
  st->set_window(plan.window);
  StartAnswer answer;
  auto r = agents.call(plan.ecu_id, cmd, timeout);
  if (!r) {
    const Code code = r.status().code();
    answer.kind = code == Code::kTimeout || code == Code::kUnavailable ? StartAnswer::kUnanswered
                                                                       : StartAnswer::kRefused;
    answer.error = r.status();
  } else if (r->outcome() != v1::OUTCOME_OK) {
    answer.kind = StartAnswer::kRefused;
    answer.error = codec::from_wire(r->error()).with_context(plan.ecu_id + ": start transfer");
  } else {
    answer.resume_offset = r->transfer_ready().resume_offset();
  }
  return answer;
}

// The chunk size and window must lie in the sane range whatever the agent declared.
Status check_limits(const TransferPlan& plan) {
  if (plan.chunk_size < kMinChunkSize || plan.chunk_size > kMaxChunkSize) {
    return Status(Code::kInvalidArgument,
                  plan.ecu_id + ": chunk size of " + std::to_string(plan.chunk_size) + " bytes is outside " +
                      std::to_string(kMinChunkSize) + ".." + std::to_string(kMaxChunkSize) +
                      " (the campaign's chunk_size, lowered to the agent's declared max_chunk_size)");
  }
  if (plan.window < kMinWindow || plan.window > kMaxWindow) {
    return Status(Code::kInvalidArgument, plan.ecu_id + ": window of " + std::to_string(plan.window) +
                                              " chunks is outside " + std::to_string(kMinWindow) + ".." +
                                              std::to_string(kMaxWindow) +
                                              " (the campaign's window, lowered to the agent's declared "
                                              "max_window)");
  }
  return Status::ok();
}

// One run_transfer: rounds of StartTransfer (when needed), a pass of chunks and the wait for the
// last ack, until the agent holds every byte or a bound ends it.
class TransferRun {
 public:
  TransferRun(AgentDirectory& agents, Transport& transport, const TransferPlan& plan,
              const std::atomic<bool>& cancel, TransferStats& stats,
              const std::function<void(uint64_t)>& progress)
      : agents_(agents),
        transport_(transport),
        plan_(plan),
        cancel_(cancel),
        stats_(stats),
        listener_(agents, plan, progress),
        acks_(listener_.state()),
        bounds_(plan) {}

  Status run() {
    OTA_RETURN_IF_ERROR(check_limits(plan_));
    run_start_ = Clock::now();
    bounds_.restart_window(0, 0, run_start_);
    bool need_start = true;
    for (int round = 0;; ++round) {
      if (cancel_) return Status(Code::kAborted, "transfer cancelled");
      if (round > plan_.max_resyncs) return out_of_rounds();
      End end;
      if (need_start) {
        end = start();
        if (end.kind == End::kRetry) continue;  // an unanswered StartTransfer: another round
        if (end.kind == End::kFail) return end.status;
        need_start = false;
      }
      end = send_round();
      switch (end.kind) {
        case End::kComplete:
          return Status::ok();
        case End::kFail:
          return end.status;
        case End::kRewind:
          ++stats_.rewinds;
          continue;
        case End::kRetry:
          OTA_LOGW(kLog, "%s: %s; resynchronising", plan_.ecu_id.c_str(), end.status.message().c_str());
          ++stats_.resyncs;
          need_start = true;
          continue;
      }
    }
  }

 private:
  // How a step of a round ended.
  struct End {
    enum Kind {
      kComplete,  // every byte acknowledged
      kRewind,    // a CORRUPT ack: send again from the agent's next_offset
      kRetry,     // stalled, or StartTransfer unanswered: a new StartTransfer
      kFail,      // status says why
    } kind = kComplete;
    Status status;
  };
  static End fail(Status st) { return End{End::kFail, std::move(st)}; }

  // StartTransfer, waiting no longer than the deadline and the current floor window allow.
  End start() {
    auto now = Clock::now();
    if (now >= plan_.deadline) {  // a later group's transfer after the deadline: not even asked
      std::lock_guard<std::mutex> lock(acks_.mu);
      return fail(bounds_.check(acks_.advanced, acks_.acked, now).with_context(plan_.ecu_id));
    }
    std::chrono::milliseconds timeout = plan_.command_timeout;
    if (plan_.deadline != Clock::time_point::max()) timeout = std::min(timeout, until(plan_.deadline, now));
    if (plan_.min_rate)
      timeout = std::min(timeout, std::max(plan_.stall_timeout, until(bounds_.next_check(), now)));
    StartAnswer answer = start_transfer(agents_, plan_, std::max(timeout, std::chrono::milliseconds(1)));
    now = Clock::now();
    if (answer.kind == StartAnswer::kRefused) return fail(answer.error);
    std::lock_guard<std::mutex> lock(acks_.mu);
    if (answer.kind == StartAnswer::kUnanswered) {
      last_ = "StartTransfer unanswered";
      OTA_LOGW(kLog, "%s: %s; sending StartTransfer again", plan_.ecu_id.c_str(),
               answer.error.message().c_str());
      if (Status st = bounds_.check(acks_.advanced, acks_.acked, now); !st.is_ok())
        return fail(st.with_context(plan_.ecu_id + ": StartTransfer unanswered"));
      last_error_ = answer.error;
      return End{End::kRetry, answer.error};
    }
    if (!acks_.violation.is_ok()) return fail(acks_.violation);
    start_ = answer.resume_offset;
    if (start_ > plan_.target.payload_size()) {
      return fail(Status(Code::kCorrupt, plan_.ecu_id + ": protocol error: resume offset " +
                                             std::to_string(start_) + " beyond the payload of " +
                                             std::to_string(plan_.target.payload_size()) + " bytes"));
    }
    if (!answered_) {
      stats_.first_resume_offset = start_;
      bounds_.restart_window(0, start_, run_start_);  // what is left to send counts from here
    }
    answered_ = true;
    acks_.listening = true;
    acks_.acked = start_;
    acks_.sent_end = std::max(acks_.sent_end, start_);
    acks_.resend_requested = false;
    acks_.failure = Status::ok();
    return End{};
  }

  // A pass of chunks from start_ (when bytes are missing), then the wait for the last ack.
  End send_round() {
    if (start_ < plan_.target.payload_size()) {
      // Chunks are aligned to chunk_size: restart at the chunk boundary at or below `start`.
      const uint64_t aligned = start_ - start_ % plan_.chunk_size;
      // A file is read from `aligned` on; a decompressed stream starts at 0 and the sender skips.
      const uint64_t stream_pos = plan_.source == PayloadSource::kFile ? aligned : 0;
      ChunkSender sender(transport_, plan_, acks_, bounds_, cancel_, stats_, aligned, stream_pos);
      Status st = push_payload(plan_, sender);
      switch (sender.interruption()) {
        case Interruption::kResend:
          return rewind();
        case Interruption::kStalled:
          last_ = "stalled";
          return End{End::kRetry, st};
        case Interruption::kAgentFailed:
          return fail(st);  // names the ECU already
        default:
          if (!st.is_ok()) return fail(st.with_context(plan_.ecu_id));
          break;
      }
    }
    return wait_for_last_ack();
  }

  End rewind() {
    std::lock_guard<std::mutex> lock(acks_.mu);
    start_ = acks_.acked;
    acks_.resend_requested = false;
    last_ = "refused";
    return End{End::kRewind, Status()};
  }

  // After the last chunk went out: what the acknowledgements say within stall_timeout.
  End wait_for_last_ack() {
    const uint64_t total = plan_.target.payload_size();
    std::unique_lock<std::mutex> lock(acks_.mu);
    Status bound;
    const Wake wake = wait_acks(
        lock, acks_, bounds_, plan_.stall_timeout,
        [&] { return acks_.acked >= total || acks_.resend_requested || !acks_.failure.is_ok() || cancel_; },
        &bound);
    if (!acks_.failure.is_ok()) return fail(acks_.failure);
    if (cancel_) return fail(Status(Code::kAborted, "transfer cancelled"));
    if (acks_.acked >= total) return End{};
    if (acks_.resend_requested) {
      lock.unlock();
      return rewind();
    }
    if (wake == Wake::kBounded) return fail(bound.with_context(plan_.ecu_id));
    last_ = "stalled";
    return End{End::kRetry, Status(Code::kTimeout, "no final acknowledgement for " +
                                                       std::to_string(plan_.stall_timeout.count()) + " ms")};
  }

  // Every round was used: the last one says what the agent kept doing.
  Status out_of_rounds() {
    std::lock_guard<std::mutex> lock(acks_.mu);
    const std::string rounds = std::to_string(plan_.max_resyncs + 1) + " rounds";
    if (last_ == "refused") {
      return Status(Code::kHashMismatch, plan_.ecu_id + ": the agent refused chunks " +
                                             std::to_string(stats_.rewinds) + " times in " + rounds +
                                             " (last: " + acks_.refusal + ")");
    }
    if (last_ == "StartTransfer unanswered") {
      return Status(Code::kTimeout,
                    plan_.ecu_id + ": StartTransfer unanswered in " + rounds + ": " + last_error_.message());
    }
    return Status(Code::kTimeout, plan_.ecu_id + ": transfer stalled at byte " + std::to_string(acks_.acked) +
                                      " after " + rounds);
  }

  static std::chrono::milliseconds until(Clock::time_point t, Clock::time_point now) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::max(t, now) - now);
  }

  AgentDirectory& agents_;
  Transport& transport_;
  const TransferPlan& plan_;
  const std::atomic<bool>& cancel_;
  TransferStats& stats_;
  AckListener listener_;
  AckState& acks_;
  Bounds bounds_;
  Clock::time_point run_start_;
  uint64_t start_ = 0;     // where the next pass starts (the agent's resume or next offset)
  bool answered_ = false;  // a StartTransfer was answered
  std::string last_;       // how the last round ended, for out_of_rounds()
  Status last_error_;      // the last unanswered StartTransfer's error
};

}  // namespace

AckMeaning ack_meaning(const v1::ChunkAck& ack) {
  if (!ack.has_error() || ack.error().code() == v1::ERROR_CODE_OK) return AckMeaning::kProgress;
  return ack.error().code() == v1::ERROR_CODE_CORRUPT ? AckMeaning::kResend : AckMeaning::kFailed;
}

std::chrono::milliseconds derived_campaign_timeout(const v1::Campaign& campaign, uint64_t min_rate) {
  uint64_t bytes = 0;
  for (const auto& t : campaign.targets()) bytes += std::max(t.size(), t.has_delta() ? t.delta().size() : 0);
  const uint64_t ms = bytes / std::max<uint64_t>(min_rate, 1) * 1000;
  return kBaseCampaignTime + std::chrono::milliseconds(std::min<uint64_t>(ms, uint64_t{1} << 50));
}

Status run_transfer(AgentDirectory& agents, Transport& transport, const TransferPlan& plan,
                    const std::atomic<bool>& cancel, TransferStats* stats,
                    const std::function<void(uint64_t)>& progress) {
  return TransferRun(agents, transport, plan, cancel, *stats, progress).run();
}

}  // namespace ota::client
