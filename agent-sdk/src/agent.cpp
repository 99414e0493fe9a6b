// The Agent: one ECU's side of the OTA protocol (docs/PROTOCOL.md), over a Device the supplier writes.
//
// Messages are handled one at a time, in arrival order. Commands go through a queue to the worker
// thread; a chunk is handled right on the transport's thread when nothing is queued or running (the
// data path: no hand-over, no copy of the payload), and through the queue behind anything that is.
// The flow-control window the client keeps bounds that queue. Durability checkpoints of a transfer
// run on a checkpoint thread while chunks keep being acknowledged. The durable state
// (AgentDiskState) is rewritten atomically at every step that matters, so a kill at any moment
// leaves the ECU on a known, bootable bank.
#include "ota/agent.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <unistd.h>

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/delta.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/transport.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/state.pb.h"

namespace ota::agent {

namespace v1 = ::ota::v1;
using topics::Leaf;

const char* bank_name(Bank b) { return b == Bank::kA ? "A" : "B"; }
const char* sdk_version() { return "0.1.0"; }
uint32_t protocol_major() { return codec::kProtocolMajor; }

namespace {

constexpr const char* kLog = "agent";
constexpr size_t kIoBlock = 256 * 1024;

v1::Bank to_wire(Bank b) { return b == Bank::kA ? v1::BANK_A : v1::BANK_B; }
Bank from_wire(v1::Bank b) { return b == v1::BANK_B ? Bank::kB : Bank::kA; }

// Runs a Device method and turns an escaping exception into a Status: supplier code never
// crashes the agent.
template <typename F>
Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status(Code::kInternal, std::string("device ") + what + " threw: " + e.what());
  } catch (...) {
    return Status(Code::kInternal, std::string("device ") + what + " threw an unknown exception");
  }
}

// The delta staging area: a file in the state directory, written like a bank.
class StagingWriter : public BankWriter {
 public:
  explicit StagingWriter(std::unique_ptr<FileSink> sink) : sink_(std::move(sink)) {}
  Status write(const uint8_t* data, size_t n) override { return sink_->write(data, n); }
  Status sync() override { return sink_->sync(); }

 private:
  std::unique_ptr<FileSink> sink_;
};

class WriterSink : public ByteSink {
 public:
  explicit WriterSink(BankWriter& w) : w_(w) {}
  Status write(const uint8_t* data, size_t n) override { return w_.write(data, n); }

 private:
  BankWriter& w_;
};

// Reads the first n bytes of a RandomReader as a ByteSource.
class PrefixSource : public ByteSource {
 public:
  PrefixSource(RandomReader& r, uint64_t n) : r_(r), n_(n) {}
  Status read(uint8_t* buf, size_t cap, size_t* got) override {
    size_t k = static_cast<size_t>(std::min<uint64_t>(cap, n_ - pos_));
    *got = 0;
    if (k == 0) return Status::ok();
    OTA_RETURN_IF_ERROR(r_.read_at(pos_, buf, k));
    pos_ += k;
    *got = k;
    return Status::ok();
  }

 private:
  RandomReader& r_;
  uint64_t n_;
  uint64_t pos_ = 0;
};

}  // namespace

class Agent::Impl {
 public:
  Impl(AgentConfig cfg, Device& dev) : cfg_(std::move(cfg)), dev_(dev) {
    std::random_device rd;
    boot_id_ = (uint64_t{rd()} << 32) | rd();
  }

  ~Impl() { stop(); }

  Status start() {
    if (!topics::valid_ecu_id(cfg_.ecu_id)) {
      return Status(Code::kInvalidArgument,
                    "ecu_id '" + cfg_.ecu_id + "' must be 1-64 characters of [A-Za-z0-9_.-]");
    }
    if (cfg_.state_dir.empty()) return Status(Code::kInvalidArgument, "state_dir is required");
    if (cfg_.broker_uri.empty()) return Status(Code::kInvalidArgument, "broker_uri is required");
    if (cfg_.max_chunk_size == 0 || cfg_.max_chunk_size > codec::kMaxChunkSize)
      cfg_.max_chunk_size = codec::kMaxChunkSize;
    OTA_RETURN_IF_ERROR(make_dirs(cfg_.state_dir));
    state_path_ = cfg_.state_dir + "/agent-state.pb";
    staging_path_ = cfg_.state_dir + "/payload.part";
    OTA_RETURN_IF_ERROR(load_state());
    OTA_RETURN_IF_ERROR(recover());
    if (!cfg_.trust_root_file.empty()) {
      auto root = read_small_file(cfg_.trust_root_file, 256 * 1024);
      if (!root) return root.status().with_context("trust root");
      auto verifier = trust::AgentVerifier::from_root(*root);
      if (!verifier) return verifier.status().with_context("trust root " + cfg_.trust_root_file);
      verifier_ = std::make_unique<trust::AgentVerifier>(std::move(*verifier));
      // A root accepted over the air (StartTransfer.root_updates) replaces the provisioned one if
      // newer. It was verified against its predecessor (both thresholds) before it was written; here
      // it is re-checked only for being a root signed by a threshold of its own keys.
      trust_root_path_ = cfg_.state_dir + "/trust-root.signed";
      auto saved = read_small_file(trust_root_path_, 256 * 1024);
      if (saved) {
        auto accepted = trust::AgentVerifier::from_root(*saved);
        if (!accepted) return accepted.status().with_context(trust_root_path_);
        if (accepted->root_version() > verifier_->root_version()) {
          verifier_ = std::make_unique<trust::AgentVerifier>(std::move(*accepted));
        }
      } else if (saved.status().code() != Code::kNotFound) {
        return saved.status().with_context(trust_root_path_);
      }
      OTA_LOGI(kLog, "%s: trust root version %llu", cfg_.ecu_id.c_str(),
               static_cast<unsigned long long>(verifier_->root_version()));
    } else {
      OTA_LOGW(kLog, "%s: no trust root configured: targets are not signature-checked", cfg_.ecu_id.c_str());
    }
    if (!cfg_.ecu_key_file.empty()) {
      auto key = trust::PrivateKey::load(cfg_.ecu_key_file);
      if (!key) return key.status().with_context("ECU key");
      ecu_key_ = std::make_unique<trust::PrivateKey>(std::move(*key));
    }

    TransportOptions topts;
    topts.uri = cfg_.broker_uri;
    topts.client_id = "agent-" + cfg_.ecu_id;
    topts.username = cfg_.ecu_id;
    topts.password = cfg_.password;
    if (!cfg_.tls_ca_file.empty())
      topts.tls = TlsOptions{cfg_.tls_ca_file, cfg_.tls_cert_file, cfg_.tls_key_file};
    v1::Hello will = make_hello(false);
    topts.will = WillMessage{topics::ecu(cfg_.ecu_id, Leaf::kHello), will.SerializeAsString(), 1, true};
    transport_ = make_transport(topts);
    transport_->on_message([this](TransportMessage&& m) { deliver(std::move(m)); });
    transport_->on_connection([this](bool up) {
      if (up) enqueue(TransportMessage{"", "", false});  // empty topic = republish hello/state
    });
    worker_ = std::thread([this] { run(); });
    checkpointer_ = std::thread([this] { checkpoint_loop(); });
    Status st = transport_->connect(std::chrono::seconds(10));
    if (st.is_ok()) st = transport_->subscribe(topics::ecu_down_filter(cfg_.ecu_id), 1);
    if (!st.is_ok()) {
      stop();
      return st;
    }
    OTA_LOGI(kLog, "%s: serving on %s, active bank %s (%s)", cfg_.ecu_id.c_str(), cfg_.broker_uri.c_str(),
             bank_name(active()), bank(active()).version().c_str());
    return Status::ok();
  }

