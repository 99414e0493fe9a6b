#include "receiver.hpp"

#include <unistd.h>

#include <cerrno>
#include <vector>

#include "device_calls.hpp"
#include "digests.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"

namespace ota::agent_impl {

namespace {

constexpr const char* kLog = "agent";
constexpr size_t kIoBlock = 256 * 1024;

// The delta staging area: a file in the state directory, written like a bank.
class StagingWriter : public agent::BankWriter {
 public:
  explicit StagingWriter(std::unique_ptr<FileSink> sink) : sink_(std::move(sink)) {}
  Status write(const uint8_t* data, size_t n) override { return sink_->write(data, n); }
  Status sync() override { return sink_->sync(); }

 private:
  std::unique_ptr<FileSink> sink_;
};

}  // namespace

Receiver::Receiver(const agent::AgentConfig& cfg, agent::Device& dev, DiskState& disk, Outbox& out,
                   std::string staging_path)
    : cfg_(cfg), dev_(dev), disk_(disk), out_(out), staging_path_(std::move(staging_path)) {}

Receiver::~Receiver() { stop_checkpoint_thread(); }

void Receiver::start_checkpoint_thread() {
  checkpointer_ = std::thread([this] { checkpoint_loop(); });
}

void Receiver::stop_checkpoint_thread() {
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_stopping_ = true;
  }
  checkpoint_changed_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

bool Receiver::is_delta() const { return disk_.view().target().encoding() == v1::PAYLOAD_ENCODING_DELTA; }

Result<std::unique_ptr<agent::BankWriter>> Receiver::open_destination(uint64_t offset) {
  if (is_delta()) {
    // From byte 0 nothing in the staging file is wanted: whatever is there (a stale file, or a link
    // planted in its place) is removed, never followed; the file is then created anew, not through a
    // link (a resumed one is opened the same way, and refused if it is a link).
    if (offset == 0 && ::unlink(staging_path_.c_str()) != 0 && errno != ENOENT) {
      return errno_status(errno, "remove " + staging_path_);
    }
    auto sink = FileSink::open(staging_path_, offset);
    if (!sink) return sink.status();
    return std::unique_ptr<agent::BankWriter>(new StagingWriter(std::move(*sink)));
  }
  std::unique_ptr<agent::BankWriter> w;
  OTA_RETURN_IF_ERROR(open_bank_writer(dev_, agent::other(active_bank_of(disk_.view())), offset, &w));
  return w;
}

Status Receiver::rehash_prefix(uint64_t n) {
  std::unique_ptr<RandomReader> reader;
  if (is_delta()) {
    auto r = FileReader::open(staging_path_, Links::kRefuse);
    if (!r) return r.status();
    reader = std::move(*r);
  } else {
    OTA_RETURN_IF_ERROR(open_bank_reader(dev_, agent::other(active_bank_of(disk_.view())), &reader));
  }
  std::vector<uint8_t> buf(kIoBlock);
  for (uint64_t off = 0; off < n;) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(kIoBlock, n - off));
    OTA_RETURN_IF_ERROR(reader->read_at(off, buf.data(), len));
    payload_hash_.update(buf.data(), len);
    off += len;
  }
  return Status::ok();
}

void Receiver::reset_hash() { (void)payload_hash_.finish(); }

Status Receiver::open_at(uint64_t offset) {
  auto w = open_destination(offset);
  if (!w) return w.status();
  writer_ = std::move(*w);
  next_offset_ = offset;
  since_durable_ = 0;
  open_ = true;
  gap_reported_ = false;
  return Status::ok();
}

Status Receiver::make_received_durable() {
  Status st = settle_checkpoints();
  if (st.is_ok()) st = guarded("sync", [&] { return writer_->sync(); });
  if (st.is_ok()) {
    st = disk_.change_and_save([&](v1::AgentDiskState& s) { s.set_durable_offset(next_offset_); });
  }
  return st;
}

void Receiver::close() {
  Status ck = settle_checkpoints();
  if (!ck.is_ok()) OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), ck.to_string().c_str());
  writer_.reset();
  open_ = false;
  reset_hash();
}

void Receiver::send_ack(const Status& err) {
  // The durable offset is read under the state's lock: the checkpoint thread moves it.
  out_.send_ack(disk_.view().transfer_id(), next_offset_, disk_.durable_offset(), err);
}

void Receiver::abort_transfer(const Status& st) {
  OTA_LOGW(kLog, "%s: transfer %s failed: %s", cfg_.ecu_id.c_str(), disk_.view().transfer_id().c_str(),
           st.to_string().c_str());
  close();
  disk_.change(
      [&](v1::AgentDiskState& s) { codec::to_wire(st, v1::PHASE_TRANSFER, s.mutable_last_error()); });
  (void)disk_.save();
  send_ack(st);
  out_.publish_state(true, next_offset_);
}

