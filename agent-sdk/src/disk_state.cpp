#include "disk_state.hpp"

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"

namespace ota::agent_impl {

namespace {
constexpr size_t kMaxStateFile = 1 << 20;
}

Status DiskState::claim_directory(const std::string& dir) {
  OTA_RETURN_IF_ERROR(make_private_dir(dir));
  auto lock = DirLock::acquire(dir, "agent");
  if (!lock) return lock.status();
  lock_.emplace(std::move(lock).value());
  return Status::ok();
}

Status DiskState::load() {
  auto content = read_state_file(path_, kMaxStateFile);
  if (!content) return content.status();
  std::lock_guard<std::mutex> lock(state_mu_);
  v1::AgentDiskState loaded;
  OTA_RETURN_IF_ERROR(codec::decode(*content, &loaded, kMaxStateFile, "agent state " + path_));
  if (loaded.format() != 1 || loaded.banks_size() != 2) {
    return Status(Code::kCorrupt, path_ + ": unsupported state format " + std::to_string(loaded.format()));
  }
  state_ = std::move(loaded);
  return Status::ok();
}

Status DiskState::create(const v1::BankRecord& factory) {
  return change_and_save([&](v1::AgentDiskState& s) {
    s.Clear();
    s.set_format(1);
    s.set_active_bank(v1::BANK_A);
    *s.add_banks() = factory;
    s.mutable_banks(0)->set_bank(v1::BANK_A);
    s.mutable_banks(0)->set_valid(true);
    s.add_banks()->set_bank(v1::BANK_B);
  });
}

bool DiskState::ready() const {
  return read([](const v1::AgentDiskState& s) { return s.banks_size() == 2; });
}

Status DiskState::save() {
  std::lock_guard<std::mutex> lock(state_mu_);
  return save_locked();
}

Status DiskState::save_locked() { return write(state_.SerializeAsString(), ++snapshot_generation_); }

Status DiskState::record_durable(const std::string& transfer_id, uint64_t offset) {
  std::string bytes;
  uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (state_.transfer_id() != transfer_id || offset <= state_.durable_offset()) return Status::ok();
    state_.set_durable_offset(offset);
    bytes = state_.SerializeAsString();
    generation = ++snapshot_generation_;
  }
  // Written outside state_mu_: acknowledgements, which read the durable offset, never wait on the
  // fsyncs of a checkpoint.
  return write(bytes, generation);
}

uint64_t DiskState::durable_offset() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return state_.durable_offset();
}

Status DiskState::write(const std::string& bytes, uint64_t generation) {
  std::lock_guard<std::mutex> lock(file_write_mu_);
  if (generation <= written_generation_) return Status::ok();  // a newer snapshot is already on disk
  OTA_RETURN_IF_ERROR(atomic_write_file(path_, bytes));
  written_generation_ = generation;
  return Status::ok();
}

}  // namespace ota::agent_impl
