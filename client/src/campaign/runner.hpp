// CampaignRunner::Impl, shared by the files that carry out a campaign (campaign.hpp lists them).
// Internal to the client library.
//
// Threads: run() on the caller's thread; the members of a group are staged, activated, committed or
// rolled back on one thread each (parallel()), and a ticker publishes progress while they stage.
// journal_mu_ guards the journal (the ECU entries change on those threads), progress_ and totals_.
// Agent calls and status publishing happen without it: publishing may wait for the transport's
// callback thread, which may itself wait for journal_mu_ (progress updates).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "campaign.hpp"
#include "campaign/decision.hpp"
#include "campaign/journal.hpp"
#include "campaign/status.hpp"
#include "transfer.hpp"

namespace ota::client {

class CampaignRunner::Impl {
 public:
  Impl(AgentDirectory& agents, Transport& transport, VehicleStateSource& vehicle, ConsentProvider& consent,
       RunnerOptions options);

  Result<v1::VehicleReport> run(const v1::Campaign& campaign);
  void cancel() { cancel_ = true; }

 private:
  using Members = std::vector<v1::EcuJournal*>;
  // Why a campaign ends before it starts, and how it is reported.
  struct Refusal {
    v1::CampaignResult result;
    std::string reason;
  };

  // runner.cpp: the campaign, group by group, and what every step uses.
  Status execute();
  Status run_group(v1::GroupJournal* group);
  Status finish(v1::CampaignResult result, const std::string& reason);
  Status save();
  void publish_status(CampaignState state);
  void parallel(const std::vector<std::string>& ecus, const std::function<void(const std::string&)>& fn);
  void mark_failed(v1::EcuJournal* e, const Status& st, v1::Phase phase, v1::EcuResult result = v1::FAILED);
  void add_time(v1::EcuJournal* e, v1::Phase phase, std::chrono::steady_clock::time_point since);
  Result<v1::Result> call_with_retry(const std::string& ecu, const v1::Command& cmd,
                                     std::chrono::milliseconds timeout, int attempts = 3);
  Result<v1::Result> call_timed(v1::EcuJournal* e, v1::Command cmd, v1::Phase timed_as);
  // Install verifies (and for a delta reconstructs) a whole image before it answers: it is given
  // four command timeouts. An agent that restarts meanwhile is asked again at once all the same.
  std::chrono::milliseconds install_timeout() const { return options_.agent_timeout * 4; }

  // admission.cpp: before the first group.
  std::optional<Refusal> admit();
  Status preconditions_now();
  std::optional<Refusal> ask_consent();

  // stage.cpp: transfer and install.
  Status stage_group(const Members& members);
  std::vector<std::string> skip_or_list_unstaged(const Members& members);
  Result<TransferPlan> prepare(v1::EcuJournal* e);
  Status stage(v1::EcuJournal* e, const TransferPlan& plan, v1::Phase* phase);

  // decide.cpp: the barrier, activation, and the durable decision.
  Status decide_group(v1::GroupJournal* group, const Members& members);
  GroupOutcome outcome_of(DecisionPoint point, uint32_t group, const Members& members);
  void activate_group(const Members& members);
  Status activate(v1::EcuJournal* e, v1::Phase* phase);

  // carry_out.cpp: the recorded decision.
  Status commit_group(const Members& members);
  Status commit(v1::EcuJournal* e);
  Status roll_forward(v1::EcuJournal* e);
  Result<v1::Result> roll_back(v1::EcuJournal* e, const v1::Command& cmd);
  void clear_resolved_dtcs(v1::EcuJournal* e);
  Status roll_back_group(const v1::GroupJournal& group, const Members& members);

  AgentDirectory& agents_;
  Transport& transport_;
  VehicleStateSource& vehicle_;
  ConsentProvider& consent_;
  RunnerOptions options_;
  RunnerClock& clock_;
  std::atomic<bool> cancel_{false};
  // The campaign's deadline (RunnerOptions::campaign_timeout), set before the first group of a run.
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();

  std::mutex journal_mu_;
  Journal journal_;
  std::map<std::string, uint64_t> progress_;  // acknowledged payload bytes per ECU
  std::map<std::string, uint64_t> totals_;    // payload size per ECU
};

}  // namespace ota::client
