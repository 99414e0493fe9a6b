// Sends one payload to one agent: StartTransfer, chunks with a flow-control window, resume from the
// agent's durable offset after any interruption, until the agent has acknowledged every byte.
//
// The agent is untrusted: whatever it declares or acknowledges, a transfer ends in bounded time
// (docs/PROTOCOL.md 6.3 and 12). Its declared limits must lie in a sane range, its acks must stay
// within what was sent, its refusals (CORRUPT) and the client's resyncs share a bounded number of
// rounds, its progress must keep above a floor, and nothing outlives the campaign's deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "agent_directory.hpp"
#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

enum class PayloadSource {
  kFile,        // send the file's bytes as they are (raw image or delta)
  kCompressed,  // the file is a compressed full image (a delta with an empty base): decompress while sending
};

// The sane range of what a transfer runs with: a chunk size or window outside it (the campaign's,
// lowered to what the agent declares) fails the transfer before anything is sent.
inline constexpr uint32_t kMinChunkSize = 512;
inline constexpr uint32_t kMaxChunkSize = 512 * 1024;  // codec::kMaxChunkSize
inline constexpr uint32_t kMinWindow = 1;
inline constexpr uint32_t kMaxWindow = 64;
// Longest wait for the answer to a StartTransfer.
inline constexpr std::chrono::milliseconds kStartTimeout{30000};

struct TransferPlan {
  std::string ecu_id;
  std::string campaign_id;
  std::string transfer_id;
  v1::Target target;  // what the agent is told (payload size/hash are of what travels)
  google::protobuf::RepeatedPtrField<std::string> root_updates;  // signed roots for the agent (StartTransfer)
  std::string payload_path;
  PayloadSource source = PayloadSource::kFile;
  uint32_t chunk_size = 256 * 1024;
  uint32_t window = 3;                            // chunks in flight (the runner: see campaign/plan.cpp)
  std::chrono::milliseconds stall_timeout{5000};  // no ack progress for this long: resynchronise
  // The wait for the answer to StartTransfer (the runner: its agent_timeout). An agent that comes
  // back meanwhile (AgentDirectory::call) ends the wait at once.
  std::chrono::milliseconds command_timeout{30000};
  // Rounds after the first pass: resyncs, retries of an unanswered StartTransfer and rewinds on a
  // CORRUPT ack all count; one more fails the transfer.
  int max_resyncs = 20;
  // Progress floor: over every rate_window (consecutive windows from the start of the run, not
  // restarted by a resync), the agent must acknowledge at least min_rate x rate_window new bytes
  // (or the rest of the payload), else the transfer fails ("too slow"). 0: no floor.
  uint64_t min_rate = 0;  // bytes per second
  std::chrono::milliseconds rate_window{30000};
  // The campaign's deadline: the transfer fails with kTimeout when it passes. Default: none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Called on the sending thread after each chunk is handed to the transport (for accounting).
  std::function<void(uint64_t bytes)> on_sent;
};

struct TransferStats {
  uint64_t bytes_sent = 0;  // chunk payload bytes published, resends included
  uint64_t first_resume_offset = 0;
  int resyncs = 0;
  int rewinds = 0;  // passes restarted on a CORRUPT ack
};

// The campaign's deadline when none is configured: kBaseCampaignTime plus the time the bytes of every
// target (its full image or its delta, whichever is larger) take at the progress floor `min_rate`
// (bytes per second, at least 1): any transfer that keeps above the floor fits in it.
inline constexpr std::chrono::milliseconds kBaseCampaignTime{10 * 60 * 1000};
std::chrono::milliseconds derived_campaign_timeout(const v1::Campaign& campaign, uint64_t min_rate);

// What a ChunkAck asks of the sender (docs/PROTOCOL.md 6.3).
enum class AckMeaning {
  kProgress,  // no error: every byte before next_offset is held
  kResend,    // ERROR_CODE_CORRUPT (a chunk failed its CRC or came out of order): send again from
              // next_offset, the transfer goes on
  kFailed,    // any other error code: the agent gave up the transfer
};
AckMeaning ack_meaning(const v1::ChunkAck& ack);

// Blocks until the agent holds the whole payload, the transfer fails, or `cancel` becomes true
// (kAborted). `progress` (may be null) is called with acknowledged bytes, on the transport's
// callback thread. Holds the ECU's ack listener in `agents` while it runs.
//
// Recovery: a refused chunk (AckMeaning::kResend) is resent from the agent's next_offset; no ack
// progress for plan.stall_timeout, or a StartTransfer unanswered, resynchronises with a new
// StartTransfer (the agent answers with its durable offset); at most plan.max_resyncs rounds of
// either.
//
// Errors that name what the agent did, each with the ECU id: kInvalidArgument (chunk size or
// window outside the sane range, checked first), kCorrupt ("protocol error": an ack beyond the
// payload or beyond the bytes sent; a resume offset beyond the payload), kTimeout ("too slow":
// below the progress floor; "the campaign's deadline passed"; "stalled" when the rounds run out),
// kHashMismatch ("refused N chunks": rounds run out on CORRUPT acks), the agent's own error for
// any other error ack or a refused StartTransfer, kAborted on cancel.
Status run_transfer(AgentDirectory& agents, Transport& transport, const TransferPlan& plan,
                    const std::atomic<bool>& cancel, TransferStats* stats,
                    const std::function<void(uint64_t acked)>& progress = nullptr);

}  // namespace ota::client
