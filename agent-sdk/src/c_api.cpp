// The C ABI of ota/agent.h over ota::agent::Agent: a Device that forwards to the C callbacks, and
// extern "C" entry points that never let a C++ exception cross into C.
#include "ota/agent.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "ota/agent.hpp"
#include "ota/core/log.hpp"
#include "ota/core/status.hpp"
#include "ota/core/topics.hpp"

using ota::Code;
using ota::Status;
using ota::agent::Bank;

// The C enums are promised to mirror the C++ ones value for value.
static_assert(OTA_OK == static_cast<int>(Code::kOk), "ota_status_t must mirror ota::Code");
static_assert(OTA_ERR_INVALID_ARGUMENT == static_cast<int>(Code::kInvalidArgument), "");
static_assert(OTA_ERR_NOT_FOUND == static_cast<int>(Code::kNotFound), "");
static_assert(OTA_ERR_CORRUPT == static_cast<int>(Code::kCorrupt), "");
static_assert(OTA_ERR_IO == static_cast<int>(Code::kIoError), "");
static_assert(OTA_ERR_HASH_MISMATCH == static_cast<int>(Code::kHashMismatch), "");
static_assert(OTA_ERR_SIGNATURE_INVALID == static_cast<int>(Code::kSignatureInvalid), "");
static_assert(OTA_ERR_UNSUPPORTED == static_cast<int>(Code::kUnsupported), "");
static_assert(OTA_ERR_TIMEOUT == static_cast<int>(Code::kTimeout), "");
static_assert(OTA_ERR_REJECTED == static_cast<int>(Code::kRejected), "");
static_assert(OTA_ERR_ABORTED == static_cast<int>(Code::kAborted), "");
static_assert(OTA_ERR_UNAVAILABLE == static_cast<int>(Code::kUnavailable), "");
static_assert(OTA_ERR_INTERNAL == static_cast<int>(Code::kInternal), "");
static_assert(OTA_ERR_NO_SPACE == static_cast<int>(Code::kNoSpace), "");
static_assert(OTA_BANK_A == static_cast<int>(Bank::kA) && OTA_BANK_B == static_cast<int>(Bank::kB), "");
static_assert(OTA_LOG_DEBUG == static_cast<int>(ota::LogLevel::kDebug) &&
                  OTA_LOG_OFF == static_cast<int>(ota::LogLevel::kOff),
              "");

