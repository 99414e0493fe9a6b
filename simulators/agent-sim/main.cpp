// ota-agent-sim: a mock ECU built on the agent SDK. Its flash is two bank files; knobs inject the
// faults an integration test or a demo wants to see (slow flash, failures at a phase or a byte
// offset, failing health checks, crashes, DTCs), and --misbehave plays an agent that attacks the
// client from the vehicle bus (misbehave.hpp).
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdlib>
#include <thread>

#include <signal.h>
#include <unistd.h>

#include "agent_internal.hpp"
#include "misbehave.hpp"
#include "ota/agent.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/program_info.hpp"
#include "ota/core/transport.hpp"
#include "ota/file_device.hpp"

namespace {

using ota::Code;
using ota::Status;
using ota::agent::Bank;

struct Knobs {
  double write_mbps = 0;      // 0 = unthrottled
  std::string fail_phase;     // transfer, sync, install, activate, health, commit
  uint64_t fail_offset = 0;   // write fails when it reaches this payload offset (0 = off)
  std::string crash_phase;    // same phases: the process kills itself there
  uint64_t crash_offset = 0;  // or when a write reaches this offset
  int dtcs = 0;
  size_t dtc_text_bytes = 0;  // pads every DTC description to this length (an inflating agent)
  std::chrono::milliseconds health_delay{0};
  std::chrono::milliseconds sync_delay{0};  // a slow flash: every sync takes this long
};

[[noreturn]] void crash(const char* where) {
  OTA_LOGW("agent-sim", "simulated crash at %s", where);
  ::kill(::getpid(), SIGKILL);
  std::abort();
}

Status simulated(const char* phase) {
  return Status(Code::kIoError, std::string("simulated ") + phase + " failure");
}

class SimWriter : public ota::agent::BankWriter {
 public:
  SimWriter(std::unique_ptr<ota::agent::BankWriter> inner, const Knobs& k, uint64_t offset)
      : inner_(std::move(inner)), k_(k), offset_(offset), start_(std::chrono::steady_clock::now()) {}

  Status write(const uint8_t* data, size_t n) override {
    if (k_.fail_phase == "transfer") return simulated("flash write");
    if (k_.fail_offset && offset_ + n > k_.fail_offset) {
      return Status(Code::kIoError,
                    "simulated flash write failure at byte " + std::to_string(k_.fail_offset));
    }
    if (k_.crash_offset && offset_ + n > k_.crash_offset) crash("write offset");
    OTA_RETURN_IF_ERROR(inner_->write(data, n));
    offset_ += n;
    written_ += n;
    if (k_.write_mbps > 0) {
      // Sleep off the time real flash would have needed for what was written so far.
      auto due = start_ + std::chrono::microseconds(static_cast<int64_t>(written_ / k_.write_mbps));
      std::this_thread::sleep_until(due);
    }
    return Status::ok();
  }
  Status sync() override {
    if (k_.fail_phase == "sync") return simulated("flash sync");
    if (k_.sync_delay.count() > 0) std::this_thread::sleep_for(k_.sync_delay);
    return inner_->sync();
  }
  bool concurrent_sync() const override { return inner_->concurrent_sync(); }

 private:
  std::unique_ptr<ota::agent::BankWriter> inner_;
  const Knobs& k_;
  uint64_t offset_;
  uint64_t written_ = 0;
  std::chrono::steady_clock::time_point start_;
};

class SimDevice : public ota::agent::FileDevice {
 public:
  SimDevice(const std::string& dir, uint64_t bank_size, Knobs knobs)
      : FileDevice(dir + "/bank_a.img", dir + "/bank_b.img", dir + "/boot", bank_size), k_(std::move(knobs)) {
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    for (int i = 0; i < k_.dtcs; ++i) {
      ota::agent::Dtc d;
      d.code = 0xC10000u + static_cast<uint32_t>(i);
      d.status_mask = 0x09;
      d.active = true;
      d.first_seen_ms = d.last_seen_ms = static_cast<uint64_t>(now);
      d.occurrences = 1;
      d.description = "simulated fault " + std::to_string(i);
      if (d.description.size() < k_.dtc_text_bytes) d.description.resize(k_.dtc_text_bytes, '.');
      dtcs_.push_back(d);
    }
  }

