#include "transfer.hpp"

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

namespace ota::client {
namespace {

constexpr const char* kLog = "transfer";

// What the acknowledgements said so far; shared between the sender and the transport's callback
// thread.
struct AckState {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t acked = 0;             // the agent's next_offset
  bool resend_requested = false;  // the agent refused a chunk: send again from acked
  Status failure;                 // the agent gave up the transfer
};

// Why a pass of the sender ended before the end of the payload.
enum class Interruption {
  kNone,
  kResend,       // the agent refused a chunk: a new pass from its next_offset
  kStalled,      // no acknowledgement within stall_timeout: resynchronise
  kCancelled,    // the caller's cancel flag
  kAgentFailed,  // the agent gave up the transfer
};

// Cuts the payload into chunks, skips what the agent already holds, and blocks while the window is
// full. Each chunk is built in one buffer: the bytes are read (or decompressed) straight behind the
// room for its header, which is written in front of them once the CRC is known, and published from
// there. The next chunk is read while the previous one waits for the window. When it must stop before
// the end it fails the byte source with a Status (all a decompressor understands) and says why in
// interruption().
class ChunkSender : public ByteSink {
 public:
  ChunkSender(Transport& t, const TransferPlan& plan, AckState& acks, const std::atomic<bool>& cancel,
              TransferStats& stats, uint64_t start, uint64_t stream_pos)
      : t_(t),
        plan_(plan),
        acks_(acks),
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
      bool ok = acks_.cv.wait_for(lock, plan_.stall_timeout, [&] {
        return acks_.resend_requested || !acks_.failure.is_ok() || cancel_ ||
               c.offset < acks_.acked + window_bytes;
      });
      if (!acks_.failure.is_ok()) return interrupt(Interruption::kAgentFailed, acks_.failure);
      if (cancel_) return interrupt(Interruption::kCancelled, Status(Code::kAborted, "transfer cancelled"));
      if (acks_.resend_requested) {
        return interrupt(Interruption::kResend,
                         Status(Code::kAborted, "the agent refused a chunk; resending from its offset"));
      }
      if (!ok) {
        return interrupt(Interruption::kStalled,
                         Status(Code::kTimeout, "no acknowledgement for " +
                                                    std::to_string(plan_.stall_timeout.count()) + " ms"));
      }
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

// Routes the ECU's acknowledgements into an AckState while a transfer runs.
class AckListener {
 public:
  AckListener(AgentDirectory& agents, const TransferPlan& plan, const std::function<void(uint64_t)>& progress)
      : agents_(agents), ecu_id_(plan.ecu_id) {
    agents_.set_ack_listener(ecu_id_, [this, &plan, &progress](const v1::ChunkAck& ack) {
      if (ack.transfer_id() != plan.transfer_id) return;
      {
        std::lock_guard<std::mutex> lock(state_.mu);
        switch (ack_meaning(ack)) {
          case AckMeaning::kResend:
            state_.resend_requested = true;
            state_.acked = ack.next_offset();
            break;
          case AckMeaning::kFailed:
            state_.failure = codec::from_wire(ack.error()).with_context(plan.ecu_id);
            state_.acked = ack.next_offset();
            break;
          case AckMeaning::kProgress:
            if (ack.next_offset() > state_.acked) state_.acked = ack.next_offset();
            break;
        }
      }
      state_.cv.notify_all();
      if (progress) progress(ack.next_offset());
    });
  }
  // Waits for a listener that is running: nothing calls into this object afterwards.
  ~AckListener() { agents_.clear_ack_listener(ecu_id_); }
  AckListener(const AckListener&) = delete;
  AckListener& operator=(const AckListener&) = delete;

  AckState& state() { return state_; }

