// The shape of the Agent (ota/agent.hpp). AgentCore wires the pieces together and carries out the
// actions of the transition table; each piece has one job:
//
//   state_machine  kRules: which action an event runs, in which phase, under which guard
//   disk_state     the durable state and the discipline of its writes
//   target_checks  what a StartTransfer must pass, and the trust root
//   receiver       the data path: chunk intake, CRC, hashing, acks, checkpoints
//   installer      payload verification, delta reconstruction, the device's final check
//   messages       what the agent publishes (hello, state, DTCs, results, acks); result signing
//   inbox          one message at a time, in arrival order: the worker, and the data fast path
//   clock          time, behind a seam (health-check deadlines, metadata expiry)
//
// AgentCore's own files: agent.cpp (start, stop, transport wiring), dispatch.cpp (events to table
// rows, answers), transfer_actions.cpp (StartTransfer, Install), bank_actions.cpp (recovery at
// start, Activate with its health check, Commit, Rollback, Cancel).
//
// Threading: start() and stop() on the caller's thread; everything else on the protocol thread
// (the Inbox's worker, or the transport's thread for a chunk), one message at a time. Besides it:
// the checkpoint thread (Receiver), one detached thread per health check, and readers of
// active_bank()/active_version() on any thread (through DiskState's lock).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "agent_internal.hpp"
#include "disk_state.hpp"
#include "inbox.hpp"
#include "installer.hpp"
#include "messages.hpp"
#include "ota/agent.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/transport.hpp"
#include "receiver.hpp"
#include "state_machine.hpp"
#include "target_checks.hpp"

namespace ota::agent_impl {

class AgentCore {
 public:
  // The Device must outlive the AgentCore and any health check it started.
  AgentCore(agent::AgentConfig cfg, agent::Device& dev, AgentSeams seams);
  ~AgentCore();  // stops
  AgentCore(const AgentCore&) = delete;
  AgentCore& operator=(const AgentCore&) = delete;

  // The contracts of ota::agent::Agent.
  Status start();
  void wait();
  void stop();
  Bank active_bank() const;
  std::string active_version() const;

 private:
  // What an event carries to its action.
  struct Input {
    const v1::Command* cmd = nullptr;
    const codec::ChunkView* chunk = nullptr;
  };

  // agent.cpp: configuration, start, transport wiring.
  Status check_config();
  Status recover_at_start();
  Status load_ecu_key();
  Status connect();
  Status connect_with_backoff();
  Status connect_once(std::chrono::milliseconds timeout);
  TransportOptions transport_options() const;
  void on_transport_message(TransportMessage&& m);

  // dispatch.cpp: from an event to its row of the table, and the answers.
  void handle(const Inbound& m);
  void handle_command(const v1::Command& cmd);
  Facts facts() const;
  Facts command_facts(const v1::Command& cmd) const;
  Status run(Event event, const Facts& facts, const Input& in);
  Status perform(Action action, const Input& in);
  void perform_command(Action action, const v1::Command& cmd);
  Status refusal(Action action, const v1::Command& cmd) const;
  Status with_last_error(const Status& refusal) const;
  void publish_state(bool force);
  void set_phase(v1::Phase phase);
  // Records the error as last_error (saved), answers with it, publishes the state.
  void fail(const v1::Command& cmd, const Status& st, v1::Phase phase,
            v1::Outcome outcome = v1::OUTCOME_FAILED);
  void answer(const v1::Command& cmd, v1::Outcome outcome, const Status& st = Status::ok());
  void answer_ready(const v1::Command& cmd, uint64_t resume_offset);
  void answer_inventory(const v1::Command& cmd);
  void answer_dtcs(const v1::Command& cmd);
  void clear_dtcs(const v1::Command& cmd);
  void refuse_version(const v1::Command& cmd);
  void publish_presence();

  // transfer_actions.cpp: StartTransfer and Install.
  bool accept_target(const v1::Command& cmd);
  void refuse_during_trial(const v1::Command& cmd);
  void settle_open_transfer(const v1::Command& cmd);
  void open_transfer(const v1::Command& cmd, bool resume);
  uint64_t reopen_receiver(uint64_t offset, Status* st);
  void install(const v1::Command& cmd);

  // bank_actions.cpp: recovery at start, Activate, Commit, Rollback, Cancel.
  Status create_state();
  Status resume_trial();
  Status fall_back_from_trial(Bank previous, const Status& why);
  Status roll_back_unconfirmed_trial();
  Status return_to_transfer();
  void activate(const v1::Command& cmd);
  Status record_trial_intent(Bank prev, Bank next);
  Status run_health_check(Bank bank, std::chrono::milliseconds timeout);
  Status roll_back_to(Bank previous);
  void commit(const v1::Command& cmd);
  void roll_back_trial(const v1::Command& cmd);
  void abandon_transfer(const v1::Command& cmd);
  void keep_done(const v1::Command& cmd);

  agent::AgentConfig cfg_;
  agent::Device& dev_;
  const std::shared_ptr<const AgentClock> clock_;
  const std::function<std::unique_ptr<Transport>(const TransportOptions&)> make_transport_;
  const std::function<void(const Rule&, v1::Phase, v1::Phase)> on_transition_;

  DiskState disk_;
  TargetChecks checks_;
  Outbox out_;
  Receiver receiver_;
  Installer installer_;
  Inbox inbox_;
  std::unique_ptr<Transport> transport_;  // delivers into inbox_; reset by stop()

  std::atomic<bool> subscribed_{false};  // the command topic is subscribed: presence may be published
  std::mutex stop_mu_;  // serialises stop(): a signal thread and the destructor may both call it
};

}  // namespace ota::agent_impl
