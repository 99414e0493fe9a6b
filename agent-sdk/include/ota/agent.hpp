// OTA agent SDK: the C++ interface an ECU supplier implements, and the Agent that runs it.
//
// The supplier implements ota::agent::Device (how to write, read, activate and check the ECU's A/B
// banks) and hands it to an ota::agent::Agent. The Agent hides everything else: the MQTT session with
// the vehicle's broker, the protocol, chunked transfer with flow control and resume, CRC and SHA-256
// checks, delta reconstruction, the A/B state machine and its durable state file, progress and DTC
// reporting. A pure C interface over the same lives in ota/agent.h.
//
// Threading: Device methods are called one at a time, in protocol order: commands from the Agent's
// worker thread, chunk writes from the transport's thread when nothing else is pending (or from the
// worker), never two at once. Two exceptions: health_check() runs on its own thread so that the Agent
// can enforce its timeout, and BankWriter::sync() runs on the checkpoint thread, beside write(), when
// the writer says it may (concurrent_sync()).
// Errors: every method returns ota::Status; a non-OK status (or an exception escaping the method,
// which the Agent catches) fails the current step with that message, and the Agent reports it
// to the client. Nothing a Device does can crash the Agent, and the ECU stays on a bootable bank.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ota/core/io.hpp"
#include "ota/core/status.hpp"

namespace ota::agent_impl {
class AgentFactory;  // in-tree only: builds an Agent over another transport and clock
}  // namespace ota::agent_impl

namespace ota::agent {

enum class Bank { kA = 1, kB = 2 };
inline Bank other(Bank b) { return b == Bank::kA ? Bank::kB : Bank::kA; }
const char* bank_name(Bank b);  // "A" / "B"

// A diagnostic trouble code as the ECU reports it (ISO 14229 style).
struct Dtc {
  uint32_t code = 0;        // 3-byte DTC number, e.g. 0xC14187
  uint8_t status_mask = 0;  // ISO 14229 status byte
  bool active = false;      // currently failing
  bool confirmed = false;
  uint64_t first_seen_ms = 0;  // unix milliseconds
  uint64_t last_seen_ms = 0;
  uint32_t occurrences = 0;
  std::string description;
};

// What the Agent tells the Device about the image being installed.
struct ImageInfo {
  std::string version;
  uint64_t size = 0;
  std::string sha256_hex;
};

// Sequential writer into one bank. Writes start at the offset given to open_bank_writer.
class BankWriter : public ota::ByteSink {
 public:
  // Makes every byte written so far durable (fdatasync or the flash equivalent). The Agent calls it
  // before it records a transfer offset as durable, and before verification.
  virtual ota::Status sync() = 0;

  // True when sync() may run on the Agent's checkpoint thread while write() runs on the data thread
  // (fdatasync on a file descriptor can). The Agent then records durable offsets in the background
  // and keeps acknowledging chunks meanwhile; otherwise it syncs on the data thread, between two
  // writes. Default: false.
  virtual bool concurrent_sync() const { return false; }
};

class Device {
 public:
  virtual ~Device() = default;

  // Capacity of one bank in bytes. Images larger than this are refused before transfer.
  virtual uint64_t bank_size() const = 0;

  // Opens `bank` (never the active one) for writing, positioned at `offset`: 0 for a new image, the
  // durable offset when a transfer resumes. Bytes at and after `offset` may be discarded.
  virtual ota::Result<std::unique_ptr<BankWriter>> open_bank_writer(Bank bank, uint64_t offset) = 0;

  // Opens `bank` for random reads: the base of a delta (the active bank), and read-back checks.
  virtual ota::Result<std::unique_ptr<ota::RandomReader>> open_bank_reader(Bank bank) = 0;

  // Called once the image in `bank` is complete and its SHA-256 verified by the Agent: a last
  // device-specific check (e.g. a secure-boot signature check, or reading back flash). Default: OK.
  virtual ota::Status finish_install(Bank /*bank*/, const ImageInfo& /*image*/) { return ota::Status::ok(); }

  // Makes `bank` the one the ECU boots (and, for a live system, switches to it). Default: OK.
  virtual ota::Status activate(Bank /*bank*/, const ImageInfo& /*image*/) { return ota::Status::ok(); }

  // Checks the ECU is healthy on the newly activated bank. Runs on its own thread; if it does not
  // return within the timeout the Agent treats it as failed and rolls back. Default: healthy.
  virtual ota::Status health_check(Bank /*bank*/, std::chrono::milliseconds /*timeout*/) {
    return ota::Status::ok();
  }

  // Makes the activated bank permanent (e.g. clears the bootloader's trial flag). Default: OK.
  virtual ota::Status commit(Bank /*bank*/) { return ota::Status::ok(); }

  // The bank the ECU actually booted, asked when the Agent starts with an activated update not yet
  // committed (the trial: the client may have decided to commit it already). A bootloader falls back
  // to the previous bank only once its boot attempts on the new one are spent: the device says so
  // here, and only then does the Agent record the rollback; otherwise it keeps the trial, runs the
  // health check again and waits for the client's Commit or Rollback. `activated` is the bank the
  // Agent activated. Called on the thread that calls Agent::start(). Default: `activated` (the
  // device boots what it was told to).
  virtual Bank booted_bank(Bank activated) { return activated; }

