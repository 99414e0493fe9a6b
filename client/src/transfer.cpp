#include "transfer.hpp"

#include <condition_variable>
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

// Shared between the sender and the transport's callback thread.
struct AckState {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t acked = 0;          // agent's next_offset
  bool rewind = false;         // the agent refused something: resend from acked
  Status failure;              // the agent gave up on the transfer
};

// The ByteSink the payload is pushed into: cuts it into chunks, skips what the agent already holds,
// and blocks while the window is full. Returns kAborted to make the caller restart the source
// (a rewind or a resync is needed).
class ChunkSender : public ByteSink {
 public:
  ChunkSender(Transport& t, const TransferPlan& plan, AckState& acks, const std::atomic<bool>& cancel,
              TransferStats& stats, uint64_t start, uint64_t stream_pos)
      : t_(t), plan_(plan), acks_(acks), cancel_(cancel), stats_(stats), topic_(topics::ecu(plan.ecu_id, topics::Leaf::kData)),
        start_(start), pos_(stream_pos) {
    buf_.reserve(plan.chunk_size);
    chunk_.set_transfer_id(plan.transfer_id);
  }

  Status write(const uint8_t* data, size_t n) override {
    while (n > 0) {
      if (pos_ < start_) {  // bytes the agent already has
        size_t skip = static_cast<size_t>(std::min<uint64_t>(n, start_ - pos_));
        pos_ += skip;
        data += skip;
        n -= skip;
        continue;
      }
      size_t take = std::min<size_t>(n, plan_.chunk_size - buf_.size());
      buf_.insert(buf_.end(), data, data + take);
      data += take;
      n -= take;
      pos_ += take;
      if (buf_.size() == plan_.chunk_size || pos_ == plan_.target.payload_size()) OTA_RETURN_IF_ERROR(flush_chunk());
    }
    return Status::ok();
  }

  Status finish() {
    if (!buf_.empty()) OTA_RETURN_IF_ERROR(flush_chunk());
    return Status::ok();
  }

 private:
  Status flush_chunk() {
    const uint64_t offset = pos_ - buf_.size();
    const uint64_t window_bytes = uint64_t{plan_.window} * plan_.chunk_size;
    {
      std::unique_lock<std::mutex> lock(acks_.mu);
      bool ok = acks_.cv.wait_for(lock, plan_.stall_timeout, [&] {
        return acks_.rewind || !acks_.failure.is_ok() || cancel_ || offset < acks_.acked + window_bytes;
      });
      if (!acks_.failure.is_ok()) return acks_.failure;
      if (cancel_) return Status(Code::kAborted, "transfer cancelled");
      if (acks_.rewind) return Status(Code::kAborted, "rewind");
      if (!ok) return Status(Code::kTimeout, "no acknowledgement for " + std::to_string(plan_.stall_timeout.count()) + " ms");
    }
    chunk_.set_offset(offset);
    chunk_.set_data(buf_.data(), buf_.size());
    chunk_.set_crc32c(crc32c(buf_.data(), buf_.size()));
    chunk_.set_last(offset + buf_.size() == plan_.target.payload_size());
    chunk_.SerializeToString(&wire_);
    OTA_RETURN_IF_ERROR(t_.publish(topic_, wire_, 1, false));
    stats_.bytes_sent += buf_.size();
    if (plan_.on_sent) plan_.on_sent(buf_.size());
    buf_.clear();
    return Status::ok();
  }

  Transport& t_;
  const TransferPlan& plan_;
  AckState& acks_;
  const std::atomic<bool>& cancel_;
  TransferStats& stats_;
  std::string topic_;
  uint64_t start_;
  uint64_t pos_ = 0;
  std::vector<uint8_t> buf_;
  v1::Chunk chunk_;
  std::string wire_;
};

Status push_payload(const TransferPlan& plan, ChunkSender& sender, uint64_t start) {
  auto file = FileReader::open(plan.payload_path);
  if (!file) return file.status();
  if (plan.source == PayloadSource::kCompressed) {
    // Streaming decompression; bytes before `start` are produced and skipped by the sender.
    OTA_RETURN_IF_ERROR(delta::apply_full(**file, sender));
    return sender.finish();
  }
  if ((*file)->size() != plan.target.payload_size()) {
    return Status(Code::kCorrupt, plan.payload_path + " has " + std::to_string((*file)->size()) +
                                      " bytes, the payload should have " + std::to_string(plan.target.payload_size()));
  }
  constexpr size_t kBlock = 1 << 20;
  std::vector<uint8_t> buf(kBlock);
  // Start reading at the chunk that holds `start`; the sender skips the rest.
  for (uint64_t off = start; off < (*file)->size();) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, (*file)->size() - off));
    OTA_RETURN_IF_ERROR((*file)->read_at(off, buf.data(), n));
    OTA_RETURN_IF_ERROR(sender.write(buf.data(), n));
    off += n;
  }
  return sender.finish();
}

}  // namespace

