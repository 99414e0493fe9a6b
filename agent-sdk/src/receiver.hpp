// The data path of a transfer (docs/PROTOCOL.md 6.1 and 6.2): the destination the payload is
// written to (the inactive bank, or the staging file for a delta), chunk intake in order with the
// CRC-32C of each chunk and a running SHA-256 of the whole payload, cumulative acks, and
// durability checkpoints.
//
// A checkpoint syncs the writer up to the offset received and then records that offset as durable
// in the state file. With a writer that may sync beside writes (BankWriter::concurrent_sync) it runs
// on the checkpoint thread, one at a time, while chunks keep being written and acknowledged; a
// request made meanwhile waits for it (at most one waits: a newer request replaces it). Otherwise it
// runs on the protocol thread, between two writes.
//
// Threading: every method runs on the protocol thread; the checkpoint thread is internal.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "disk_state.hpp"
#include "messages.hpp"
#include "ota/agent.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/sha256.hpp"

namespace ota::agent_impl {

class Receiver {
 public:
  // All must outlive the Receiver. `staging_path`: where a delta payload is written.
  Receiver(const agent::AgentConfig& cfg, agent::Device& dev, DiskState& disk, Outbox& out,
           std::string staging_path);
  ~Receiver();  // stops the checkpoint thread
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  void start_checkpoint_thread();
  // Finishes the checkpoint in flight, then ends the thread. Idempotent.
  void stop_checkpoint_thread();

  const std::string& staging_path() const { return staging_path_; }
  bool is_open() const { return open_; }
  // Bytes received in order (CRC-checked, written and hashed).
  uint64_t next_offset() const { return next_offset_; }

  // Hashes the first n payload bytes back from where they are stored (after a restart), so that the
  // whole-payload SHA-256 still covers every byte.
  Status rehash_prefix(uint64_t n);
  // Drops what the running hash holds.
  void reset_hash();
  // Opens the destination of the transfer held, positioned at `offset` (0, or a resume offset whose
  // prefix rehash_prefix() has hashed).
  Status open_at(uint64_t offset);
  // The client restarted or re-synchronised: makes what was received durable (the checkpoint in
  // flight, a sync, the durable offset saved).
  Status make_received_durable();
  // Waits for the checkpoint in flight, drops the writer and the running hash.
  void close();

  // Handles one chunk of the open transfer (the table of docs/PROTOCOL.md 6.2 from "offset <
  // next_offset" on): writes it, acks it, closes the transfer on a fatal error.
  void on_chunk(const codec::ChunkView& chunk);

  // Waits for the checkpoint in flight, if any, and returns (and clears) an error it had.
  Status settle_checkpoints();

  // The SHA-256 of the whole payload (`size` bytes): the running hash when every byte arrived in
  // this run, else hashed again from storage.
  Result<Digest> payload_digest(uint64_t size);
  // The next payload_digest() hashes from storage.
  void forget_payload() { payload_complete_ = false; }

 private:
  struct Checkpoint {
    std::shared_ptr<agent::BankWriter> writer;
    std::string transfer_id;
    uint64_t offset = 0;
  };

  bool is_delta() const;
  Result<std::unique_ptr<agent::BankWriter>> open_destination(uint64_t offset);
  void send_ack(const Status& err);
  void abort_transfer(const Status& st);
  void reject_payload(const Digest& got);
  Status checkpoint();
  Status run_checkpoint(const Checkpoint& c);
  void checkpoint_loop();

  const agent::AgentConfig& cfg_;
  agent::Device& dev_;
  DiskState& disk_;
  Outbox& out_;
  const std::string staging_path_;

  // The transfer in progress (protocol thread only).
  std::shared_ptr<agent::BankWriter> writer_;  // shared with a checkpoint in flight
  bool open_ = false;
  bool gap_reported_ = false;
  Sha256 payload_hash_;
  Digest payload_digest_{};
  bool payload_complete_ = false;
  uint64_t next_offset_ = 0;
  uint64_t since_durable_ = 0;

  // Checkpoints that run beside the transfer.
  std::mutex checkpoint_mu_;  // guards the four members below
  std::condition_variable checkpoint_changed_;
  std::optional<Checkpoint> checkpoint_pending_;
  bool checkpoint_running_ = false;
  bool checkpoint_stopping_ = false;
  Status checkpoint_error_;
  std::thread checkpointer_;
};

}  // namespace ota::agent_impl