namespace {

constexpr int kLastCode = OTA_ERR_NO_SPACE;

// Size a caller's struct must have at least: everything up to and including the last field that
// version 1 of the ABI requires (later fields take defaults when an older caller leaves them out).
constexpr size_t kConfigMinSize = offsetof(ota_agent_config_t, state_dir) + sizeof(const char*);
constexpr size_t kCallbacksMinSize = offsetof(ota_agent_callbacks_t, bank_read) + sizeof(void*);

// Message a callback attached with ota_callback_set_error. Thread-local because callbacks run on
// the worker thread and the health-check thread; consumed right after each callback returns.
thread_local std::string t_callback_error;
thread_local bool t_callback_error_set = false;
// Message of the last failed ota_agent_create on this thread (there is no handle to hold it).
thread_local std::string t_create_error;

ota_bank_t to_c(Bank b) { return static_cast<ota_bank_t>(static_cast<int>(b)); }

std::string str(const char* s) { return s ? std::string(s) : std::string(); }

// Turns a callback's return value (and message, if it set one) into a Status.
Status from_callback(const char* what, ota_status_t s) {
  std::string message = std::move(t_callback_error);
  const bool has_message = t_callback_error_set;
  t_callback_error.clear();
  t_callback_error_set = false;
  const int v = static_cast<int>(s);
  if (v == OTA_OK) return Status::ok();
  if (v < 0 || v > kLastCode) {
    return Status(Code::kInternal, std::string(what) + " returned invalid status " + std::to_string(v) +
                                       (has_message ? ": " + message : std::string()));
  }
  const Code code = static_cast<Code>(v);
  return Status(code, std::string(what) + ": " + (has_message ? message : std::string(ota::code_name(code))));
}

// Calls a status-returning callback with a clean message slot.
template <typename Fn, typename... Args>
Status call(const char* what, Fn fn, Args... args) {
  t_callback_error.clear();
  t_callback_error_set = false;
  return from_callback(what, fn(args...));
}

// Callbacks and the bookkeeping that must outlive the Device: a timed-out health check keeps
// running on its own thread, and ota_agent_destroy waits for it before the user data goes away.
struct Shared {
  ota_agent_callbacks_t cb{};
  bool sync_concurrent = false;  // config bank_sync_concurrent
  std::mutex mu;
  std::condition_variable cv;
  int health_checks_running = 0;
};

class CWriter : public ota::agent::BankWriter {
 public:
  CWriter(std::shared_ptr<Shared> s, Bank bank, uint64_t offset)
      : s_(std::move(s)), bank_(bank), pos_(offset) {}
  ~CWriter() override {
    if (s_->cb.bank_close) s_->cb.bank_close(s_->cb.user, to_c(bank_));
  }
  Status write(const uint8_t* data, size_t n) override {
    Status st = call("bank_write", s_->cb.bank_write, s_->cb.user, to_c(bank_), pos_, data, n);
    if (st.is_ok()) pos_ += n;
    return st;
  }
  Status sync() override {
    if (!s_->cb.bank_sync) return Status::ok();
    return call("bank_sync", s_->cb.bank_sync, s_->cb.user, to_c(bank_));
  }
  bool concurrent_sync() const override { return s_->sync_concurrent; }

 private:
  std::shared_ptr<Shared> s_;
  Bank bank_;
  uint64_t pos_;
};

class CReader : public ota::RandomReader {
 public:
  CReader(std::shared_ptr<Shared> s, Bank bank, uint64_t size) : s_(std::move(s)), bank_(bank), size_(size) {}
  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, uint8_t* buf, size_t n) override {
    if (offset > size_ || n > size_ - offset) {
      return Status(Code::kCorrupt, "read of " + std::to_string(n) + " bytes at " + std::to_string(offset) +
                                        " is beyond the " + std::to_string(size_) + " bytes of bank " +
                                        ota::agent::bank_name(bank_));
    }
    return call("bank_read", s_->cb.bank_read, s_->cb.user, to_c(bank_), offset, buf, n);
  }

 private:
  std::shared_ptr<Shared> s_;
  Bank bank_;
  uint64_t size_;
};

class CDevice : public ota::agent::Device {
 public:
  explicit CDevice(std::shared_ptr<Shared> s) : s_(std::move(s)) {}

  uint64_t bank_size() const override { return s_->cb.bank_size(s_->cb.user); }

  ota::Result<std::unique_ptr<ota::agent::BankWriter>> open_bank_writer(Bank bank, uint64_t offset) override {
    if (s_->cb.bank_open)
      OTA_RETURN_IF_ERROR(call("bank_open", s_->cb.bank_open, s_->cb.user, to_c(bank), offset));
    return std::unique_ptr<ota::agent::BankWriter>(std::make_unique<CWriter>(s_, bank, offset));
  }

  ota::Result<std::unique_ptr<ota::RandomReader>> open_bank_reader(Bank bank) override {
    uint64_t size = 0;
    if (s_->cb.bank_image_size) {
      OTA_RETURN_IF_ERROR(call("bank_image_size", s_->cb.bank_image_size, s_->cb.user, to_c(bank), &size));
    } else {
      size = s_->cb.bank_size(s_->cb.user);
    }
    return std::unique_ptr<ota::RandomReader>(std::make_unique<CReader>(s_, bank, size));
  }

  Status finish_install(Bank bank, const ota::agent::ImageInfo& image) override {
    if (!s_->cb.finish_install) return Status::ok();
    ota_image_info_t info = to_c(image);
    return call("finish_install", s_->cb.finish_install, s_->cb.user, to_c(bank), &info);
  }