  void wait() {
    std::unique_lock<std::mutex> lock(qmu_);
    stopped_cv_.wait(lock, [this] { return stop_requested_; });
  }

  void stop() {
    std::lock_guard<std::mutex> stop_lock(stop_mu_);  // stop() may race from a signal thread
    {
      std::lock_guard<std::mutex> lock(qmu_);
      stop_requested_ = true;
    }
    qcv_.notify_all();
    stopped_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    {
      // A chunk being handled on the transport's thread finishes before the transport goes away.
      std::unique_lock<std::mutex> lock(qmu_);
      qcv_.wait(lock, [this] { return !busy_; });
    }
    {
      std::lock_guard<std::mutex> lock(cmu_);
      ckpt_stop_ = true;
    }
    ccv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
    if (transport_ && transport_->connected()) {
      publish_msg(Leaf::kHello, make_hello(false), true);
      (void)transport_->flush(std::chrono::seconds(2));
      transport_->disconnect(std::chrono::seconds(2));
    }
    transport_.reset();
  }

  Bank active_bank() const {
    std::lock_guard<std::mutex> lock(smu_);
    return active();
  }
  std::string active_version() const {
    std::lock_guard<std::mutex> lock(smu_);
    return disk_.banks_size() == 2 ? bank(active()).version() : std::string();  // empty before start()
  }

 private:
  // The Device's bank openers, guarded like every supplier call.
  Status open_reader(Bank bank, std::unique_ptr<RandomReader>* out) {
    return guarded("open_bank_reader", [&] {
      auto r = dev_.open_bank_reader(bank);
      if (!r) return r.status();
      *out = std::move(*r);
      return Status::ok();
    });
  }
  Status open_writer(Bank bank, uint64_t offset, std::unique_ptr<BankWriter>* out) {
    return guarded("open_bank_writer", [&] {
      auto r = dev_.open_bank_writer(bank, offset);
      if (!r) return r.status();
      *out = std::move(*r);
      return Status::ok();
    });
  }

  // ------------------------------------------------------------------ durable state
  Bank active() const { return from_wire(disk_.active_bank()); }
  const v1::BankRecord& bank(Bank b) const { return disk_.banks(b == Bank::kA ? 0 : 1); }
  v1::BankRecord* mutable_bank(Bank b) { return disk_.mutable_banks(b == Bank::kA ? 0 : 1); }

  Status load_state() {
    auto content = read_small_file(state_path_, 1 << 20);
    std::lock_guard<std::mutex> lock(smu_);
    if (!content && content.status().code() == Code::kNotFound) {
      // First start: the factory image is in bank A.
      disk_.set_format(1);
      disk_.set_active_bank(v1::BANK_A);
      for (Bank b : {Bank::kA, Bank::kB}) {
        auto* rec = disk_.add_banks();
        rec->set_bank(to_wire(b));
        rec->set_valid(b == Bank::kA);
        if (b == Bank::kA) rec->set_version(cfg_.factory_version);
      }
      std::unique_ptr<RandomReader> reader;
      Status st = open_reader(Bank::kA, &reader);
      if (st.is_ok()) {
        uint64_t n = cfg_.factory_image_size ? cfg_.factory_image_size : reader->size();
        auto digest = sha256_reader(*reader, n);
        if (!digest) return digest.status().with_context("hashing the factory image");
        disk_.mutable_banks(0)->set_sha256(std::string(reinterpret_cast<const char*>(digest->data()), 32));
        disk_.mutable_banks(0)->set_size(n);
      } else {
        OTA_LOGW(kLog, "%s: factory image unreadable (%s): deltas will be refused until a full update",
                 cfg_.ecu_id.c_str(), st.to_string().c_str());
      }
      return save_state_locked();
    }
    if (!content) return content.status();
    Status st = codec::decode(*content, &disk_, 1 << 20, "agent state " + state_path_);
    if (!st.is_ok()) return st;
    if (disk_.format() != 1 || disk_.banks_size() != 2) {
      return Status(Code::kCorrupt,
                    state_path_ + ": unsupported state format " + std::to_string(disk_.format()));
    }
    return Status::ok();
  }

  Status save_state() {
    std::lock_guard<std::mutex> lock(smu_);
    return save_state_locked();
  }
  Status save_state_locked() { return write_state(disk_.SerializeAsString(), ++state_gen_); }

  // The state file is written from the protocol thread (under smu_) and from the checkpoint thread
  // (outside smu_, so that acknowledgements never wait on its fsyncs); the generation, taken under
  // smu_ with the snapshot, keeps an older snapshot from replacing a newer one.
  Status write_state(const std::string& bytes, uint64_t gen) {
    std::lock_guard<std::mutex> lock(file_mu_);
    if (gen <= written_gen_) return Status::ok();  // a newer snapshot is already on disk
    OTA_RETURN_IF_ERROR(atomic_write_file(state_path_, bytes));
    written_gen_ = gen;
    return Status::ok();
  }

  // A start in the middle of a trial means the new bank never got committed: go back to the previous
  // one, as a bootloader does when the trial boot is not confirmed.
  Status recover() {
    if (disk_.trial()) {
      Bank prev = from_wire(disk_.previous_bank());
      OTA_LOGW(kLog, "%s: restarted during the trial of bank %s; rolling back to %s", cfg_.ecu_id.c_str(),
               bank_name(active()), bank_name(prev));
      Status st = guarded("rollback", [&] { return dev_.rollback(prev); });
      if (!st.is_ok()) return st.with_context("rollback after restart");
      {
        std::lock_guard<std::mutex> lock(smu_);
        mutable_bank(active())->set_valid(false);
        disk_.set_active_bank(to_wire(prev));
        disk_.set_trial(false);
        disk_.set_phase(v1::PHASE_IDLE);
        codec::to_wire(Status(Code::kAborted, "agent restarted before commit; rolled back to bank " +
                                                  std::string(bank_name(prev))),
                       v1::PHASE_HEALTH, disk_.mutable_last_error());
      }
      OTA_RETURN_IF_ERROR(save_state());
    }
    if (disk_.phase() == v1::PHASE_INSTALL || disk_.phase() == v1::PHASE_ACTIVATE) {
      // Killed while reconstructing: the inactive bank is incomplete; the transfer itself is intact.
      std::lock_guard<std::mutex> lock(smu_);
      disk_.set_phase(v1::PHASE_TRANSFER);
      return save_state_locked();
    }
    return Status::ok();
  }

