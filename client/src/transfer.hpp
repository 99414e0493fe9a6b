// Sends one payload to one agent: StartTransfer, chunks with a flow-control window, resume from the
// agent's durable offset after any interruption, until the agent has acknowledged every byte.
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
  int max_resyncs = 20;
  // Called on the sending thread after each chunk is handed to the transport (for accounting).
  std::function<void(uint64_t bytes)> on_sent;
};

struct TransferStats {
  uint64_t bytes_sent = 0;  // chunk payload bytes published, resends included
  uint64_t first_resume_offset = 0;
  int resyncs = 0;
};

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
// StartTransfer (the agent answers with its durable offset), at most plan.max_resyncs times.
Status run_transfer(AgentDirectory& agents, Transport& transport, const TransferPlan& plan,
                    const std::atomic<bool>& cancel, TransferStats* stats,
                    const std::function<void(uint64_t acked)>& progress = nullptr);

}  // namespace ota::client