  Status activate(Bank bank, const ota::agent::ImageInfo& image) override {
    if (!s_->cb.activate) return Status::ok();
    ota_image_info_t info = to_c(image);
    return call("activate", s_->cb.activate, s_->cb.user, to_c(bank), &info);
  }

  Status health_check(Bank bank, std::chrono::milliseconds timeout) override {
    // Runs on the agent's health-check thread, which may outlive a timed-out wait: everything used
    // after entry is reached through this local reference, never through `this`.
    std::shared_ptr<Shared> s = s_;
    if (!s->cb.health_check) return Status::ok();
    {
      std::lock_guard<std::mutex> lock(s->mu);
      ++s->health_checks_running;
    }
    const auto ms = static_cast<uint32_t>(std::clamp<int64_t>(timeout.count(), 0, UINT32_MAX));
    Status st = call("health_check", s->cb.health_check, s->cb.user, to_c(bank), ms);
    {
      std::lock_guard<std::mutex> lock(s->mu);
      --s->health_checks_running;
    }
    s->cv.notify_all();
    return st;
  }

  Status commit(Bank bank) override {
    if (!s_->cb.commit) return Status::ok();
    return call("commit", s_->cb.commit, s_->cb.user, to_c(bank));
  }

  Status rollback(Bank previous) override {
    if (!s_->cb.rollback) return Status::ok();
    return call("rollback", s_->cb.rollback, s_->cb.user, to_c(previous));
  }

  Bank booted_bank(Bank activated) override {
    if (!s_->cb.booted_bank) return activated;
    ota_bank_t booted = to_c(activated);
    Status st = call("booted_bank", s_->cb.booted_bank, s_->cb.user, to_c(activated), &booted);
    if (!st.is_ok()) {
      OTA_LOGW("agent", "booted_bank: %s; taking the activated bank", st.to_string().c_str());
      return activated;
    }
    if (booted == OTA_BANK_A) return Bank::kA;
    if (booted == OTA_BANK_B) return Bank::kB;
    return activated;
  }

  std::vector<ota::agent::Dtc> read_dtcs() override {
    if (!s_->cb.read_dtcs) return {};
    // A callback with more DTCs than room says how many it has; ask again with room for all (the
    // count may still grow between calls, hence a few tries and a sanity bound).
    constexpr size_t kMaxDtcs = 65536;
    std::vector<ota_dtc_t> buf(64);
    size_t count = 0;
    for (int attempt = 0;; ++attempt) {
      count = 0;
      std::memset(buf.data(), 0, buf.size() * sizeof(ota_dtc_t));
      Status st = call("read_dtcs", s_->cb.read_dtcs, s_->cb.user, buf.data(), buf.size(), &count);
      // The Agent turns an exception from a Device method into a reported failure.
      if (!st.is_ok()) throw std::runtime_error(st.to_string());
      if (count <= buf.size() || attempt == 2) break;
      buf.resize(std::min(count, kMaxDtcs));
    }
    count = std::min(count, buf.size());
    std::vector<ota::agent::Dtc> out;
    out.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      const ota_dtc_t& c = buf[i];
      ota::agent::Dtc d;
      d.code = c.code;
      d.status_mask = c.status_mask;
      d.active = c.active != 0;
      d.confirmed = c.confirmed != 0;
      d.first_seen_ms = c.first_seen_ms;
      d.last_seen_ms = c.last_seen_ms;
      d.occurrences = c.occurrences;
      d.description.assign(c.description, strnlen(c.description, sizeof(c.description)));
      out.push_back(std::move(d));
    }
    return out;
  }

  Status clear_dtcs(const std::vector<uint32_t>& codes) override {
    if (!s_->cb.clear_dtcs) return Status::ok();
    return call("clear_dtcs", s_->cb.clear_dtcs, s_->cb.user, codes.empty() ? nullptr : codes.data(),
                codes.size());
  }

  uint64_t free_space() const override {
    if (!s_->cb.free_space) return Device::free_space();
    return s_->cb.free_space(s_->cb.user);
  }

 private:
  static ota_image_info_t to_c(const ota::agent::ImageInfo& image) {
    return ota_image_info_t{image.version.c_str(), image.size, image.sha256_hex.c_str()};
  }
  static ota_bank_t to_c(Bank b) { return ::to_c(b); }

  std::shared_ptr<Shared> s_;
};