Status run_transfer(Fleet& fleet, Transport& transport, const TransferPlan& plan, const std::atomic<bool>& cancel,
                    TransferStats* stats, const std::function<void(uint64_t)>& progress) {
  AckState acks;
  fleet.set_ack_listener(plan.ecu_id, [&](const v1::ChunkAck& ack) {
    if (ack.transfer_id() != plan.transfer_id) return;
    {
      std::lock_guard<std::mutex> lock(acks.mu);
      if (ack.has_error() && ack.error().code() != v1::ERROR_CODE_OK) {
        Status err = codec::from_wire(ack.error());
        // CORRUPT (a chunk failed its CRC or arrived out of order) is recovered by resending from
        // next_offset; any other code ends the transfer.
        if (err.code() == Code::kCorrupt) {
          acks.rewind = true;
        } else {
          acks.failure = err.with_context(plan.ecu_id);
        }
        acks.acked = ack.next_offset();
      } else if (ack.next_offset() > acks.acked) {
        acks.acked = ack.next_offset();
      }
    }
    acks.cv.notify_all();
    if (progress) progress(ack.next_offset());
  });
  struct Unlisten {
    Fleet& f;
    const std::string& e;
    ~Unlisten() { f.clear_ack_listener(e); }
  } unlisten{fleet, plan.ecu_id};

  const uint64_t total = plan.target.payload_size();
  bool need_start = true;
  uint64_t start = 0;
  for (int attempt = 0;; ++attempt) {
    if (cancel) return Status(Code::kAborted, "transfer cancelled");
    if (need_start) {
      v1::Command cmd;
      cmd.set_campaign_id(plan.campaign_id);
      auto* st = cmd.mutable_start_transfer();
      st->set_transfer_id(plan.transfer_id);
      *st->mutable_target() = plan.target;
      st->set_chunk_size(plan.chunk_size);
      st->set_window(plan.window);
      auto r = fleet.call(plan.ecu_id, cmd, std::chrono::seconds(30));
      if (!r) {
        if (attempt < plan.max_resyncs && r.status().code() == Code::kTimeout) continue;
        return r.status();
      }
      if (r->outcome() != v1::OUTCOME_OK) return codec::from_wire(r->error()).with_context(plan.ecu_id + ": start transfer");
      start = r->transfer_ready().resume_offset();
      if (start > total) return Status(Code::kCorrupt, plan.ecu_id + ": resume offset beyond the payload");
      if (attempt == 0) stats->first_resume_offset = start;
      std::lock_guard<std::mutex> lock(acks.mu);
      acks.acked = start;
      acks.rewind = false;
      acks.failure = Status::ok();
      need_start = false;
    }
    if (start < total) {
      // Chunks are aligned to chunk_size: restart at the chunk boundary at or below `start`.
      uint64_t aligned = start - start % plan.chunk_size;
      // A file is read from `aligned` on; a decompressed stream starts at 0 and the sender skips.
      const uint64_t stream_pos = plan.source == PayloadSource::kFile ? aligned : 0;
      ChunkSender sender(transport, plan, acks, cancel, *stats, aligned, stream_pos);
      Status st = push_payload(plan, sender, stream_pos);
      if (!st.is_ok()) {
        if (st.code() == Code::kAborted && st.message() == "rewind") {
          std::lock_guard<std::mutex> lock(acks.mu);
          start = acks.acked;
          acks.rewind = false;
          continue;
        }
        if (st.code() == Code::kTimeout && attempt < plan.max_resyncs) {
          OTA_LOGW(kLog, "%s: %s; resynchronising", plan.ecu_id.c_str(), st.message().c_str());
          ++stats->resyncs;
          need_start = true;
          continue;
        }
        return st.with_context(plan.ecu_id);
      }
    }
    // Everything sent: wait for the last acknowledgement.
    std::unique_lock<std::mutex> lock(acks.mu);
    bool done = acks.cv.wait_for(lock, plan.stall_timeout, [&] {
      return acks.acked >= total || acks.rewind || !acks.failure.is_ok() || cancel;
    });
    if (!acks.failure.is_ok()) return acks.failure;
    if (cancel) return Status(Code::kAborted, "transfer cancelled");
    if (acks.acked >= total) return Status::ok();
    if (acks.rewind) {
      start = acks.acked;
      acks.rewind = false;
      continue;
    }
    if (!done && attempt < plan.max_resyncs) {
      ++stats->resyncs;
      need_start = true;
      continue;
    }
    return Status(Code::kTimeout, plan.ecu_id + ": transfer stalled at byte " + std::to_string(acks.acked));
  }
}

}  // namespace ota::client
