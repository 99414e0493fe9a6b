// Attacks on the state directories from a local account: symbolic links planted where the agent and
// the client create their temporaries and staging files, and a second process started on a state
// directory already in use. Real processes (ota-sim, ota-client, ota-agent-sim) and a real broker.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "ota/core/file.hpp"
#include "ota/sim/wait.hpp"
#include "ota/test/broker_fixture.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
namespace v1 = ota::v1;

namespace {

bool is_link(const std::string& path) {
  struct stat sb {};
  return ::lstat(path.c_str(), &sb) == 0 && S_ISLNK(sb.st_mode);
}

std::string read_or_empty(const std::string& path) {
  auto r = ota::read_small_file(path, 16 << 20);
  return r ? *r : std::string();
}

// A file outside every state directory, and a link to it planted at `at`.
void plant(const std::string& at, const std::string& victim) {
  REQUIRE(ota::atomic_write_file(victim, "precious\n", 0644).is_ok());
  REQUIRE(::symlink(victim.c_str(), at.c_str()) == 0);
}

}  // namespace

TEST_CASE("Symbolic links planted in the state directories are never written through",
          "[integration][security]") {
  auto dir = ota::test::temp_dir("ota-sec-links-");
  const std::string work = dir.file("work");
  // ota-agent-sim keeps the agent's state in {--dir}/state.
  const std::string ecu = work + "/ecu/bcm/state", client = work + "/client-state";
  for (const auto& d : {ecu, client + "/trust"}) REQUIRE(ota::make_private_dir(d).is_ok());
  const std::vector<std::pair<std::string, std::string>> links = {
      {ecu + "/agent-state.pb.tmp", dir.file("victim-agent-state")},
      {ecu + "/payload.part", dir.file("victim-payload")},
      {client + "/campaign-journal.pb.tmp", dir.file("victim-journal")},
      {client + "/trust/director.counter.tmp", dir.file("victim-director-counter")},
      {client + "/trust/image.counter.tmp", dir.file("victim-image-counter")},
  };
  for (const auto& [at, victim] : links) plant(at, victim);

  // A signed campaign, staged as a delta (through payload.part), activated and committed.
  auto run = ota::test::run_sim(dir, {"--agents", "1", "--image-size", "256KiB", "--delta"});
  INFO(run.output << "\n" << run.client_log());
  CHECK(run.exit_code == 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == v1::CAMPAIGN_SUCCESS);
  REQUIRE(run.report.ecus_size() == 1);
  CHECK(run.report.ecus(0).bytes_transferred() < run.report.ecus(0).image_size() / 4);  // the delta
  for (const auto& [at, victim] : links) {
    INFO(at);
    CHECK(read_or_empty(victim) == "precious\n");
    CHECK_FALSE(is_link(at));
  }
  // The state itself was written where it belongs.
  CHECK_FALSE(is_link(ecu + "/agent-state.pb"));
  CHECK(!read_or_empty(ecu + "/agent-state.pb").empty());
  CHECK(!read_or_empty(client + "/campaign-journal.pb").empty());
  CHECK(!read_or_empty(client + "/trust/director.counter").empty());
}

TEST_CASE_METHOD(ota::test::BrokerFixture, "A second ota-client on the same state directory exits at once",
                 "[integration][security]") {
  auto dir = ota::test::temp_dir("ota-sec-2clients-");
  const std::string state = dir.file("state");
  const std::string toml = "[broker]\nuri = \"" + broker().uri() + "\"\npassword_file = \"" +
                           broker().credentials_file("ota-client") + "\"\n[state]\ndir = \"" + state +
                           "\"\n[trust]\nallow_unsigned = true\n";
  REQUIRE(ota::atomic_write_file(dir.file("client.toml"), toml).is_ok());
  auto spawn = [&](const std::string& log) {
    auto c =
        ota::sim::ChildProcess::spawn({ota::test::bin("ota-client"), "--config", dir.file("client.toml")},
                                      ota::sim::SpawnOptions{dir.file(log), {}, "client", ""});
    REQUIRE(c.is_ok());
    return std::move(*c);
  };
  // The first serves the inventory (no campaign, no cloud) and holds the directory.
  auto first = spawn("first.log");
  const std::string pid = std::to_string(first.pid()) + "\n";
  REQUIRE(ota::sim::wait_until([&] { return read_or_empty(state + "/lock") == pid; }, 10s));

  auto second = spawn("second.log");
  auto exit = second.wait_for(10s);
  REQUIRE(exit.has_value());
  const std::string log = read_or_empty(dir.file("second.log"));
  INFO(log);
  CHECK(exit->exit_code == 1);
  CHECK(log.find("state directory " + state + " is in use by another ota-client (pid " +
                 std::to_string(first.pid()) + ")") != std::string::npos);
  CHECK(first.running());
}

TEST_CASE_METHOD(ota::test::BrokerFixture, "A second agent on the same state directory exits at once",
                 "[integration][security]") {
  auto dir = ota::test::temp_dir("ota-sec-2agents-");
  const std::string ecu = dir.file("ecu-a");
  auto spawn = [&](const std::string& log) {
    auto c = ota::sim::ChildProcess::spawn(
        {ota::test::bin("ota-agent-sim"), "--ecu", "ecu-a", "--hardware-id", "hw-1", "--broker",
         broker().uri(), "--password-file", broker().credentials_file("ecu-a"), "--dir", ecu},
        ota::sim::SpawnOptions{dir.file(log), {}, "agent", ""});
    REQUIRE(c.is_ok());
    return std::move(*c);
  };
  auto first = spawn("first.log");
  REQUIRE(ota::sim::wait_until(
      [&] { return read_or_empty(dir.file("first.log")).find("serving on") != std::string::npos; }, 10s));
  auto second = spawn("second.log");
  auto exit = second.wait_for(10s);
  REQUIRE(exit.has_value());
  const std::string log = read_or_empty(dir.file("second.log"));
  INFO(log);
  CHECK(exit->exit_code != 0);
  CHECK(log.find("state directory " + ecu + "/state is in use by another agent (pid " +
                 std::to_string(first.pid()) + ")") != std::string::npos);
  CHECK(first.running());
  // The first is undisturbed: its state file is intact.
  CHECK(!read_or_empty(ecu + "/state/agent-state.pb").empty());
}