ota::agent::AgentConfig to_cpp(const ota_agent_config_t& c) {
  ota::agent::AgentConfig a;
  a.ecu_id = str(c.ecu_id);
  a.hardware_id = str(c.hardware_id);
  a.serial = str(c.serial);
  a.broker_uri = str(c.broker_uri);
  a.password = str(c.password);
  a.tls_ca_file = str(c.tls_ca_file);
  a.tls_cert_file = str(c.tls_cert_file);
  a.tls_key_file = str(c.tls_key_file);
  a.state_dir = str(c.state_dir);
  a.factory_version = str(c.factory_version);
  a.factory_image_size = c.factory_image_size;
  a.delta_capable = c.delta_capable != 0;
  a.max_chunk_size = c.max_chunk_size;
  a.max_window = c.max_window;
  a.durable_interval_bytes = c.durable_interval_bytes;
  a.health_timeout = std::chrono::milliseconds(c.health_timeout_ms);
  a.progress_interval = std::chrono::milliseconds(c.progress_interval_ms);
  a.trust_root_file = str(c.trust_root_file);
  a.partial_verification = c.partial_verification != 0;
  a.ecu_key_file = str(c.ecu_key_file);
  a.connect_timeout = std::chrono::milliseconds(c.connect_timeout_ms);
  return a;
}

ota_agent_config_t default_config() {
  const ota::agent::AgentConfig d;  // the C++ defaults are the single source of truth
  ota_agent_config_t c;
  std::memset(&c, 0, sizeof(c));
  c.struct_size = sizeof(c);
  c.factory_version = "0.0.0";
  c.factory_image_size = d.factory_image_size;
  c.delta_capable = d.delta_capable ? 1 : 0;
  c.max_chunk_size = d.max_chunk_size;
  c.max_window = d.max_window;
  c.durable_interval_bytes = d.durable_interval_bytes;
  c.health_timeout_ms = static_cast<uint32_t>(d.health_timeout.count());
  c.progress_interval_ms = static_cast<uint32_t>(d.progress_interval.count());
  c.bank_sync_concurrent = 0;
  c.partial_verification = d.partial_verification ? 1 : 0;
  c.connect_timeout_ms = static_cast<uint32_t>(d.connect_timeout.count());
  return c;
}

// A Code the C enum does not know yet (added to ota::Code later) must not escape as an
// out-of-range ota_status_t.
ota_status_t to_c_status(Code code) {
  const int v = static_cast<int>(code);
  return v >= 0 && v <= kLastCode ? static_cast<ota_status_t>(v) : OTA_ERR_INTERNAL;
}

ota_status_t create_error(ota_status_t code, std::string message) {
  t_create_error = std::move(message);
  return code;
}

}  // namespace

struct ota_agent {
  std::shared_ptr<Shared> shared;
  std::unique_ptr<CDevice> device;
  std::unique_ptr<ota::agent::Agent> agent;
  mutable std::mutex mu;  // guards started, state_loaded and last_error
  bool started = false;
  // Agent::active_version() reads the durable state, which exists only once start() has loaded it.
  bool state_loaded = false;
  std::string last_error;
};

