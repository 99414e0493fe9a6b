// ota-client's start-up, as a process supervisor sees it: a campaign under way is resumed from the
// journal before anything is asked of the platform, and the exit status says what happened.
#include <catch2/catch.hpp>

#include "ota/core/file.hpp"
#include "support.hpp"

namespace v1 = ota::v1;

TEST_CASE("an unreachable broker at start is not a configuration error: exit 4", "[integration][client]") {
  auto dir = ota::test::temp_dir("ota-client-start-");
  // Port 1 on the loopback: nothing listens there.
  const std::string toml = "[broker]\nuri = \"tcp://127.0.0.1:1\"\n[state]\ndir = \"" + dir.file("state") +
                           "\"\n[trust]\nallow_unsigned = true\n";
  REQUIRE(ota::atomic_write_file(dir.file("client.toml"), toml).is_ok());
  auto client =
      ota::sim::ChildProcess::spawn({ota::test::bin("ota-client"), "--config", dir.file("client.toml")},
                                    ota::sim::SpawnOptions{dir.file("client.log"), {}, "client", ""});
  REQUIRE(client.is_ok());
  auto exit = client->wait_for(std::chrono::seconds(30));
  REQUIRE(exit.has_value());
  auto log = ota::read_small_file(dir.file("client.log"));
  INFO((log ? *log : std::string()));
  CHECK(exit->exit_code == 4);
  CHECK(log->find("UNAVAILABLE") != std::string::npos);
}

TEST_CASE("a client restarted mid-campaign resumes its journal before it waits for any offer",
          "[integration][client][fault]") {
  auto dir = ota::test::temp_dir("ota-client-start-");
  // With the platform: the first client gets the campaign as an offer; the one started after the
  // kill finds it in its journal and goes on at once.
  auto run = ota::test::run_sim(dir, {"--agents", "2", "--image-size", "512KiB", "--chunk-size", "32768",
                                      "--write-speed", "1", "--kill", "client@bcm:transfer"});
  const std::string log = run.client_log();
  INFO(run.output << log);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == v1::CAMPAIGN_SUCCESS);
  const auto resumed = log.find("the journal holds campaign sim-campaign-1 unfinished: resuming it");
  REQUIRE(resumed != std::string::npos);
  const auto offered = log.find("campaign offered by the platform");
  REQUIRE(offered != std::string::npos);
  CHECK(offered < resumed);                                                           // the first client's
  CHECK(log.find("campaign offered by the platform", resumed) == std::string::npos);  // not awaited again
  CHECK(log.find("resuming campaign sim-campaign-1 (resume #1)") != std::string::npos);
}