// The bytes are wrong somewhere: nothing is worth resuming. The ack says so.
void Receiver::reject_payload(const Digest& got) {
  close();
  payload_complete_ = false;
  Status bad(Code::kHashMismatch, "payload SHA-256 " + to_hex(got) + " does not match the target's " +
                                      hex_of_bytes(disk_.view().target().payload_sha256()));
  disk_.change([&](v1::AgentDiskState& s) {
    s.set_durable_offset(0);
    codec::to_wire(bad, v1::PHASE_TRANSFER, s.mutable_last_error());
  });
  (void)disk_.save();
  next_offset_ = 0;
  send_ack(bad);
  out_.publish_state(true, next_offset_);
}

void Receiver::on_chunk(const codec::ChunkView& c) {
  const uint64_t total = disk_.view().target().payload_size();
  const uint32_t chunk_size = disk_.view().chunk_size();
  const std::string_view data = c.data;
  if (c.offset < next_offset_) return;  // duplicate of what we hold (client rewound)
  if (c.offset > next_offset_) {
    if (!gap_reported_) {
      gap_reported_ = true;
      send_ack(Status(Code::kCorrupt, "chunk at offset " + std::to_string(c.offset) + " arrived before " +
                                          std::to_string(next_offset_)));
    }
    return;
  }
  gap_reported_ = false;
  if (data.size() > chunk_size || c.offset + data.size() > total ||
      (c.offset + data.size() < total && data.size() != chunk_size) || data.empty()) {
    return abort_transfer(Status(Code::kInvalidArgument, "chunk at offset " + std::to_string(c.offset) +
                                                             " has " + std::to_string(data.size()) +
                                                             " bytes, which does not fit the transfer"));
  }
  if (crc32c(data.data(), data.size()) != c.crc32c) {
    // A damaged chunk is not fatal: refuse it and let the client resend from next_offset.
    return send_ack(
        Status(Code::kCorrupt, "chunk at offset " + std::to_string(c.offset) + ": CRC-32C mismatch"));
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
  Status st = guarded("write", [&] { return writer_->write(bytes, data.size()); });
  if (!st.is_ok()) return abort_transfer(st.with_context("write at offset " + std::to_string(c.offset)));
  payload_hash_.update(bytes, data.size());
  next_offset_ += data.size();
  since_durable_ += data.size();
  const bool complete = next_offset_ == total;
  if (complete) {
    Digest got = payload_hash_.finish();
    if (digest_bytes(got) != disk_.view().target().payload_sha256()) return reject_payload(got);
    payload_digest_ = got;
    payload_complete_ = true;
  }
  // The last checkpoint (the whole payload) completes before Install verifies it.
  if (since_durable_ >= cfg_.durable_interval_bytes || complete) {
    st = checkpoint();
    if (!st.is_ok()) return abort_transfer(st);
  }
  if (complete) {
    writer_.reset();  // a checkpoint in flight holds it until it is done
    open_ = false;
  }
  send_ack(Status::ok());
  out_.publish_state(complete, next_offset_);
}

Status Receiver::checkpoint() {
  Checkpoint c{writer_, disk_.view().transfer_id(), next_offset_};
  if (!writer_->concurrent_sync()) {
    since_durable_ = 0;
    return run_checkpoint(c);
  }
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    if (!checkpoint_error_.is_ok()) {
      Status st = checkpoint_error_;
      checkpoint_error_ = Status::ok();
      return st;
    }
    checkpoint_pending_ = std::move(c);  // replaces one still waiting: this one covers more
  }
  since_durable_ = 0;
  checkpoint_changed_.notify_all();
  return Status::ok();
}

Status Receiver::run_checkpoint(const Checkpoint& c) {
  OTA_RETURN_IF_ERROR(guarded("sync", [&] { return c.writer->sync(); }));
  return disk_.record_durable(c.transfer_id, c.offset);
}

void Receiver::checkpoint_loop() {
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  for (;;) {
    checkpoint_changed_.wait(lock,
                             [this] { return checkpoint_stopping_ || checkpoint_pending_.has_value(); });
    if (!checkpoint_pending_) return;
    Checkpoint c = std::move(*checkpoint_pending_);
    checkpoint_pending_.reset();
    checkpoint_running_ = true;
    lock.unlock();
    Status st = run_checkpoint(c);
    c.writer.reset();
    lock.lock();
    checkpoint_running_ = false;
    if (!st.is_ok() && checkpoint_error_.is_ok())
      checkpoint_error_ = st.with_context("checkpoint at byte " + std::to_string(c.offset));
    checkpoint_changed_.notify_all();
  }
}

Status Receiver::settle_checkpoints() {
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  checkpoint_changed_.wait(
      lock, [this] { return checkpoint_stopping_ || (!checkpoint_pending_ && !checkpoint_running_); });
  Status st = checkpoint_error_;
  checkpoint_error_ = Status::ok();
  return st;
}

Result<Digest> Receiver::payload_digest(uint64_t size) {
  if (!payload_complete_) {
    // Received in an earlier run of the agent: hash it again from where it is stored.
    reset_hash();  // drop whatever a resume hashed so far
    OTA_RETURN_IF_ERROR(rehash_prefix(size));
    payload_digest_ = payload_hash_.finish();
    payload_complete_ = true;
  }
  return payload_digest_;
}

}  // namespace ota::agent_impl