  // ------------------------------------------------------------------ messages out
  v1::Hello make_hello(bool online) {
    v1::Hello h;
    codec::set_protocol(h.mutable_protocol());
    h.set_online(online);
    h.set_boot_id(boot_id_);
    h.set_timestamp_ms(codec::now_ms());
    auto* inv = h.mutable_inventory();
    inv->set_ecu_id(cfg_.ecu_id);
    inv->set_hardware_id(cfg_.hardware_id);
    inv->set_serial(cfg_.serial);
    inv->set_agent_software(std::string("ota-agent-sdk ") + sdk_version());
    std::lock_guard<std::mutex> lock(smu_);
    inv->set_active_bank(disk_.active_bank());
    for (const auto& rec : disk_.banks()) {
      auto* b = inv->add_banks();
      b->set_bank(rec.bank());
      if (rec.valid()) {
        b->set_version(rec.version());
        b->set_sha256(rec.sha256());
        b->set_size(rec.size());
      }
      b->set_bootable(rec.valid());
    }
    auto* caps = inv->mutable_capabilities();
    caps->set_delta(cfg_.delta_capable);
    caps->set_max_chunk_size(cfg_.max_chunk_size);
    caps->set_max_window(cfg_.max_window);
    caps->add_payload_kinds(v1::PAYLOAD_KIND_FIRMWARE_IMAGE);
    caps->set_signed_reports(ecu_key_ != nullptr);
    if (cfg_.delta_capable) caps->add_delta_methods("ota-delta-1");
    inv->set_bank_size(dev_.bank_size());
    inv->set_free_space(dev_.free_space());
    return h;
  }

  void publish_msg(Leaf leaf, const google::protobuf::MessageLite& msg, bool retain, int qos = 1) {
    std::string bytes = msg.SerializeAsString();
    if (leaf == Leaf::kResult && ecu_key_) {
      auto signed_bytes = trust::sign_result(bytes, *ecu_key_);
      if (signed_bytes) {
        bytes = std::move(*signed_bytes);
      } else {
        OTA_LOGE(kLog, "%s: cannot sign a result: %s", cfg_.ecu_id.c_str(),
                 signed_bytes.status().to_string().c_str());
      }
    }
    Status st = transport_->publish(topics::ecu(cfg_.ecu_id, leaf), bytes, qos, retain);
    if (!st.is_ok()) OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
  }