  // Returns the ECU to `previous` (the bank it ran before activation). Must succeed whenever
  // possible: the Agent retries it on the next start if it fails. Default: OK.
  virtual ota::Status rollback(Bank /*previous*/) { return ota::Status::ok(); }

  // Current DTCs. Default: none.
  virtual std::vector<Dtc> read_dtcs() { return {}; }
  // Clears the given DTC codes (all when empty). Default: OK.
  virtual ota::Status clear_dtcs(const std::vector<uint32_t>& /*codes*/) { return ota::Status::ok(); }

  // Bytes free for staging (delta payloads are staged before reconstruction). Default: 1 GiB.
  virtual uint64_t free_space() const { return uint64_t{1} << 30; }
};

struct AgentConfig {
  std::string ecu_id;       // unique in the vehicle; also the MQTT username. [A-Za-z0-9_.-]{1,64}
  std::string hardware_id;  // what images must be built for
  std::string serial;
  // Broker: "tcp://127.0.0.1:1883" locally; "ssl://host:8883" from another SoC (with TLS files).
  std::string broker_uri;
  std::string password;       // MQTT password for user ecu_id (local listener)
  std::string tls_ca_file;    // TLS: CA of the broker (required for ssl://)
  std::string tls_cert_file;  // TLS: this agent's certificate (CN = ecu_id)
  std::string tls_key_file;
  // Directory for the agent's durable state and delta staging. Created if missing. Required.
  std::string state_dir;
  // Version of the image in each bank when the agent starts with no state (first boot).
  std::string factory_version = "0.0.0";
  // Size of the factory image in bank A (0: the whole bank as open_bank_reader reports it). Hashed
  // once on first start so that deltas against it can be checked.
  uint64_t factory_image_size = 0;
  // The root metadata (ota.v1.SignedMetadata bytes) this ECU was provisioned with. When set, every
  // target must come with director metadata signed by a threshold of the root's director keys for
  // this ECU and hardware id, naming exactly the image the client sends; a lower version is refused
  // unless the campaign allows the downgrade, and a replayed older campaign is refused.
  // Empty: targets are not signature-checked (development only; the agent logs a warning).
  std::string trust_root_file;
  // With a trust root, a target is checked the Uptane "full verification" way: besides the
  // director's signature, the image role's metadata (Target.signed_image, required) must list the
  // same image for this hardware, and the payload sent is bound to it before a byte is applied (a
  // delta's own SHA-256, size and base must be a signed delta of that image). true: "partial
  // verification", the director's signature alone (for an ECU that cannot hold image metadata); a
  // delta is then bounded by the signed image size and checked by the image's signed SHA-256 after
  // reconstruction. The agent logs which one it runs at start-up.
  bool partial_verification = false;
  // This ECU's own private key (PEM, ECDSA P-256). When set, every Result is signed with it
  // (ota.v1.Result.ecu_signature), so the client cannot claim an ECU's success for it.
  std::string ecu_key_file;
  bool delta_capable = true;
  uint32_t max_chunk_size = 512 * 1024;  // at most 512 KiB (the protocol's limit)
  uint32_t max_window = 64;
  // The transfer offset is made durable (writer sync + state file) at least this often.
  uint64_t durable_interval_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds health_timeout{10000};   // used when the client sends none
  std::chrono::milliseconds progress_interval{250};  // at most one progress report per interval
  // How long start() waits for the broker: it retries with a backoff doubling from 100 ms to 5 s
  // (each attempt logged) until connected or this much time has passed (then kUnavailable).
  // 0: wait forever. Refused credentials (kRejected) fail at once, never retried.
  std::chrono::milliseconds connect_timeout{10000};
};

// Runs one ECU's side of the protocol. Construct, start(), and keep it alive while the ECU runs.
class Agent {
 public:
  // The Device must outlive the Agent.
  Agent(AgentConfig config, Device& device);
  ~Agent();  // stops if running
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads (or creates) the durable state and recovers (docs/PROTOCOL.md section 7): an activation
  // interrupted before it was answered is rolled back; a trial already answered is kept when the
  // device booted it and is healthy (Device::booted_bank, health_check), and waits for the client's
  // Commit or Rollback. Then connects to the broker (waiting for it up to config connect_timeout,
  // with backoff), publishes the retained hello and state, and starts serving commands. After that a
  // lost connection is restored by the transport on its own. Errors: kInvalidArgument (config),
  // kIoError/kCorrupt (state dir), kUnavailable (broker not reachable in time), kRejected (refused).
  ota::Status start();

  // Blocks until stop() is called from another thread or a signal handler thread.
  void wait();

  // Publishes online=false, disconnects and joins the worker. Idempotent.
  void stop();

  // The bank the ECU boots now and the version in it.
  Bank active_bank() const;
  std::string active_version() const;

 private:
  friend class agent_impl::AgentFactory;
  class Impl;
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// SDK version "MAJOR.MINOR.PATCH" and the wire protocol major version it speaks.
const char* sdk_version();
uint32_t protocol_major();

}  // namespace ota::agent
