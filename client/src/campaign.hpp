// CampaignRunner: carries out one campaign across the vehicle's ECUs (docs/CLIENT.md).
//
//   pre-conditions -> consent -> for each ordering group, ascending:
//     transfer + install (parallel across the group's ECUs) -> barrier -> activate + health (parallel)
//     -> decision (commit, or roll the group back if it is atomic and an ECU failed) -> carry it out
//   -> clear resolved DTCs -> report
//
// The journal (CampaignJournal) is rewritten atomically after every step; a runner started on an
// existing journal resumes: transfers continue from the agents' durable offsets, and a group whose
// decision was recorded has that decision finished, never changed.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent_directory.hpp"
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

struct RunnerOptions {
  std::string journal_path;
  std::chrono::milliseconds agent_timeout{30000};  // online wait and per-command answers
  std::chrono::milliseconds stall_timeout{5000};   // transfer without ack progress
  int max_postpones = 10;
  // ECU public keys (ecu_id -> key). An ECU listed here must sign its commit Result with its own
  // key; the signed Result goes into the report (ecu_signed_result), an unsigned or forged one fails
  // the ECU. ECUs not listed are not checked.
  std::map<std::string, trust::PublicKey> ecu_keys;
  // Called whenever progress changes (for the status topic).
  std::function<void(const v1::CampaignStatus&)> on_status;
};

class CampaignRunner {
 public:
  CampaignRunner(AgentDirectory& fleet, Transport& transport, VehicleStateSource& vehicle,
                 ConsentProvider& consent, RunnerOptions options);

  // Runs `campaign`, or resumes the journaled one if the journal holds the same campaign id.
  // Returns the final report (also kept in the journal). A Status error only for failures of
  // the runner itself (journal unwritable); campaign failures are in the report.
  Result<v1::VehicleReport> run(const v1::Campaign& campaign);

  // Requests cancellation: honoured before activation; later, the group finishes its decision.
  void cancel() { cancel_ = true; }

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
  std::atomic<bool> cancel_{false};
};

// Validates a campaign's shape (ids, hashes, sizes, groups). kInvalidArgument names the problem.
Status validate_campaign(const v1::Campaign& campaign);

// JSON of a report (protobuf JSON mapping, proto field names, enums as names).
std::string report_to_json(const v1::VehicleReport& report);

}  // namespace ota::client