extern "C" {

const char* ota_status_str(ota_status_t status) {
  const int v = static_cast<int>(status);
  if (v < 0 || v > kLastCode) return "UNKNOWN";
  return ota::code_name(static_cast<Code>(v));
}

uint32_t ota_agent_abi_version(void) { return OTA_AGENT_ABI_VERSION; }

const char* ota_agent_sdk_version(void) { return ota::agent::sdk_version(); }

void ota_agent_config_init_sized(ota_agent_config_t* config, size_t struct_size) {
  if (!config || struct_size < sizeof(size_t)) return;
  const ota_agent_config_t d = default_config();
  // A caller built against an older header has a smaller struct: fill only what it has.
  const size_t n = std::min(struct_size, sizeof(d));
  std::memcpy(config, &d, n);
  config->struct_size = n;
}

void ota_callback_set_error(const char* message) {
  try {
    t_callback_error = message ? message : "";
    t_callback_error_set = true;
  } catch (...) {
    // Out of memory: the failure is still reported, with the status name as its message.
  }
}

ota_status_t ota_agent_create(const ota_agent_config_t* config, const ota_agent_callbacks_t* callbacks,
                              ota_agent_t** out) {
  try {
    t_create_error.clear();
    if (!out) return create_error(OTA_ERR_INVALID_ARGUMENT, "ota_agent_create: out is NULL");
    *out = nullptr;
    if (!config) return create_error(OTA_ERR_INVALID_ARGUMENT, "ota_agent_create: config is NULL");
    if (!callbacks) return create_error(OTA_ERR_INVALID_ARGUMENT, "ota_agent_create: callbacks is NULL");
    if (config->struct_size < kConfigMinSize) {
      return create_error(OTA_ERR_INVALID_ARGUMENT,
                          "ota_agent_create: config->struct_size " + std::to_string(config->struct_size) +
                              " is smaller than the " + std::to_string(kConfigMinSize) +
                              " bytes of required fields (call ota_agent_config_init first)");
    }
    if (callbacks->struct_size < kCallbacksMinSize) {
      return create_error(OTA_ERR_INVALID_ARGUMENT,
                          "ota_agent_create: callbacks->struct_size " +
                              std::to_string(callbacks->struct_size) + " is smaller than the " +
                              std::to_string(kCallbacksMinSize) +
                              " bytes of required callbacks (call ota_agent_callbacks_init first)");
    }

    // Read only the fields the caller's struct has; the rest keep defaults / NULL.
    ota_agent_config_t cfg = default_config();
    std::memcpy(&cfg, config, std::min(config->struct_size, sizeof(cfg)));
    auto shared = std::make_shared<Shared>();
    std::memcpy(&shared->cb, callbacks, std::min(callbacks->struct_size, sizeof(shared->cb)));
    shared->sync_concurrent = cfg.bank_sync_concurrent != 0;

    std::string missing;
    if (!shared->cb.bank_size) missing += " bank_size";
    if (!shared->cb.bank_write) missing += " bank_write";
    if (!shared->cb.bank_read) missing += " bank_read";
    if (!missing.empty()) {
      return create_error(OTA_ERR_INVALID_ARGUMENT,
                          "ota_agent_create: required callbacks missing:" + missing);
    }
    if (!ota::topics::valid_ecu_id(str(cfg.ecu_id))) {
      return create_error(OTA_ERR_INVALID_ARGUMENT, "ota_agent_create: ecu_id '" + str(cfg.ecu_id) +
                                                        "' must be 1-64 characters of [A-Za-z0-9_.-]");
    }
    if (str(cfg.broker_uri).empty()) {
      return create_error(OTA_ERR_INVALID_ARGUMENT, "ota_agent_create: broker_uri is required");
    }
    if (str(cfg.state_dir).empty()) {
      return create_error(OTA_ERR_INVALID_ARGUMENT, "ota_agent_create: state_dir is required");
    }

    auto handle = std::make_unique<ota_agent>();
    handle->shared = shared;
    handle->device = std::make_unique<CDevice>(shared);
    handle->agent = std::make_unique<ota::agent::Agent>(to_cpp(cfg), *handle->device);
    *out = handle.release();
    return OTA_OK;
  } catch (const std::bad_alloc&) {
    return create_error(OTA_ERR_INTERNAL, "ota_agent_create: out of memory");
  } catch (const std::exception& e) {
    return create_error(OTA_ERR_INTERNAL, std::string("ota_agent_create: ") + e.what());
  } catch (...) {
    return create_error(OTA_ERR_INTERNAL, "ota_agent_create: unknown exception");
  }
}

ota_status_t ota_agent_start(ota_agent_t* agent) {
  if (!agent) return OTA_ERR_INVALID_ARGUMENT;
  try {
    {
      std::lock_guard<std::mutex> lock(agent->mu);
      if (agent->started) {
        agent->last_error =
            "ota_agent_start: already called on this agent; create a new agent to start again";
        return OTA_ERR_INVALID_ARGUMENT;
      }
      agent->started = true;
      agent->last_error.clear();
    }
    Status st = agent->agent->start();
    std::lock_guard<std::mutex> lock(agent->mu);
    if (st.is_ok()) {
      agent->state_loaded = true;
      return OTA_OK;
    }
    agent->last_error = st.to_string();
    return to_c_status(st.code());
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(agent->mu);
    agent->last_error = std::string("ota_agent_start: ") + e.what();
  } catch (...) {
    std::lock_guard<std::mutex> lock(agent->mu);
    agent->last_error = "ota_agent_start: unknown exception";
  }
  return OTA_ERR_INTERNAL;
}

void ota_agent_wait(ota_agent_t* agent) {
  if (!agent) return;
  try {
    agent->agent->wait();
  } catch (...) {
    // Only a broken mutex could throw here; returning is the one safe answer.
  }
}

void ota_agent_stop(ota_agent_t* agent) {
  if (!agent) return;
  try {
    agent->agent->stop();
  } catch (...) {
    // stop() joins the worker; it throws only when misused from a callback (self-join).
  }
}

void ota_agent_destroy(ota_agent_t* agent) {
  if (!agent) return;
  try {
    agent->agent.reset();  // stops and joins the worker
    std::unique_lock<std::mutex> lock(agent->shared->mu);
    agent->shared->cv.wait(lock, [agent] { return agent->shared->health_checks_running == 0; });
  } catch (...) {
    // Nothing sensible to report from a destructor path; free what we can below.
  }
  delete agent;
}

ota_bank_t ota_agent_active_bank(const ota_agent_t* agent) {
  if (!agent || !agent->agent) return OTA_BANK_A;
  try {
    return to_c(agent->agent->active_bank());
  } catch (...) {
    return OTA_BANK_A;
  }
}

size_t ota_agent_active_version(const ota_agent_t* agent, char* buf, size_t cap) {
  std::string v;
  try {
    bool loaded = false;
    if (agent) {
      std::lock_guard<std::mutex> lock(agent->mu);
      loaded = agent->state_loaded;
    }
    if (loaded && agent->agent) v = agent->agent->active_version();
  } catch (...) {
    v.clear();
  }
  if (buf && cap > 0) {
    const size_t n = std::min(v.size(), cap - 1);
    std::memcpy(buf, v.data(), n);
    buf[n] = '\0';
  }
  return v.size();
}

const char* ota_agent_last_error(const ota_agent_t* agent) {
  if (!agent) return t_create_error.c_str();
  std::lock_guard<std::mutex> lock(agent->mu);
  return agent->last_error.c_str();
}

void ota_log_set_level(ota_log_level_t level) {
  const int v = std::clamp(static_cast<int>(level), 0, static_cast<int>(OTA_LOG_OFF));
  ota::set_log_level(static_cast<ota::LogLevel>(v));
}

void ota_log_set_handler(ota_log_handler_t handler, void* user) {
  try {
    if (!handler) {
      ota::set_log_sink(nullptr);
      return;
    }
    ota::set_log_sink(
        [handler, user](ota::LogLevel level, const std::string& component, const std::string& message) {
          handler(user, static_cast<ota_log_level_t>(static_cast<int>(level)), component.c_str(),
                  message.c_str());
        });
  } catch (...) {
    // Out of memory while copying the handler: the previous sink stays in place.
  }
}

}  // extern "C"
