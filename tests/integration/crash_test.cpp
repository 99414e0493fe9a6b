// Atomic means atomic, whatever is killed when: ota-sim runs one atomic group of three ECUs as real
// processes (broker, client, agents), kills -9 one of them at a chosen point of the campaign and
// starts it again at once, as a process supervisor would (--kill WHO@WHEN). Then each ECU's flash and
// state are read from disk (the bank files, the boot file and the agent's state file, not the report):
// every ECU on the same version, that version's bytes in the bank it boots, nothing left on trial,
// the campaign ended, and an agent's restart recovered in seconds, not after a command timeout
// (ota-sim's client waits 30 s for an answer).
#include <catch2/catch.hpp>

#include <chrono>
#include <set>

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/v1/state.pb.h"
#include "support.hpp"

namespace v1 = ota::v1;

namespace {

const char* const kEcus[] = {"bcm", "tcu", "adas"};

struct Round {
  const char* what;
  std::vector<std::string> args;  // besides the common ones
  // From start to end of ota-sim, setup included: below the client's 30 s command timeout, which a
  // recovery that waited for it would exceed.
  int max_seconds;
  // When set: the path the round must have taken, as the agent of `ecu` logs it, and a success.
  const char* ecu = nullptr;
  const char* agent_says = nullptr;
};

// What one ECU's disk says: the version in the bank it boots, checked against the bytes there.
std::string version_on_disk(const ota::test::SimRun& run, const std::string& ecu) {
  const std::string dir = run.work + "/ecu/" + ecu;
  auto raw = ota::read_small_file(dir + "/state/agent-state.pb", 1 << 20);
  REQUIRE(raw.is_ok());
  v1::AgentDiskState s;
  REQUIRE(s.ParseFromString(*raw));
  INFO(ecu << ": " << s.ShortDebugString());
  CHECK_FALSE(s.trial());  // ended: committed or rolled back, nothing awaits a decision
  CHECK((s.phase() == v1::PHASE_DONE || s.phase() == v1::PHASE_IDLE));
  const bool on_b = s.active_bank() == v1::BANK_B;
  CHECK(ota::test::boot_bank(run, ecu) == (on_b ? "B" : "A"));
  const v1::BankRecord* active = nullptr;
  for (const auto& b : s.banks()) {
    if (b.bank() == s.active_bank()) active = &b;
  }
  REQUIRE(active != nullptr);
  CHECK(active->valid());
  auto bank = ota::read_small_file(dir + (on_b ? "/bank_b.img" : "/bank_a.img"), 64 << 20);
  REQUIRE(bank.is_ok());
  REQUIRE(bank->size() >= active->size());
  const ota::Digest d = ota::Sha256::of(bank->substr(0, active->size()));
  CHECK(std::string(reinterpret_cast<const char*>(d.data()), d.size()) == active->sha256());
  return active->version();
}

void check_round(const Round& r) {
  auto dir = ota::test::temp_dir("ota-crash-");
  std::vector<std::string> args = {"--agents",     "3",     "--image-size", "256KiB",
                                   "--chunk-size", "32768", "--no-cloud"};
  args.insert(args.end(), r.args.begin(), r.args.end());
  const auto t0 = std::chrono::steady_clock::now();
  auto run = ota::test::run_sim(dir, args, 120);
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0);
  INFO(r.what << "\n" << run.output << run.client_log());
  REQUIRE(run.has_report);  // the campaign ended, with a report
  CHECK((run.exit_code == 0 || run.exit_code == 1));
  bool killed = false;  // the kill happened: the killed process is in the report
  for (const auto& p : run.report.processes()) killed |= p.name().find("(killed") != std::string::npos;
  CHECK(killed);
  std::set<std::string> versions;
  for (const char* e : kEcus) versions.insert(version_on_disk(run, e));
  CHECK(versions.size() == 1);  // no atomic group split
  const std::string expected = run.report.result() == v1::CAMPAIGN_SUCCESS ? "1.1.0" : "1.0.0";
  CHECK(*versions.begin() == expected);
  CHECK(took.count() <= r.max_seconds);
  if (r.agent_says) {
    auto log = ota::read_small_file(run.work + "/ecu/" + r.ecu + "/agent.log", 16 << 20);
    REQUIRE(log.is_ok());
    CHECK(log->find(r.agent_says) != std::string::npos);
    CHECK(run.report.result() == v1::CAMPAIGN_SUCCESS);
  }
}

void check_rounds(const std::vector<Round>& rounds) {
  for (const Round& r : rounds) {
    DYNAMIC_SECTION(r.what) { check_round(r); }
  }
}

// --fail tcu:health: the group is decided "rollback".
const std::vector<std::string> kUnhealthyTcu = {"--fail", "tcu:health"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("kill -9 of an agent at any phase never splits an atomic group", "[integration][fault]") {
  check_rounds({
      {"mid-transfer", {"--write-speed", "1", "--kill", "agent:bcm@bcm:transfer"}, 25},
      {"while installing", {"--kill", "agent:bcm@bcm:install"}, 25},
      {"while activating, before its answer", {"--kill", "agent:tcu@tcu:activate"}, 25},
      {"on trial, before the decision",
       {"--kill", "agent:bcm@bcm:trial"},
       25,
       "bcm",
       "restarted on trial bank B, healthy: waiting for the client's commit or rollback"},
      {"after the commit decision, before its commit", {"--kill", "agent:adas@decision:commit"}, 25},
      {"between two commits", {"--kill", "agent:adas@committed:1"}, 25},
      {"during the rollback", with(kUnhealthyTcu, {"--kill", "agent:bcm@bcm:rollback"}), 25},
  });
}

TEST_CASE("kill -9 of the client at any phase never splits an atomic group", "[integration][fault]") {
  check_rounds({
      {"mid-transfer", {"--write-speed", "1", "--kill", "client@bcm:transfer"}, 25},
      {"on trial, before the decision", {"--kill", "client@tcu:trial"}, 25},
      {"after the commit decision", {"--kill", "client@decision:commit"}, 25},
      {"between two commits", {"--kill", "client@committed:1"}, 25},
      {"after the rollback decision", with(kUnhealthyTcu, {"--kill", "client@decision:rollback"}), 25},
  });
}

TEST_CASE("kill -9 of the broker at any phase never splits an atomic group", "[integration][fault]") {
  check_rounds({
      {"during install", {"--kill", "broker@tcu:install"}, 25},
      {"on trial, before the decision", {"--kill", "broker@bcm:trial"}, 25},
      {"after the commit decision", {"--kill", "broker@decision:commit"}, 25},
      {"during the rollback", with(kUnhealthyTcu, {"--kill", "broker@bcm:rollback"}), 25},
  });
}