  ota::Result<std::unique_ptr<ota::agent::BankWriter>> open_bank_writer(Bank bank, uint64_t offset) override {
    auto inner = FileDevice::open_bank_writer(bank, offset);
    if (!inner) return inner.status();
    return std::unique_ptr<ota::agent::BankWriter>(new SimWriter(std::move(*inner), k_, offset));
  }
  Status finish_install(Bank bank, const ota::agent::ImageInfo& image) override {
    if (k_.crash_phase == "install") crash("install");
    if (k_.fail_phase == "install") return simulated("install verification");
    return FileDevice::finish_install(bank, image);
  }
  Status activate(Bank bank, const ota::agent::ImageInfo& image) override {
    if (k_.crash_phase == "activate") crash("activate");
    if (k_.fail_phase == "activate") return simulated("activation");
    return FileDevice::activate(bank, image);
  }
  Status health_check(Bank, std::chrono::milliseconds) override {
    if (k_.health_delay.count() > 0) std::this_thread::sleep_for(k_.health_delay);
    if (k_.crash_phase == "health") crash("health");
    if (k_.fail_phase == "health")
      return Status(Code::kRejected, "simulated health check failure: service did not start");
    return Status::ok();
  }
  // A commit failure is transient (a busy flash controller): the first attempt fails.
  Status commit(Bank) override {
    if (k_.crash_phase == "commit") crash("commit");
    if (k_.fail_phase == "commit" && commit_attempts_++ == 0) return simulated("commit");
    return Status::ok();
  }
  std::vector<ota::agent::Dtc> read_dtcs() override { return dtcs_; }
  Status clear_dtcs(const std::vector<uint32_t>& codes) override {
    if (codes.empty()) {
      dtcs_.clear();
    } else {
      dtcs_.erase(std::remove_if(dtcs_.begin(), dtcs_.end(),
                                 [&](const auto& d) {
                                   return std::find(codes.begin(), codes.end(), d.code) != codes.end();
                                 }),
                  dtcs_.end());
    }
    return Status::ok();
  }

