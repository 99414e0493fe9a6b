// A vehicle in one process for the runner's tests: a LoopbackBroker, one FakeAgent per ECU, the
// payload files and the campaign over them, and client "processes" (transport, AgentDirectory,
// CampaignRunner) that can be cut off at a journal write as a kill -9 would.
//
// Checks it keeps while campaigns run, for every test to assert on:
// - every Commit, Rollback and Cancel an agent receives finds the same decision for its group
//   already in the journal file (decided durably before acted on);
// - once a write that lands holds a group's decision, every later write that lands holds the same.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent_directory.hpp"
#include "campaign.hpp"
#include "fake_agent.hpp"
#include "ota/core/loopback_transport.hpp"
#include "ota/sim/tempdir.hpp"

namespace ota::test {

struct EcuSpec {
  EcuSpec(std::string ecu_id, uint32_t ordering_group, bool already_on_target = false,
          FakeAgentScript agent_script = {})
      : id(std::move(ecu_id)),
        group(ordering_group),
        on_target_already(already_on_target),
        script(agent_script) {}
  std::string id;
  uint32_t group;
  bool on_target_already;  // runs the target version: SKIPPED
  FakeAgentScript script;
};

// Time for the runner that does not sleep: the commit back-off and postponements take no time.
class InstantClock : public client::RunnerClock {
 public:
  std::chrono::steady_clock::time_point now() override;
  void sleep_for(std::chrono::milliseconds duration) override;

 private:
  std::atomic<int64_t> elapsed_ms_{0};
};

// One run of the client. cut_at_write(n, lands) makes it "die" at its n-th journal write (1-based):
// from that moment nothing it publishes reaches the broker and no later write lands; the n-th write
// itself lands when `lands`. run() then returns as soon as the runner notices.
class TestVehicle;

class ClientProcess {
 public:
  ClientProcess(TestVehicle& vehicle, const std::string& client_id, client::RunnerOptions options);
  ~ClientProcess();

  void cut_at_write(int n, bool lands);
  Result<v1::VehicleReport> run(const v1::Campaign& campaign);
  client::CampaignRunner& runner() { return *runner_; }
  bool cut() const { return cut_; }
  int writes() const { return writes_; }  // journal writes attempted before the cut, the cut one included

 private:
  class CuttableTransport;
  Status before_write(const v1::CampaignJournal& next);

  TestVehicle& vehicle_;

  std::unique_ptr<CuttableTransport> transport_;
  std::unique_ptr<client::AgentDirectory> directory_;
  std::unique_ptr<client::CampaignRunner> runner_;
  std::unique_ptr<client::VehicleStateSource> conditions_;
  std::unique_ptr<client::ConsentProvider> consent_;
  std::atomic<bool> cut_{false};
  std::atomic<int> writes_{0};
  int cut_at_ = 0;
  bool cut_lands_ = false;
};

class TestVehicle {
 public:
  // `atomic_groups`: the groups with an atomic GroupPolicy.
  TestVehicle(std::vector<EcuSpec> ecus, std::vector<uint32_t> atomic_groups);
  ~TestVehicle();

  v1::Campaign& campaign() { return campaign_; }
  // What the clients made from now on read as the vehicle's state, and answer when asked for
  // consent (in order; the last one repeats; none: accept).
  v1::VehicleConditions conditions;
  std::vector<client::ConsentAnswer> consent_answers;

  FakeAgent& agent(const std::string& ecu_id);
  const std::string& journal_path() const { return journal_path_; }
  const std::string& old_version(const std::string& ecu_id) const { return old_versions_.at(ecu_id); }
  const std::string& new_version(const std::string& ecu_id) const { return new_versions_.at(ecu_id); }

  // Runner options for this vehicle: its journal, short timeouts, no progress ticks, the instant
  // clock, statuses recorded.
  client::RunnerOptions options();
  std::unique_ptr<ClientProcess> client();
  std::unique_ptr<ClientProcess> client(client::RunnerOptions options);

  // The journal file as it stands.
  v1::CampaignJournal journal() const;
  // What the checks above found wrong; empty when all held.
  std::vector<std::string> violations() const;
  std::vector<v1::CampaignStatus> statuses() const;
  // Every ECU as its agent stands, against the group decisions of the journal: a committed ECU
  // runs the target and is not on trial; in a group rolled back or cancelled every ECU but the
  // skipped ones runs its old version and is not on trial. Returns what does not hold.
  std::vector<std::string> inconsistencies() const;

 private:
  friend class ClientProcess;
  void check_command(const std::string& ecu_id, const v1::Command& cmd);
  Status check_landing(const v1::CampaignJournal& next);
  void violation(const std::string& what);

  std::shared_ptr<LoopbackBroker> broker_ = std::make_shared<LoopbackBroker>();
  sim::TempDir dir_;
  std::string journal_path_;
  v1::Campaign campaign_;
  std::map<std::string, std::unique_ptr<FakeAgent>> agents_;
  std::map<std::string, std::string> old_versions_, new_versions_;
  InstantClock clock_;
  int clients_ = 0;
  mutable std::mutex mu_;
  std::vector<std::string> violations_;
  std::map<uint32_t, v1::GroupDecision> landed_decisions_;
  std::vector<v1::CampaignStatus> statuses_;
};

// The report of ECU `id` in `report`; throws when there is none (a test failure).
inline const v1::EcuReport& ecu_report(const v1::VehicleReport& report, const std::string& id) {
  for (const auto& e : report.ecus()) {
    if (e.ecu_id() == id) return e;
  }
  throw std::runtime_error("no report for " + id);
}

}  // namespace ota::test
