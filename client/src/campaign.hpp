// CampaignRunner: carries out one campaign across the vehicle's ECUs (docs/CLIENT.md).
//
//   pre-conditions -> consent -> for each ordering group, ascending:
//     stage: transfer + install (parallel across the group's ECUs) -> barrier
//     decide: activate + health (parallel) unless the barrier decided; one decision for the group
//     (campaign/decision.hpp), journaled before any ECU acts on it
//     carry it out: commit (then clear resolved DTCs), or roll back / cancel
//   -> report
//
// The journal (campaign/journal.hpp) is rewritten atomically after every step; a runner started on
// an existing journal resumes: transfers continue from the agents' durable offsets, and a group whose
// decision was recorded has that decision finished, never changed.
//
// The implementation lives in campaign/: runner.cpp (the campaign), admission.cpp (pre-conditions,
// consent), stage.cpp (transfer, install, activation), decide.cpp (reaching and journaling a group's
// decision), carry_out.cpp (carrying it out: commit, rollback or cancel), validate.cpp and status.cpp,
// with the pure parts beside them (decision, plan, preconditions, report, journal).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent_directory.hpp"
#include "campaign/report.hpp"
#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/state.pb.h"

namespace ota::client {

// Where the vehicle's conditions come from (CAN gateway, vehicle API; a file in simulation).
class VehicleStateSource {
 public:
  virtual ~VehicleStateSource() = default;
  virtual Result<v1::VehicleConditions> read() = 0;
};

struct ConsentAnswer {
  enum Kind { kAccept, kPostpone, kDecline } kind = kAccept;
  std::chrono::milliseconds postpone_for{0};
  std::string reason;
};

// Asks the owner (HMI, phone app through the cloud). May block until an answer comes.
class ConsentProvider {
 public:
  virtual ~ConsentProvider() = default;
  virtual ConsentAnswer ask(const v1::Campaign& campaign) = 0;
};

// Time as the runner sees it: phase durations in the report, the owner's postponement, the pause
// between commit attempts. Called from the runner's threads at once: must be thread-safe.
class RunnerClock {
 public:
  virtual ~RunnerClock() = default;
  virtual std::chrono::steady_clock::time_point now() = 0;
  virtual void sleep_for(std::chrono::milliseconds duration) = 0;
};

// The steady clock and std::this_thread::sleep_for.
RunnerClock& steady_runner_clock();

struct RunnerOptions {
  std::string journal_path;
  std::chrono::milliseconds agent_timeout{30000};  // online wait and per-command answers
  std::chrono::milliseconds stall_timeout{5000};   // transfer without ack progress
  // The campaign's deadline, counted from admission in each run of the client: a transfer still
  // running when it passes fails. 0: derived from the bytes to send (derived_campaign_timeout(),
  // transfer.hpp).
  std::chrono::milliseconds campaign_timeout{0};
  // Progress floor of every transfer (TransferPlan::min_rate, rate_window).
  uint64_t min_rate = 16384;
  std::chrono::milliseconds rate_window{30000};
  int max_postpones = 10;
  // ECU public keys (ecu_id -> key). An ECU listed here must sign its commit Result with its own
  // key; the signed Result goes into the report (ecu_signed_result), an unsigned or forged one fails
  // the ECU. ECUs not listed are not checked.
  std::map<std::string, trust::PublicKey> ecu_keys;
  // Called whenever progress changes (for the status topic), on the runner's threads, never with a
  // runner lock held.
  std::function<void(const v1::CampaignStatus&)> on_status;
  // While transfers run: a status and a journal write (the bytes sent so far) this often.
  std::chrono::milliseconds progress_interval{250};
  // Null: steady_runner_clock(). Must outlive the runner.
  RunnerClock* clock = nullptr;
  // For tests that cut the runner off at a given journal write: called before every write with what
  // is about to be written, on the writing thread, with the journal's lock held (it must not call
  // into the runner but cancel()). A non-OK Status fails that write: the runner stops with that
  // error as soon as its flow reaches a check (a failed progress write is not one). Null: no hook.
  std::function<Status(const v1::CampaignJournal& next)> before_journal_write;
};

class CampaignRunner {
 public:
  // `agents` and `transport` (the connection the agents' messages come through), `vehicle` and
  // `consent` must outlive the runner.
  CampaignRunner(AgentDirectory& agents, Transport& transport, VehicleStateSource& vehicle,
                 ConsentProvider& consent, RunnerOptions options);
  ~CampaignRunner();
  CampaignRunner(const CampaignRunner&) = delete;
  CampaignRunner& operator=(const CampaignRunner&) = delete;

  // Runs `campaign`, or resumes the journaled one if the journal holds the same campaign id.
  // Returns the final report (also kept in the journal). A Status error only for failures of
  // the runner itself (journal unwritable) and an invalid campaign (validate_campaign); campaign
  // failures are in the report. One run at a time.
  Result<v1::VehicleReport> run(const v1::Campaign& campaign);

  // Requests cancellation, from any thread: honoured before activation; later, the group finishes
  // its decision. Not journaled: a restarted runner goes on with the campaign.
  void cancel();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Validates a campaign's shape (ids, hashes, sizes, groups). kInvalidArgument names the problem.
Status validate_campaign(const v1::Campaign& campaign);

}  // namespace ota::client