 private:
  Knobs k_;
  int commit_attempts_ = 0;
  std::vector<ota::agent::Dtc> dtcs_;
};

// Everything the command line sets.
struct Settings {
  ota::agent::AgentConfig cfg;
  std::string dir;
  std::string password_file;
  std::string log_level = "info";
  uint64_t bank_size = 1ull << 30;
  Knobs knobs;
  int64_t health_delay_ms = 0;
  int64_t sync_delay_ms = 0;
  bool no_delta = false;
  std::string misbehave = "none";
  int64_t misbehave_delay_ms = 4000;
};

void add_agent_options(CLI::App& app, Settings& s) {
  app.add_option("--ecu", s.cfg.ecu_id, "ECU id (also the MQTT username)")->required();
  app.add_option("--hardware-id", s.cfg.hardware_id, "hardware id images must match");
  app.add_option("--serial", s.cfg.serial, "serial number");
  app.add_option("--broker", s.cfg.broker_uri, "broker URI, e.g. tcp://127.0.0.1:1883")->required();
  app.add_option("--password-file", s.password_file, "file holding this agent's MQTT password");
  app.add_option("--ecu-key", s.cfg.ecu_key_file, "this ECU's private key (PEM): results are signed with it");
  app.add_option("--trust-root", s.cfg.trust_root_file,
                 "root metadata (SignedMetadata) provisioned in this ECU");
  app.add_flag("--partial-verification", s.cfg.partial_verification,
               "check targets against the director's signature alone (no image metadata)");
  app.add_option("--tls-ca", s.cfg.tls_ca_file, "CA certificate of the broker (ssl:// URIs)");
  app.add_option("--tls-cert", s.cfg.tls_cert_file, "this agent's certificate");
  app.add_option("--tls-key", s.cfg.tls_key_file, "this agent's private key");
  app.add_option("--dir", s.dir, "directory of the simulated flash (bank_a.img, bank_b.img, boot) and state")
      ->required();
  app.add_option("--bank-size", s.bank_size, "capacity of one bank in bytes");
  app.add_option("--factory-version", s.cfg.factory_version, "version of the image in bank A on first start");
  app.add_option("--max-chunk", s.cfg.max_chunk_size, "largest chunk accepted, bytes");
  app.add_option("--durable-interval", s.cfg.durable_interval_bytes,
                 "make the transfer offset durable every N bytes");
  app.add_flag("--no-delta", s.no_delta, "do not declare delta capability");
}

void add_fault_options(CLI::App& app, Settings& s) {
  Knobs& k = s.knobs;
  app.add_option("--write-speed", k.write_mbps, "flash write speed in MB/s (0: as fast as the disk)");
  app.add_option(
         "--fail", k.fail_phase,
         "fail at a phase (commit: the first attempt only; sync: every flash sync, so no checkpoint holds)")
      ->check(CLI::IsMember({"transfer", "sync", "install", "activate", "health", "commit"}));
  app.add_option("--fail-offset", k.fail_offset, "fail the flash write that reaches this byte offset");
  app.add_option("--crash", k.crash_phase, "kill the process (SIGKILL) at a phase")
      ->check(CLI::IsMember({"install", "activate", "health", "commit"}));
  app.add_option("--crash-offset", k.crash_offset, "kill the process when a write reaches this byte offset");
  app.add_option("--health-delay-ms", s.health_delay_ms, "time the health check takes");
  app.add_option("--sync-delay-ms", s.sync_delay_ms, "time every flash sync takes (a slow flash)");
  app.add_option("--dtcs", k.dtcs, "number of active DTCs to report");
  app.add_option("--dtc-text-bytes", k.dtc_text_bytes, "pad every DTC description to this many bytes")
      ->check(CLI::Range(size_t{0}, size_t{65536}));
  app.add_option("--misbehave", s.misbehave,
                 "attack the client from the bus: slowloris (every ack held back --misbehave-delay-ms), "
                 "corrupt-acks (every chunk refused as CORRUPT), tiny-chunks (declare max_chunk_size 1), "
                 "silent (answer nothing, acknowledge nothing), absurd-ack (ack byte 2^64-1 before any "
                 "chunk)")
      ->check(CLI::IsMember(ota::sim::misbehaviour_names()));
  app.add_option("--misbehave-delay-ms", s.misbehave_delay_ms, "slowloris: how long each ack is held back")
      ->check(CLI::Range(int64_t{0}, int64_t{600000}));
}

// Completes the settings after parsing: log level, delays, password, state directory. Returns 0,
// or the exit status after printing why.
int finish_settings(Settings& s) {
  ota::LogLevel level;
  if (!ota::parse_log_level(s.log_level, &level)) {
    std::fprintf(stderr, "ota-agent-sim: unknown log level '%s'\n", s.log_level.c_str());
    return 2;
  }
  ota::set_log_level(level);
  s.knobs.health_delay = std::chrono::milliseconds(s.health_delay_ms);
  s.knobs.sync_delay = std::chrono::milliseconds(s.sync_delay_ms);
  s.cfg.delta_capable = !s.no_delta;
  if (s.misbehave == "tiny-chunks") s.cfg.max_chunk_size = 1;
  s.cfg.state_dir = s.dir + "/state";
  if (!s.password_file.empty()) {
    auto pw = ota::read_password_file(s.password_file);
    if (!pw) {
      std::fprintf(stderr, "ota-agent-sim: %s\n", pw.status().to_string().c_str());
      return 2;
    }
    s.cfg.password = *pw;
  }
  if (Status st = ota::make_dirs(s.dir); !st.is_ok()) {
    std::fprintf(stderr, "ota-agent-sim: %s\n", st.to_string().c_str());
    return 2;
  }
  return 0;
}

// Runs the agent until it ends or SIGTERM/SIGINT stops it. Signals are taken by a signal-waiting
// thread: the Agent is not async-signal-safe.
int serve(const Settings& s) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  SimDevice device(s.dir, s.bank_size, s.knobs);
  ota::agent_impl::AgentSeams seams;
  auto misbehaviour = ota::sim::parse_misbehaviour(s.misbehave);  // checked by the command line
  if (misbehaviour.is_ok() && *misbehaviour != ota::sim::Misbehaviour::kNone) {
    OTA_LOGW("agent-sim", "%s: misbehaving on the bus: %s", s.cfg.ecu_id.c_str(), s.misbehave.c_str());
    seams.make_transport = [m = *misbehaviour, &s](const ota::TransportOptions& o) {
      return ota::sim::misbehaving_transport(ota::make_transport(o), m, s.cfg.ecu_id,
                                             std::chrono::milliseconds(s.misbehave_delay_ms));
    };
  }
  auto owned = ota::agent_impl::AgentFactory::make(s.cfg, device, std::move(seams));
  ota::agent::Agent& agent = *owned;
  if (Status st = agent.start(); !st.is_ok()) {
    std::fprintf(stderr, "ota-agent-sim: %s: %s\n", s.cfg.ecu_id.c_str(), st.to_string().c_str());
    return 1;
  }
  std::thread signals([set, &agent] {
    int sig = 0;
    sigwait(&set, &sig);
    agent.stop();
  });
  agent.wait();
  agent.stop();
  // The signal thread may still wait; we are done either way.
  signals.detach();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ota-agent-sim: a simulated ECU (file-backed A/B flash) built on the OTA agent SDK"};
  app.set_version_flag("--version", ota::version_text("ota-agent-sim"));
  Settings s;
  add_agent_options(app, s);
  add_fault_options(app, s);
  app.add_option("--log-level", s.log_level, "debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  if (int failed = finish_settings(s)) return failed;
  return serve(s);
}