  void publish_state(bool force) {
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_progress_ < cfg_.progress_interval) return;
    last_progress_ = now;
    v1::AgentState s;
    codec::set_protocol(s.mutable_protocol());
    s.set_ecu_id(cfg_.ecu_id);
    {
      std::lock_guard<std::mutex> lock(smu_);
      s.set_phase(disk_.phase() == v1::PHASE_UNSPECIFIED ? v1::PHASE_IDLE : disk_.phase());
      s.set_campaign_id(disk_.campaign_id());
      *s.mutable_last_error() = disk_.last_error();
    }
    s.set_correlation_id(current_correlation_);
    s.set_bytes_done(next_offset_);
    s.set_bytes_total(disk_.target().payload_size());
    if (disk_.target().payload_size() > 0) {
      s.set_percent(static_cast<uint32_t>(next_offset_ * 100 / disk_.target().payload_size()));
    }
    s.set_timestamp_ms(codec::now_ms());
    publish_msg(Leaf::kState, s, true);
  }

  void publish_dtcs(v1::DtcList* out) {
    std::vector<Dtc> dtcs;
    Status st = guarded("read_dtcs", [&] {
      dtcs = dev_.read_dtcs();
      return Status::ok();
    });
    if (!st.is_ok()) OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
    v1::DtcList list;
    codec::set_protocol(list.mutable_protocol());
    list.set_ecu_id(cfg_.ecu_id);
    list.set_timestamp_ms(codec::now_ms());
    for (const auto& d : dtcs) {
      auto* w = list.add_dtcs();
      w->set_code(d.code);
      w->set_status_mask(d.status_mask);
      w->set_status(d.active      ? v1::DTC_STATUS_ACTIVE
                    : d.confirmed ? v1::DTC_STATUS_CONFIRMED
                                  : v1::DTC_STATUS_PENDING);
      w->set_first_seen_ms(d.first_seen_ms);
      w->set_last_seen_ms(d.last_seen_ms);
      w->set_occurrences(d.occurrences);
      w->set_description(d.description);
    }
    publish_msg(Leaf::kDtc, list, true);
    if (out) *out = list;
  }

  v1::Result make_result(const v1::Command& cmd, v1::Outcome outcome, const Status& st) {
    v1::Result r;
    codec::set_protocol(r.mutable_protocol());
    r.set_correlation_id(cmd.correlation_id());
    r.set_ecu_id(cfg_.ecu_id);
    r.set_outcome(outcome);
    std::lock_guard<std::mutex> lock(smu_);
    r.set_phase(disk_.phase());
    if (!st.is_ok()) codec::to_wire(st, disk_.phase(), r.mutable_error());
    r.set_active_bank(disk_.active_bank());
    r.set_active_version(bank(active()).version());
    return r;
  }

  void reply(const v1::Command& cmd, v1::Outcome outcome, const Status& st,
             v1::Phase phase = v1::PHASE_UNSPECIFIED) {
    v1::Result r = make_result(cmd, outcome, st);
    if (!st.is_ok() && phase != v1::PHASE_UNSPECIFIED) r.mutable_error()->set_phase(phase);
    if (!st.is_ok()) {
      OTA_LOGW(kLog, "%s: %s failed in %s: %s", cfg_.ecu_id.c_str(), cmd.correlation_id().c_str(),
               codec::phase_name(r.error().phase()), st.to_string().c_str());
    }
    publish_msg(Leaf::kResult, r, false);
  }

  // ------------------------------------------------------------------ worker
  void enqueue(TransportMessage&& m) {
    {
      std::lock_guard<std::mutex> lock(qmu_);
      queue_.push_back(std::move(m));
    }
    qcv_.notify_all();
  }

  static bool is_data(const TransportMessage& m) {
    static constexpr std::string_view kSuffix = "/data";
    return m.topic.size() > kSuffix.size() &&
           m.topic.compare(m.topic.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
  }

  // The transport's callback. busy_ marks that a message is being handled (here or by the worker),
  // so that handling stays one at a time and in arrival order.
  void deliver(TransportMessage&& m) {
    std::unique_lock<std::mutex> lock(qmu_);
    if (stop_requested_) return;
    if (busy_ || !queue_.empty() || !is_data(m)) {
      queue_.push_back(std::move(m));
      lock.unlock();
      qcv_.notify_all();
      return;
    }
    busy_ = true;
    lock.unlock();
    dispatch_guarded(m);
    lock.lock();
    busy_ = false;
    // Only a queued message (the worker) or stop() waits for this: waking the worker for nothing
    // after every chunk cost two futex calls and a context switch per chunk.
    const bool wake = !queue_.empty() || stop_requested_;
    lock.unlock();
    if (wake) qcv_.notify_all();
  }

  void run() {
    for (;;) {
      TransportMessage m;
      {
        std::unique_lock<std::mutex> lock(qmu_);
        qcv_.wait(lock, [this] { return stop_requested_ || (!queue_.empty() && !busy_); });
        if (stop_requested_) return;
        m = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
      }
      dispatch_guarded(m);
      {
        std::lock_guard<std::mutex> lock(qmu_);
        busy_ = false;
      }
      qcv_.notify_all();
    }
  }

  // Nothing escapes into the transport's thread or ends the worker.
  void dispatch_guarded(const TransportMessage& m) {
    try {
      dispatch(m);
    } catch (const std::exception& e) {
      OTA_LOGE(kLog, "%s: internal error handling %s: %s", cfg_.ecu_id.c_str(), m.topic.c_str(), e.what());
    } catch (...) {
      OTA_LOGE(kLog, "%s: internal error handling %s: unknown exception", cfg_.ecu_id.c_str(),
               m.topic.c_str());
    }
  }

  void dispatch(const TransportMessage& m) {
    if (m.topic.empty()) {  // (re)connected
      publish_msg(Leaf::kHello, make_hello(true), true);
      publish_state(true);
      publish_dtcs(nullptr);
      return;
    }
    std::string ecu;
    Leaf leaf = Leaf::kUnknown;
    if (!topics::parse_ecu_topic(m.topic, &ecu, &leaf) || ecu != cfg_.ecu_id) return;
    if (leaf == Leaf::kData) {
      codec::ChunkView chunk;
      Status st = codec::decode_chunk(m.payload, &chunk);
      if (!st.is_ok()) {
        OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
        return;
      }
      on_chunk(chunk);
    } else if (leaf == Leaf::kCmd) {
      v1::Command cmd;
      Status st = codec::decode(m.payload, &cmd, codec::kMaxControlMessage, "command");
      if (!st.is_ok()) {
        OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
        return;
      }
      on_command(cmd);
    }
  }

  void on_command(const v1::Command& cmd) {
    Status version = codec::check_protocol(cmd.protocol(), "command " + cmd.correlation_id());
    if (!version.is_ok()) {
      v1::Result r = make_result(cmd, v1::OUTCOME_REFUSED, version);
      r.mutable_error()->set_code(v1::ERROR_CODE_UNSUPPORTED_VERSION);
      OTA_LOGW(kLog, "%s: refused: %s", cfg_.ecu_id.c_str(), version.message().c_str());
      publish_msg(Leaf::kResult, r, false);
      return;
    }
    current_correlation_ = cmd.correlation_id();
    switch (cmd.body_case()) {
      case v1::Command::kStartTransfer:
        return on_start_transfer(cmd);
      case v1::Command::kInstall:
        return on_install(cmd);
      case v1::Command::kActivate:
        return on_activate(cmd);
      case v1::Command::kCommit:
        return on_commit(cmd);
      case v1::Command::kRollback:
        return on_rollback(cmd, cmd.rollback().reason());
      case v1::Command::kCancel:
        return on_cancel(cmd);
      case v1::Command::kGetInventory: {
        v1::Result r = make_result(cmd, v1::OUTCOME_OK, Status::ok());
        *r.mutable_inventory() = make_hello(true).inventory();
        return publish_msg(Leaf::kResult, r, false);
      }
      case v1::Command::kReadDtcs: {
        v1::Result r = make_result(cmd, v1::OUTCOME_OK, Status::ok());
        publish_dtcs(r.mutable_dtcs());
        return publish_msg(Leaf::kResult, r, false);
      }
      case v1::Command::kClearDtcs: {
        std::vector<uint32_t> codes(cmd.clear_dtcs().codes().begin(), cmd.clear_dtcs().codes().end());
        Status st = guarded("clear_dtcs", [&] { return dev_.clear_dtcs(codes); });
        v1::Result r = make_result(cmd, st.is_ok() ? v1::OUTCOME_OK : v1::OUTCOME_FAILED, st);
        publish_dtcs(r.mutable_dtcs());
        return publish_msg(Leaf::kResult, r, false);
      }
      default:
        return reply(
            cmd, v1::OUTCOME_REFUSED,
            Status(Code::kUnsupported, "command " + cmd.correlation_id() + " has no body this agent knows"));
    }
  }

  void set_phase(v1::Phase phase) {
    {
      std::lock_guard<std::mutex> lock(smu_);
      disk_.set_phase(phase);
    }
    publish_state(true);
  }

  void fail(const v1::Command& cmd, const Status& st, v1::Phase phase,
            v1::Outcome outcome = v1::OUTCOME_FAILED) {
    {
      std::lock_guard<std::mutex> lock(smu_);
      codec::to_wire(st, phase, disk_.mutable_last_error());
    }
    (void)save_state();
    reply(cmd, outcome, st, phase);
    publish_state(true);
  }

  // ------------------------------------------------------------------ transfer
  Status check_target(const v1::StartTransfer& st) {
    const v1::Target& t = st.target();
    Digest d;
    if (st.transfer_id().empty() || st.transfer_id().size() > 256) {
      return Status(Code::kInvalidArgument, "transfer_id must be 1-256 bytes");
    }
    if (!digest_from_bytes(t.sha256(), &d) || !digest_from_bytes(t.payload_sha256(), &d)) {
      return Status(Code::kInvalidArgument, "target sha256 and payload_sha256 must be 32 bytes");
    }
    if (!cfg_.hardware_id.empty() && !t.hardware_id().empty() && t.hardware_id() != cfg_.hardware_id) {
      return Status(Code::kRejected, "target is built for hardware '" + t.hardware_id() + "', this ECU is '" +
                                         cfg_.hardware_id + "'");
    }
    if (t.size() > dev_.bank_size()) {
      return Status(Code::kNoSpace, "image of " + std::to_string(t.size()) +
                                        " bytes does not fit a bank of " + std::to_string(dev_.bank_size()));
    }
    if (st.chunk_size() == 0 || st.chunk_size() > cfg_.max_chunk_size) {
      return Status(Code::kInvalidArgument, "chunk size " + std::to_string(st.chunk_size()) +
                                                " is outside 1.." + std::to_string(cfg_.max_chunk_size));
    }
    if (t.encoding() == v1::PAYLOAD_ENCODING_RAW) {
      if (t.payload_size() != t.size() || t.payload_sha256() != t.sha256()) {
        return Status(Code::kInvalidArgument, "a raw payload must be the image itself (size and sha256)");
      }
    } else if (t.encoding() == v1::PAYLOAD_ENCODING_DELTA) {
      if (!cfg_.delta_capable) return Status(Code::kUnsupported, "this agent does not accept delta payloads");
      const auto& base = bank(active());
      if (t.base_sha256() != base.sha256()) {
        return Status(Code::kRejected, "delta base " + t.base_version() +
                                           " does not match the active bank (" + base.version() + ")");
      }
      if (t.payload_size() > dev_.free_space()) {
        return Status(Code::kNoSpace, "delta payload of " + std::to_string(t.payload_size()) +
                                          " bytes exceeds the free staging space");
      }
    } else {
      return Status(Code::kUnsupported,
                    "payload encoding " + std::to_string(t.encoding()) + " is not supported");
    }
    OTA_RETURN_IF_ERROR(apply_root_updates(st));
    OTA_RETURN_IF_ERROR(verify_signed_target(t));
    if (t.kind() != v1::PAYLOAD_KIND_UNSPECIFIED && t.kind() != v1::PAYLOAD_KIND_FIRMWARE_IMAGE) {
      return Status(Code::kUnsupported, "payload kind " + std::to_string(t.kind()) + " is not supported");
    }
    if (disk_.trial()) return Status(Code::kRejected, "an activated update awaits commit or rollback");
    return Status::ok();
  }

  // Root rotations handed over with the transfer, oldest first: those above the root in force go
  // through AgentVerifier::update_root (version + 1, thresholds of the old and the new root keys) in
  // order, and the newest accepted one is persisted. A bad one refuses the transfer.
  Status apply_root_updates(const v1::StartTransfer& st) {
    if (!verifier_ || st.root_updates().empty()) return Status::ok();
    const uint64_t before = verifier_->root_version();
    Status result;
    for (const auto& signed_root : st.root_updates()) {
      auto claimed = trust::claimed_root_version(signed_root);
      if (!claimed) {
        result = claimed.status().with_context("root update");
        break;
      }
      if (*claimed <= verifier_->root_version()) continue;  // already in force: nothing is trusted from it
      result = verifier_->update_root(signed_root).with_context("root update");
      if (!result.is_ok()) break;
    }
    // The roots accepted before a bad one stay accepted: persist them whatever follows.
    if (verifier_->root_version() != before) {
      OTA_RETURN_IF_ERROR(
          atomic_write_file(trust_root_path_, verifier_->signed_root()).with_context("root update"));
      OTA_LOGI(kLog, "%s: trust root rotated from version %llu to %llu", cfg_.ecu_id.c_str(),
               static_cast<unsigned long long>(before),
               static_cast<unsigned long long>(verifier_->root_version()));
    }
    return result;
  }

  // The agent's own check of what the client hands it: signed by the director for this ECU, the
  // very image (hash, size, version) the client announces, no downgrade unless allowed, no replay.
  Status verify_signed_target(const v1::Target& t) {
    if (!verifier_) return Status::ok();
    if (t.signed_target().empty()) {
      return Status(Code::kSignatureInvalid,
                    "target " + t.version() + " carries no signed director metadata");
    }
    trust::AgentIdentity me;
    me.ecu_id = cfg_.ecu_id;
    me.hardware_id = cfg_.hardware_id;
    me.active_version = bank(active()).version();
    me.min_director_version = disk_.director_version();
    trust::SystemClock clock;
    auto verified = verifier_->verify_target(t.signed_target(), t.signed_image(), me, &clock);
    if (!verified) return verified.status();
    const trust::CampaignTarget& signed_target = verified->target;
    if (std::string(reinterpret_cast<const char*>(signed_target.sha256.data()), 32) != t.sha256() ||
        signed_target.size != t.size() || signed_target.version != t.version()) {
      return Status(Code::kRejected,
                    "the target announced (" + t.version() + ", " + std::to_string(t.size()) +
                        " bytes) is not the one the director signed for " + cfg_.ecu_id + " (" +
                        signed_target.version + ", " + std::to_string(signed_target.size) + " bytes)");
    }
    if (t.allow_downgrade() && !signed_target.allow_downgrade) {
      return Status(Code::kRejected, "allow_downgrade is set but not signed by the director");
    }
    std::lock_guard<std::mutex> lock(smu_);
    if (verified->director_version > disk_.director_version())
      disk_.set_director_version(verified->director_version);
    return Status::ok();
  }

  bool is_delta() const { return disk_.target().encoding() == v1::PAYLOAD_ENCODING_DELTA; }

  Result<std::unique_ptr<BankWriter>> open_destination(uint64_t offset) {
    if (is_delta()) {
      auto sink = FileSink::open(staging_path_, offset);
      if (!sink) return sink.status();
      return std::unique_ptr<BankWriter>(new StagingWriter(std::move(*sink)));
    }
    Bank inactive = other(active());
    std::unique_ptr<BankWriter> w;
    OTA_RETURN_IF_ERROR(open_writer(inactive, offset, &w));
    return w;
  }

  // Re-hashes the durable prefix of the payload after a restart, so the whole-payload SHA-256 still
  // covers every byte.
  Status rehash_prefix(uint64_t n) {
    std::unique_ptr<RandomReader> reader;
    if (is_delta()) {
      auto r = FileReader::open(staging_path_);
      if (!r) return r.status();
      reader = std::move(*r);
    } else {
      OTA_RETURN_IF_ERROR(open_reader(other(active()), &reader));
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

  void close_transfer() {
    Status ck = settle_checkpoints();
    if (!ck.is_ok()) OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), ck.to_string().c_str());
    writer_.reset();
    transfer_open_ = false;
    payload_hash_.finish();
  }

  void on_start_transfer(const v1::Command& cmd) {
    const v1::StartTransfer& req = cmd.start_transfer();
    const bool same = !disk_.transfer_id().empty() && disk_.transfer_id() == req.transfer_id() &&
                      disk_.target().sha256() == req.target().sha256() &&
                      disk_.target().payload_sha256() == req.target().payload_sha256() &&
                      disk_.chunk_size() == req.chunk_size();
    if (same && (disk_.phase() == v1::PHASE_STAGED || disk_.phase() == v1::PHASE_TRIAL ||
                 disk_.phase() == v1::PHASE_DONE || disk_.trial())) {
      // Already staged (or further): nothing to receive.
      v1::Result r = make_result(cmd, v1::OUTCOME_OK, Status::ok());
      r.mutable_transfer_ready()->set_resume_offset(disk_.target().payload_size());
      return publish_msg(Leaf::kResult, r, false);
    }
    Status st = check_target(req);
    if (!st.is_ok()) return fail(cmd, st, v1::PHASE_TRANSFER, v1::OUTCOME_REFUSED);

    if (same && transfer_open_) {
      // The client restarted or reconnected: make what we hold durable and continue from there.
      st = settle_checkpoints();
      if (st.is_ok()) st = guarded("sync", [&] { return writer_->sync(); });
      if (st.is_ok()) {
        std::lock_guard<std::mutex> lock(smu_);
        disk_.set_durable_offset(next_offset_);
        st = save_state_locked();
      }
      if (!st.is_ok()) return fail(cmd, st, v1::PHASE_TRANSFER);
    } else {
      close_transfer();
      uint64_t resume = same ? disk_.durable_offset() : 0;
      {
        std::lock_guard<std::mutex> lock(smu_);
        disk_.set_transfer_id(req.transfer_id());
        *disk_.mutable_target() = req.target();
        disk_.set_chunk_size(req.chunk_size());
        disk_.set_campaign_id(cmd.campaign_id());
        disk_.set_durable_offset(resume);
        disk_.set_phase(v1::PHASE_TRANSFER);
        disk_.clear_last_error();
        // The inactive bank is about to be overwritten: it no longer holds a valid image.
        mutable_bank(other(active()))->set_valid(false);
        st = save_state_locked();
      }
      if (st.is_ok() && resume > 0) st = rehash_prefix(resume);
      if (!st.is_ok()) {
        // A prefix we cannot read back cannot be trusted: start over.
        OTA_LOGW(kLog, "%s: cannot resume (%s); restarting transfer", cfg_.ecu_id.c_str(),
                 st.to_string().c_str());
        payload_hash_.finish();
        resume = 0;
        disk_.set_durable_offset(0);
        st = save_state();
      }
      if (st.is_ok()) {
        auto w = open_destination(resume);
        if (!w) {
          st = w.status();
        } else {
          writer_ = std::move(*w);
          next_offset_ = resume;
          since_durable_ = 0;
          transfer_open_ = true;
          gap_reported_ = false;
        }
      }
      if (!st.is_ok()) return fail(cmd, st, v1::PHASE_TRANSFER);
      if (resume > 0) {
        OTA_LOGI(kLog, "%s: resuming %s at byte %llu", cfg_.ecu_id.c_str(), req.transfer_id().c_str(),
                 static_cast<unsigned long long>(resume));
      }
    }
    v1::Result r = make_result(cmd, v1::OUTCOME_OK, Status::ok());
    r.mutable_transfer_ready()->set_resume_offset(next_offset_);
    publish_msg(Leaf::kResult, r, false);
    publish_state(true);
    publish_msg(Leaf::kHello, make_hello(true), true);  // the inactive bank no longer holds an image
  }

  void send_ack(const Status& err) {
    v1::ChunkAck ack;
    ack.set_transfer_id(disk_.transfer_id());
    ack.set_next_offset(next_offset_);
    {
      std::lock_guard<std::mutex> lock(smu_);  // the checkpoint thread moves it
      ack.set_durable_offset(disk_.durable_offset());
    }
    if (!err.is_ok()) codec::to_wire(err, v1::PHASE_TRANSFER, ack.mutable_error());
    // QoS 0: acks are cumulative, so a lost one is covered by the next, and a lost last one by the
    // client's resync; QoS 1 would double the packets on the busiest path.
    publish_msg(Leaf::kAck, ack, false, 0);
  }

  void abort_transfer(const Status& st) {
    OTA_LOGW(kLog, "%s: transfer %s failed: %s", cfg_.ecu_id.c_str(), disk_.transfer_id().c_str(),
             st.to_string().c_str());
    close_transfer();
    {
      std::lock_guard<std::mutex> lock(smu_);
      codec::to_wire(st, v1::PHASE_TRANSFER, disk_.mutable_last_error());
    }
    (void)save_state();
    send_ack(st);
    publish_state(true);
  }

  void on_chunk(const codec::ChunkView& c) {
    if (!transfer_open_ || c.transfer_id != disk_.transfer_id()) return;  // stale: from a finished transfer
    const uint64_t total = disk_.target().payload_size();
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
    if (data.size() > disk_.chunk_size() || c.offset + data.size() > total ||
        (c.offset + data.size() < total && data.size() != disk_.chunk_size()) || data.empty()) {
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
      if (std::string_view(reinterpret_cast<const char*>(got.data()), 32) !=
          disk_.target().payload_sha256()) {
        // The bytes are wrong somewhere: nothing is worth resuming. The ack says so.
        close_transfer();
        payload_complete_ = false;
        Status bad(Code::kHashMismatch,
                   "payload SHA-256 " + to_hex(got) + " does not match the target's " +
                       to_hex(reinterpret_cast<const uint8_t*>(disk_.target().payload_sha256().data()), 32));
        {
          std::lock_guard<std::mutex> lock(smu_);
          disk_.set_durable_offset(0);
          codec::to_wire(bad, v1::PHASE_TRANSFER, disk_.mutable_last_error());
        }
        (void)save_state();
        next_offset_ = 0;
        send_ack(bad);
        publish_state(true);
        return;
      }
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
      transfer_open_ = false;
    }
    send_ack(Status::ok());
    publish_state(complete);
  }

  // ------------------------------------------------------------------ checkpoints
  // A checkpoint syncs the bank up to next_offset_ and then records that offset as durable in the
  // state file. With a writer that may sync beside writes it runs on the checkpoint thread, one at
  // a time, while the data thread goes on writing and acknowledging; a request made meanwhile waits
  // for it (at most one waits: a newer request replaces it). Otherwise it runs here, between two
  // writes.
  struct Checkpoint {
    std::shared_ptr<BankWriter> writer;
    std::string transfer_id;
    uint64_t offset = 0;
  };

  Status checkpoint() {
    Checkpoint c{writer_, disk_.transfer_id(), next_offset_};
    if (!writer_->concurrent_sync()) {
      since_durable_ = 0;
      return run_checkpoint(c);
    }
    {
      std::lock_guard<std::mutex> lock(cmu_);
      if (!ckpt_error_.is_ok()) {
        Status st = ckpt_error_;
        ckpt_error_ = Status::ok();
        return st;
      }
      ckpt_pending_ = std::move(c);  // replaces one still waiting: this one covers more
    }
    since_durable_ = 0;
    ccv_.notify_all();
    return Status::ok();
  }

  Status run_checkpoint(const Checkpoint& c) {
    OTA_RETURN_IF_ERROR(guarded("sync", [&] { return c.writer->sync(); }));
    std::string bytes;
    uint64_t gen = 0;
    {
      std::lock_guard<std::mutex> lock(smu_);
      if (disk_.transfer_id() != c.transfer_id || c.offset <= disk_.durable_offset()) return Status::ok();
      disk_.set_durable_offset(c.offset);
      bytes = disk_.SerializeAsString();
      gen = ++state_gen_;
    }
    return write_state(bytes, gen);
  }

  void checkpoint_loop() {
    std::unique_lock<std::mutex> lock(cmu_);
    for (;;) {
      ccv_.wait(lock, [this] { return ckpt_stop_ || ckpt_pending_.has_value(); });
      if (!ckpt_pending_) return;
      Checkpoint c = std::move(*ckpt_pending_);
      ckpt_pending_.reset();
      ckpt_running_ = true;
      lock.unlock();
      Status st = run_checkpoint(c);
      c.writer.reset();
      lock.lock();
      ckpt_running_ = false;
      if (!st.is_ok() && ckpt_error_.is_ok())
        ckpt_error_ = st.with_context("checkpoint at byte " + std::to_string(c.offset));
      ccv_.notify_all();
    }
  }

  // Waits for the checkpoint in flight, if any, and returns (and clears) an error it had.
  Status settle_checkpoints() {
    std::unique_lock<std::mutex> lock(cmu_);
    ccv_.wait(lock, [this] { return ckpt_stop_ || (!ckpt_pending_ && !ckpt_running_); });
    Status st = ckpt_error_;
    ckpt_error_ = Status::ok();
    return st;
  }

  // ------------------------------------------------------------------ install / activate / commit
  Status verify_payload() {
    const v1::Target& t = disk_.target();
    if (disk_.durable_offset() != t.payload_size()) {
      // NOT_FOUND tells the client to resume the transfer (e.g. the agent restarted after the last
      // chunk, before its checkpoint), then install again.
      return Status(Code::kNotFound, "transfer incomplete: " + std::to_string(disk_.durable_offset()) +
                                         " of " + std::to_string(t.payload_size()) + " bytes held durably");
    }
    if (!payload_complete_) {
      // Received in an earlier run of the agent: hash it again from where it is stored.
      payload_hash_.finish();  // drop whatever a resume hashed so far
      OTA_RETURN_IF_ERROR(rehash_prefix(t.payload_size()));
      payload_digest_ = payload_hash_.finish();
      payload_complete_ = true;
    }
    if (std::string(reinterpret_cast<const char*>(payload_digest_.data()), 32) != t.payload_sha256()) {
      return Status(Code::kHashMismatch,
                    "payload SHA-256 " + to_hex(payload_digest_) + " does not match the target's " +
                        to_hex(reinterpret_cast<const uint8_t*>(t.payload_sha256().data()), 32));
    }
    return Status::ok();
  }

  Status reconstruct() {
    const v1::Target& t = disk_.target();
    Bank inactive = other(active());
    std::unique_ptr<RandomReader> base;
    OTA_RETURN_IF_ERROR(open_reader(active(), &base));
    std::unique_ptr<BankWriter> out;
    OTA_RETURN_IF_ERROR(open_writer(inactive, 0, &out));
    auto delta_file = FileReader::open(staging_path_);
    if (!delta_file) return delta_file.status();
    // The bank may be larger than the image in it: the base is exactly the active image.
    struct BoundedReader : RandomReader {
      RandomReader& r;
      uint64_t n;
      BoundedReader(RandomReader& rr, uint64_t nn) : r(rr), n(nn) {}
      uint64_t size() const override { return n; }
      Status read_at(uint64_t off, uint8_t* buf, size_t len) override {
        if (off > n || len > n - off) return Status(Code::kCorrupt, "read beyond the base image");
        return r.read_at(off, buf, len);
      }
    } bounded(*base, bank(active()).size());
    WriterSink sink(*out);
    HashingSink hashing(&sink);
    OTA_RETURN_IF_ERROR(delta::apply_delta(bounded, **delta_file, hashing));
    OTA_RETURN_IF_ERROR(guarded("sync", [&] { return out->sync(); }));
    Digest d = hashing.finish();
    if (hashing.bytes() != t.size() ||
        std::string(reinterpret_cast<const char*>(d.data()), 32) != t.sha256()) {
      return Status(Code::kHashMismatch, "reconstructed image (" + std::to_string(hashing.bytes()) +
                                             " bytes, SHA-256 " + to_hex(d) + ") is not the target");
    }
    return Status::ok();
  }

  void on_install(const v1::Command& cmd) {
    if (cmd.install().transfer_id() != disk_.transfer_id() || disk_.transfer_id().empty()) {
      return reply(cmd, v1::OUTCOME_REFUSED,
                   Status(Code::kNotFound, "no transfer '" + cmd.install().transfer_id() + "' to install"));
    }
    if (disk_.phase() == v1::PHASE_STAGED || disk_.phase() == v1::PHASE_DONE || disk_.trial()) {
      return reply(cmd, v1::OUTCOME_OK, Status::ok());  // idempotent: already installed
    }
    Status st = settle_checkpoints();  // the transfer's last checkpoint
    set_phase(v1::PHASE_INSTALL);
    (void)save_state();
    if (st.is_ok()) st = verify_payload();
    if (st.is_ok() && is_delta()) st = reconstruct();
    if (st.is_ok()) {
      ImageInfo info{disk_.target().version(), disk_.target().size(),
                     to_hex(reinterpret_cast<const uint8_t*>(disk_.target().sha256().data()), 32)};
      st = guarded("finish_install", [&] { return dev_.finish_install(other(active()), info); });
    }
    if (!st.is_ok()) {
      {
        std::lock_guard<std::mutex> lock(smu_);
        disk_.set_phase(v1::PHASE_TRANSFER);
        if (st.code() == Code::kHashMismatch) disk_.set_durable_offset(0);
      }
      payload_complete_ = false;
      return fail(cmd, st, v1::PHASE_INSTALL);
    }
    {
      std::lock_guard<std::mutex> lock(smu_);
      auto* rec = mutable_bank(other(active()));
      rec->set_version(disk_.target().version());
      rec->set_sha256(disk_.target().sha256());
      rec->set_size(disk_.target().size());
      rec->set_valid(true);
      disk_.set_phase(v1::PHASE_STAGED);
      st = save_state_locked();
    }
    if (!st.is_ok()) return fail(cmd, st, v1::PHASE_INSTALL);
    if (is_delta()) ::unlink(staging_path_.c_str());
    publish_state(true);
    publish_msg(Leaf::kHello, make_hello(true), true);
    reply(cmd, v1::OUTCOME_OK, Status::ok());
  }

  Status run_health_check(Bank b, std::chrono::milliseconds timeout) {
    // The check runs on its own thread so that a hung check cannot hang the agent; if it times out the
    // thread is left to finish on its own.
    auto promise = std::make_shared<std::promise<Status>>();
    auto future = promise->get_future();
    Device* dev = &dev_;
    std::thread([promise, dev, b, timeout] {
      promise->set_value(guarded("health_check", [&] { return dev->health_check(b, timeout); }));
    }).detach();
    if (future.wait_for(timeout) != std::future_status::ready) {
      return Status(Code::kTimeout,
                    "health check did not answer within " + std::to_string(timeout.count()) + " ms");
    }
    return future.get();
  }

  // Returns to `prev` after a failed activation or health check, or on command.
  Status rollback_to(Bank prev) {
    set_phase(v1::PHASE_ROLLBACK);
    Status st = guarded("rollback", [&] { return dev_.rollback(prev); });
    std::lock_guard<std::mutex> lock(smu_);
    mutable_bank(active())->set_valid(active() != prev ? false : bank(active()).valid());
    disk_.set_active_bank(to_wire(prev));
    disk_.set_trial(false);
    disk_.set_phase(v1::PHASE_IDLE);
    disk_.clear_transfer_id();
    Status saved = save_state_locked();
    return st.is_ok() ? saved : st;
  }

  void on_activate(const v1::Command& cmd) {
    if (disk_.trial() && disk_.transfer_id() == cmd.activate().transfer_id()) {
      return reply(cmd, v1::OUTCOME_OK, Status::ok());  // already active on trial
    }
    if (disk_.phase() != v1::PHASE_STAGED || disk_.transfer_id() != cmd.activate().transfer_id()) {
      return reply(cmd, v1::OUTCOME_REFUSED,
                   Status(Code::kRejected, "nothing staged for '" + cmd.activate().transfer_id() + "'"));
    }
    const Bank prev = active();
    const Bank next = other(prev);
    {
      // Record the intent first: a kill from here on restarts into a rollback to `prev`.
      std::lock_guard<std::mutex> lock(smu_);
      disk_.set_trial(true);
      disk_.set_previous_bank(to_wire(prev));
      disk_.set_active_bank(to_wire(next));
      disk_.set_phase(v1::PHASE_ACTIVATE);
      Status st = save_state_locked();
      if (!st.is_ok()) {
        disk_.set_trial(false);
        disk_.set_active_bank(to_wire(prev));
        disk_.set_phase(v1::PHASE_STAGED);
        return fail(cmd, st, v1::PHASE_ACTIVATE);
      }
    }
    publish_state(true);
    ImageInfo info{disk_.target().version(), disk_.target().size(),
                   to_hex(reinterpret_cast<const uint8_t*>(disk_.target().sha256().data()), 32)};
    Status st = guarded("activate", [&] { return dev_.activate(next, info); });
    v1::Phase failed_phase = v1::PHASE_ACTIVATE;
    if (st.is_ok()) {
      set_phase(v1::PHASE_HEALTH);
      auto timeout = cmd.activate().health_timeout_ms() > 0
                         ? std::chrono::milliseconds(cmd.activate().health_timeout_ms())
                         : cfg_.health_timeout;
      st = run_health_check(next, timeout);
      failed_phase = v1::PHASE_HEALTH;
    }
    if (!st.is_ok()) {
      Status rb = rollback_to(prev);
      Status reported = rb.is_ok() ? st.with_context(std::string("rolled back to bank ") + bank_name(prev))
                                   : st.with_context("rollback failed too (" + rb.to_string() + ")");
      publish_msg(Leaf::kHello, make_hello(true), true);
      return fail(cmd, reported, failed_phase, v1::OUTCOME_ROLLED_BACK);
    }
    set_phase(v1::PHASE_TRIAL);
    (void)save_state();
    publish_msg(Leaf::kHello, make_hello(true), true);
    reply(cmd, v1::OUTCOME_OK, Status::ok());
  }

  void on_commit(const v1::Command& cmd) {
    if (!disk_.trial()) {
      if (disk_.phase() == v1::PHASE_DONE && disk_.transfer_id() == cmd.commit().transfer_id()) {
        return reply(cmd, v1::OUTCOME_OK, Status::ok());
      }
      return reply(cmd, v1::OUTCOME_REFUSED, Status(Code::kRejected, "no activated update to commit"));
    }
    set_phase(v1::PHASE_COMMIT);
    Status st = guarded("commit", [&] { return dev_.commit(active()); });
    if (!st.is_ok()) {
      // Stay on trial: the client decided to commit the whole group and retries. The ECU still runs
      // the healthy new image, and a restart before a commit returns it to the previous bank.
      set_phase(v1::PHASE_TRIAL);
      return fail(cmd, st, v1::PHASE_COMMIT);
    }
    {
      std::lock_guard<std::mutex> lock(smu_);
      disk_.set_trial(false);
      disk_.set_phase(v1::PHASE_DONE);
      st = save_state_locked();
    }
    publish_state(true);
    publish_msg(Leaf::kHello, make_hello(true), true);
    reply(cmd, st.is_ok() ? v1::OUTCOME_OK : v1::OUTCOME_FAILED, st);
  }

  void on_rollback(const v1::Command& cmd, const std::string& reason) {
    OTA_LOGI(kLog, "%s: rollback requested%s%s", cfg_.ecu_id.c_str(), reason.empty() ? "" : ": ",
             reason.c_str());
    close_transfer();
    payload_complete_ = false;
    Status st;
    if (disk_.trial()) {
      st = rollback_to(from_wire(disk_.previous_bank()));
    } else {
      std::lock_guard<std::mutex> lock(smu_);
      if (disk_.phase() == v1::PHASE_STAGED) mutable_bank(other(active()))->set_valid(false);
      if (disk_.phase() != v1::PHASE_DONE) {
        disk_.set_phase(v1::PHASE_IDLE);
        disk_.clear_transfer_id();
      }
      st = save_state_locked();
    }
    publish_state(true);
    publish_msg(Leaf::kHello, make_hello(true), true);
    reply(cmd, st.is_ok() ? v1::OUTCOME_ROLLED_BACK : v1::OUTCOME_FAILED, st);
  }

  void on_cancel(const v1::Command& cmd) {
    if (disk_.trial()) {
      return reply(
          cmd, v1::OUTCOME_REFUSED,
          Status(Code::kRejected, "update already activated: cancel no longer applies, roll back instead"));
    }
    on_rollback(cmd, "cancelled");
  }

  AgentConfig cfg_;
  Device& dev_;
  std::unique_ptr<trust::AgentVerifier> verifier_;
  std::string trust_root_path_;  // {state_dir}/trust-root.signed: the newest root accepted over the air
  std::unique_ptr<trust::PrivateKey> ecu_key_;
  uint64_t boot_id_ = 0;
  std::unique_ptr<Transport> transport_;
  std::string state_path_;
  std::string staging_path_;

  mutable std::mutex smu_;  // guards disk_ against readers on other threads (active_bank()).
  v1::AgentDiskState disk_;

  std::mutex stop_mu_;
  std::mutex qmu_;
  std::condition_variable qcv_;
  std::condition_variable stopped_cv_;
  std::deque<TransportMessage> queue_;
  bool busy_ = false;  // a message is being handled (by the worker or on the transport's thread)
  bool stop_requested_ = false;
  std::thread worker_;

  std::mutex file_mu_;        // writes of the state file
  uint64_t state_gen_ = 0;    // snapshot generation (under smu_)
  uint64_t written_gen_ = 0;  // generation on disk (under file_mu_)

  // Checkpoints (see checkpoint()).
  std::mutex cmu_;
  std::condition_variable ccv_;
  std::optional<Checkpoint> ckpt_pending_;
  bool ckpt_running_ = false;
  bool ckpt_stop_ = false;
  Status ckpt_error_;
  std::thread checkpointer_;

  // Transfer in progress (protocol thread only: the worker, or the transport's thread for chunks).
  std::shared_ptr<BankWriter> writer_;
  bool transfer_open_ = false;
  bool gap_reported_ = false;
  Sha256 payload_hash_;
  Digest payload_digest_{};
  bool payload_complete_ = false;
  uint64_t next_offset_ = 0;
  uint64_t since_durable_ = 0;
  std::string current_correlation_;
  std::chrono::steady_clock::time_point last_progress_{};
};

Agent::Agent(AgentConfig config, Device& device) : impl_(std::make_unique<Impl>(std::move(config), device)) {}
Agent::~Agent() = default;
Status Agent::start() { return impl_->start(); }
void Agent::wait() { impl_->wait(); }
void Agent::stop() { impl_->stop(); }
Bank Agent::active_bank() const { return impl_->active_bank(); }
std::string Agent::active_version() const { return impl_->active_version(); }

}  // namespace ota::agent
