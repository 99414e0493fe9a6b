// The agent's durable state: ota.v1.AgentDiskState in {state_dir}/agent-state.pb, and the
// discipline of its writes. Every change is made under one lock and saved as a whole snapshot with
// atomic_write_file (write, fsync, rename, fsync of the directory), so that a kill at any moment
// leaves the old or the new state. The protocol thread and the checkpoint thread both save; a
// generation number taken with each snapshot keeps an older snapshot from replacing a newer one.
//
// Threading: only the protocol thread (the worker, or the transport's thread for a chunk) changes
// the state, except the durable offset, which the checkpoint thread moves (record_durable). The
// protocol thread may therefore read the state without the lock (view()), the durable offset
// aside; every other thread reads through read().
//
// The state directory is the agent's alone: claim_directory() makes it private (0700, owned by the
// running user) and holds an exclusive lock on it while the agent runs, so a second agent started
// on the same directory is refused instead of fighting the first over the state file. Every file in
// it is opened without following a symbolic link (ota/core/file.hpp).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "ota/agent.hpp"
#include "ota/core/file.hpp"
#include "ota/core/status.hpp"
#include "ota/v1/state.pb.h"

namespace ota::agent_impl {

namespace v1 = ::ota::v1;
using agent::Bank;

inline v1::Bank to_wire(Bank b) { return b == Bank::kA ? v1::BANK_A : v1::BANK_B; }
inline Bank from_wire(v1::Bank b) { return b == v1::BANK_B ? Bank::kB : Bank::kA; }

// Accessors of a state with its two bank records (A first).
inline Bank active_bank_of(const v1::AgentDiskState& s) { return from_wire(s.active_bank()); }
inline const v1::BankRecord& bank_record(const v1::AgentDiskState& s, Bank b) {
  return s.banks(b == Bank::kA ? 0 : 1);
}
inline v1::BankRecord* mutable_bank_record(v1::AgentDiskState& s, Bank b) {
  return s.mutable_banks(b == Bank::kA ? 0 : 1);
}
inline const v1::BankRecord& active_record(const v1::AgentDiskState& s) {
  return bank_record(s, active_bank_of(s));
}

class DiskState {
 public:
  explicit DiskState(std::string path) : path_(std::move(path)) {}
  DiskState(const DiskState&) = delete;
  DiskState& operator=(const DiskState&) = delete;

  const std::string& path() const { return path_; }

  // Creates `dir` if needed, refuses it unless private (make_private_dir), and locks it for this
  // agent (DirLock): kUnavailable naming the directory and the holder's pid when another agent runs
  // on it. The lock is held until release_directory() or destruction.
  Status claim_directory(const std::string& dir);
  void release_directory() { lock_.reset(); }

  // Reads the state file. kNotFound when there is none (first start: then create()); kCorrupt when
  // it does not decode or is of another format.
  Status load();
  // First start: bank A active and valid with `factory` as its record, bank B invalid; saved.
  Status create(const v1::BankRecord& factory);
  // True once load() or create() succeeded (the bank records exist).
  bool ready() const;

  // The state, for the protocol thread (see the threading note above).
  const v1::AgentDiskState& view() const { return state_; }

  // Reads the state under the lock, from any thread: returns f(const v1::AgentDiskState&).
  template <typename F>
  auto read(F&& f) const {
    std::lock_guard<std::mutex> lock(state_mu_);
    return f(static_cast<const v1::AgentDiskState&>(state_));
  }
  // Changes the state in memory (protocol thread): f(v1::AgentDiskState&) under the lock.
  template <typename F>
  void change(F&& f) {
    std::lock_guard<std::mutex> lock(state_mu_);
    f(state_);
  }
  // Changes the state and saves the result as one snapshot.
  template <typename F>
  Status change_and_save(F&& f) {
    std::lock_guard<std::mutex> lock(state_mu_);
    f(state_);
    return save_locked();
  }
  // Saves the state as it is.
  Status save();

  // Checkpoint thread: records `offset` as the durable offset if `transfer_id` is still the
  // transfer held and the offset is larger than the one recorded; then saves.
  Status record_durable(const std::string& transfer_id, uint64_t offset);
  uint64_t durable_offset() const;

 private:
  // Saves a snapshot of the state with the next generation. REQUIRES: state_mu_ held.
  Status save_locked();
  Status write(const std::string& bytes, uint64_t generation);

  const std::string path_;
  std::optional<DirLock> lock_;  // the state directory's lock, while the agent runs

  mutable std::mutex state_mu_;  // guards state_ (see the threading note) and snapshot_generation_
  v1::AgentDiskState state_;
  uint64_t snapshot_generation_ = 0;

  std::mutex file_write_mu_;  // serialises writes of the file; guards written_generation_
  uint64_t written_generation_ = 0;
};

}  // namespace ota::agent_impl
