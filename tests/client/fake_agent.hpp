// FakeAgent: a scripted ECU agent for the runner's tests. It speaks the agent's side of the protocol
// (docs/PROTOCOL.md sections 4-7: retained hello, StartTransfer and chunks with cumulative acks,
// Install, Activate, Commit, Rollback, Cancel, ClearDtcs) over any Transport, keeps its banks in
// memory (it never restarts: what it holds survives a crash of the client), and fails on cue.
//
// Threads: commands and chunks are handled on the transport's callback thread; snapshot() and the
// script setters may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::test {

struct FakeAgentScript {
  bool health_fails = false;    // every Activate: unhealthy, the agent rolls back by itself
  int corrupt_acks = 0;         // refuse this many chunks with a CORRUPT ack (the client resends)
  int incomplete_installs = 0;  // answer this many Installs NOT_FOUND, losing the last chunk (as after a
                                // restart between an ack and the checkpoint)
  int commit_failures = 0;      // answer this many Commits FAILED (the agent stays on trial)
  // This many Commits find the ECU back on its previous bank, as after a restart on trial whose
  // bootloader fell back: the image stays staged (Activate rolls it forward), or with
  // `fall_back_loses_image` it is gone (IDLE: it must be sent again). Answered REFUSED.
  int fall_backs = 0;
  bool fall_back_loses_image = false;
  // This many Installs are lost with a restart of the agent: no answer, the install not done, and
  // a hello with a new boot_id.
  int lost_installs = 0;
};

class FakeAgent {
 public:
  // What the agent holds, for assertions.
  struct Snapshot {
    std::string active_version;
    std::string active_sha256;
    bool trial = false;
    v1::Phase phase = v1::PHASE_IDLE;
    std::vector<std::string> commands;  // body names of the commands received, in order
  };
  // Sees every command before it is carried out (on the transport's callback thread).
  using CommandObserver = std::function<void(const std::string& ecu_id, const v1::Command& cmd)>;

  // An agent running `version` (image bytes `image`) in bank A, bank B empty.
  FakeAgent(std::unique_ptr<Transport> transport, std::string ecu_id, std::string version, std::string image,
            FakeAgentScript script = {});
  ~FakeAgent();
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  // Connects, subscribes to its down/# and publishes its retained hello.
  Status start();
  void observe_commands(CommandObserver observer);
  // Called once, on the first chunk received (e.g. to request a cancel mid-transfer).
  void on_first_chunk(std::function<void()> fn);
  Snapshot snapshot() const;
  const std::string& ecu_id() const { return ecu_id_; }

 private:
  struct Bank {
    std::string version;
    std::string sha256;
  };

  void on_message(const TransportMessage& m);
  void on_chunk(const std::string& payload);
  v1::Result handle(const v1::Command& cmd);
  v1::Result start_transfer(const v1::StartTransfer& st);
  v1::Result install(const v1::Install& in);
  v1::Result activate(const v1::Activate& act);
  v1::Result commit(const v1::Commit& c);
  v1::Result roll_back(bool is_cancel);
  void forget_transfer();
  void ack(uint64_t next, v1::ErrorCode error);
  void publish_hello();
  v1::Result answer(v1::Outcome outcome, v1::ErrorCode code = v1::ERROR_CODE_OK,
                    const std::string& message = "", v1::Phase error_phase = v1::PHASE_UNSPECIFIED);

  std::unique_ptr<Transport> transport_;
  const std::string ecu_id_;
  mutable std::mutex mu_;
  FakeAgentScript script_;
  CommandObserver observer_;
  std::function<void()> first_chunk_;
  Bank banks_[2];
  int active_ = 0;
  int previous_ = 0;
  bool trial_ = false;
  v1::Phase phase_ = v1::PHASE_IDLE;
  std::string transfer_id_;
  v1::Target target_;
  std::string received_;
  uint32_t chunk_size_ = 0;
  std::string done_transfer_;  // the transfer committed last
  std::vector<std::string> commands_;
  uint64_t boot_id_ = 1;
};

}  // namespace ota::test