 private:
  AgentDirectory& agents_;
  std::string ecu_id_;
  AckState state_;
};

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

StartAnswer start_transfer(AgentDirectory& agents, const TransferPlan& plan) {
  v1::Command cmd;
  cmd.set_campaign_id(plan.campaign_id);
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id(plan.transfer_id);
  *st->mutable_target() = plan.target;
  *st->mutable_root_updates() = plan.root_updates;
  st->set_chunk_size(plan.chunk_size);
  st->set_window(plan.window);
  StartAnswer answer;
  auto r = agents.call(plan.ecu_id, cmd, plan.command_timeout);
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

// After the last chunk went out: what the acknowledgements said within stall_timeout.
enum class Tail { kComplete, kResend, kStalled, kFailed, kCancelled };

Tail wait_for_last_ack(AckState& acks, const TransferPlan& plan, const std::atomic<bool>& cancel) {
  const uint64_t total = plan.target.payload_size();
  std::unique_lock<std::mutex> lock(acks.mu);
  acks.cv.wait_for(lock, plan.stall_timeout, [&] {
    return acks.acked >= total || acks.resend_requested || !acks.failure.is_ok() || cancel;
  });
  if (!acks.failure.is_ok()) return Tail::kFailed;
  if (cancel) return Tail::kCancelled;
  if (acks.acked >= total) return Tail::kComplete;
  return acks.resend_requested ? Tail::kResend : Tail::kStalled;
}

}  // namespace

AckMeaning ack_meaning(const v1::ChunkAck& ack) {
  if (!ack.has_error() || ack.error().code() == v1::ERROR_CODE_OK) return AckMeaning::kProgress;
  return ack.error().code() == v1::ERROR_CODE_CORRUPT ? AckMeaning::kResend : AckMeaning::kFailed;
}

Status run_transfer(AgentDirectory& agents, Transport& transport, const TransferPlan& plan,
                    const std::atomic<bool>& cancel, TransferStats* stats,
                    const std::function<void(uint64_t)>& progress) {
  AckListener listener(agents, plan, progress);
  AckState& acks = listener.state();
  const uint64_t total = plan.target.payload_size();
  bool need_start = true;
  uint64_t start = 0;
  for (int attempt = 0;; ++attempt) {
    if (cancel) return Status(Code::kAborted, "transfer cancelled");
    if (need_start) {
      StartAnswer answer = start_transfer(agents, plan);
      if (answer.kind == StartAnswer::kUnanswered && attempt < plan.max_resyncs) {
        OTA_LOGW(kLog, "%s: %s; sending StartTransfer again (%d/%d)", plan.ecu_id.c_str(),
                 answer.error.message().c_str(), attempt + 2, plan.max_resyncs + 1);
        continue;
      }
      if (answer.kind != StartAnswer::kReady) return answer.error;
      start = answer.resume_offset;
      if (start > total) return Status(Code::kCorrupt, plan.ecu_id + ": resume offset beyond the payload");
      if (attempt == 0) stats->first_resume_offset = start;
      std::lock_guard<std::mutex> lock(acks.mu);
      acks.acked = start;
      acks.resend_requested = false;
      acks.failure = Status::ok();
      need_start = false;
    }
    if (start < total) {
      // Chunks are aligned to chunk_size: restart at the chunk boundary at or below `start`.
      uint64_t aligned = start - start % plan.chunk_size;
      // A file is read from `aligned` on; a decompressed stream starts at 0 and the sender skips.
      const uint64_t stream_pos = plan.source == PayloadSource::kFile ? aligned : 0;
      ChunkSender sender(transport, plan, acks, cancel, *stats, aligned, stream_pos);
      Status st = push_payload(plan, sender);
      if (sender.interruption() == Interruption::kResend) {
        std::lock_guard<std::mutex> lock(acks.mu);
        start = acks.acked;
        acks.resend_requested = false;
        continue;
      }
      if (sender.interruption() == Interruption::kStalled && attempt < plan.max_resyncs) {
        OTA_LOGW(kLog, "%s: %s; resynchronising", plan.ecu_id.c_str(), st.message().c_str());
        ++stats->resyncs;
        need_start = true;
        continue;
      }
      if (!st.is_ok()) return st.with_context(plan.ecu_id);
    }
    switch (wait_for_last_ack(acks, plan, cancel)) {
      case Tail::kComplete:
        return Status::ok();
      case Tail::kFailed: {
        std::lock_guard<std::mutex> lock(acks.mu);
        return acks.failure;
      }
      case Tail::kCancelled:
        return Status(Code::kAborted, "transfer cancelled");
      case Tail::kResend: {
        std::lock_guard<std::mutex> lock(acks.mu);
        start = acks.acked;
        acks.resend_requested = false;
        continue;
      }
      case Tail::kStalled:
        break;
    }
    if (attempt < plan.max_resyncs) {
      ++stats->resyncs;
      need_start = true;
      continue;
    }
    std::lock_guard<std::mutex> lock(acks.mu);
    return Status(Code::kTimeout, plan.ecu_id + ": transfer stalled at byte " + std::to_string(acks.acked));
  }
}

}  // namespace ota::client
