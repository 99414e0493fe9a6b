// A broker crash in the middle of a campaign, through ota-sim (broker, client and agents as real
// processes): the in-vehicle Mosquitto is killed with SIGKILL while every ECU is part-way through its
// image, then started again on the same port with the same configuration, password file and ACL.
// The client and the agents reconnect by themselves and each transfer goes on from what its agent
// holds (docs/PROTOCOL.md, section 9, "Broker disconnect or broker restart").
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "support.hpp"

using ota::test::run_sim;

namespace {

ota::sim::TempDir temp() { return ota::test::temp_dir("ota-it-broker-"); }

// ota-sim's lines about the restart, per ECU: "ECU: N bytes acknowledged before the broker restart,
// resumed at byte M" (the first StartTransfer answered after the restart) or "..., no resync after it".
struct AfterRestart {
  uint64_t acked_before = 0;
  bool resynced = false;
  uint64_t resumed_at = 0;
};

std::map<std::string, AfterRestart> parse_restart_lines(const std::string& output) {
  static const std::regex line(
      R"(^  ([A-Za-z0-9_.-]+): (\d+) bytes acknowledged before the broker restart, (resumed at byte (\d+)|no resync after it)$)");
  std::map<std::string, AfterRestart> out;
  std::istringstream in(output);
  std::string text;
  while (std::getline(in, text)) {
    std::smatch m;
    if (!std::regex_match(text, m, line)) continue;
    AfterRestart a;
    a.acked_before = std::stoull(m[2].str());
    a.resynced = m[4].matched;
    if (a.resynced) a.resumed_at = std::stoull(m[4].str());
    out[m[1].str()] = a;
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("kill -9 of the broker mid-transfer resumes every transfer where it stood",
          "[integration][client][fault]") {
  auto dir = temp();
  // Slow flash (4 MB/s per ECU) and 8 MiB images: the broker dies once the slowest ECU has
  // acknowledged half of its image: a transfer that started over would send 1.5 images or more.
  auto run = run_sim(dir,
                     {"--agents", "3", "--image-size", "8MiB", "--write-speed", "4", "--restart-broker-at",
                      "50", "--timeout", "60"},
                     90);
  INFO(run.output << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == ota::v1::CAMPAIGN_SUCCESS);

  // The broker was killed (SIGKILL, no database save) part-way through, and the restarted one
  // stopped normally at the end.
  int killed = 0;
  bool final_broker = false;
  for (const auto& p : run.report.processes()) {
    if (p.name().rfind("broker (killed at ", 0) == 0) {
      ++killed;
      CHECK(p.exit_code() == -9);
      const int pct = std::stoi(p.name().substr(18));
      CHECK(pct >= 50);
      CHECK(pct < 100);
    }
    final_broker |= p.name() == "broker" && p.exit_code() == 0;
  }
  CHECK(killed == 1);
  CHECK(final_broker);

  // Same port, same configuration: mosquitto started twice on one port, and after the second start
  // every agent and the client connected again with their own credentials.
  std::smatch port_match;
  REQUIRE(std::regex_search(run.output, port_match,
                            std::regex(R"(broker killed at \d+% and restarted on port (\d+))")));
  const std::string port = port_match[1].str();
  auto broker_log = ota::read_small_file(run.work + "/broker/mosquitto.log", 16 << 20);
  REQUIRE(broker_log.is_ok());
  INFO(*broker_log);
  int listens = 0, starts = 0;
  std::string after_restart;
  for (const auto& l : lines_of(*broker_log)) {
    if (l.find("Opening ipv4 listen socket on port ") != std::string::npos) {
      ++listens;
      CHECK(l.find("on port " + port + ".") != std::string::npos);
    }
    if (l.find("mosquitto version") != std::string::npos && l.find(" running") != std::string::npos) ++starts;
    if (starts >= 2) after_restart += l + "\n";
  }
  CHECK(listens == 2);
  CHECK(starts == 2);
  // Client ids are the usernames (the broker's default, use_username_as_clientid).
  for (const std::string who : {"bcm", "tcu", "adas", "ota-client"}) {
    CHECK(after_restart.find(" as " + who + " ") != std::string::npos);
  }

  // Every ECU updated, with the image's bytes in its new bank.
  REQUIRE(run.report.ecus_size() == 3);
  for (const auto& e : run.report.ecus()) {
    INFO(e.ecu_id());
    CHECK(e.result() == ota::v1::SUCCESS);
    CHECK(e.version_after() == "1.1.0");
    CHECK(ota::test::boot_bank(run, e.ecu_id()) == "B");
    auto bank = ota::sha256_file(run.work + "/ecu/" + e.ecu_id() + "/bank_b.img");
    auto image = ota::sha256_file(run.work + "/packages/" + e.ecu_id() + "/image-1.1.0.bin");
    REQUIRE(bank.is_ok());
    REQUIRE(image.is_ok());
    CHECK(*bank == *image);
    // Resumed, not started over: what was re-sent (chunks lost with the broker, the window in
    // flight) is a small part of the image, nowhere near a second copy.
    CHECK(e.bytes_transferred() >= e.image_size());
    CHECK(e.bytes_transferred() < e.image_size() + e.image_size() / 2);
  }

  // Where each transfer stood when the broker died, and where it went on.
  const auto after = parse_restart_lines(run.output);
  REQUIRE(after.size() == 3);
  for (const auto& e : run.report.ecus()) {
    INFO(e.ecu_id());
    auto it = after.find(e.ecu_id());
    REQUIRE(it != after.end());
    const AfterRestart& a = it->second;
    // The kill landed mid-transfer for this ECU.
    CHECK(a.acked_before >= e.image_size() / 2);
    CHECK(a.acked_before < e.image_size());
    // A transfer that stalled on chunks or acks lost with the broker was re-synchronised: the
    // agent (still running, transfer open) answered at least what it had acknowledged before the
    // crash, never 0. One whose next chunk and ack both got through went on without a resync.
    if (a.resynced) {
      CHECK(a.resumed_at > 0);
      CHECK(a.resumed_at >= a.acked_before);
      CHECK(a.resumed_at <= e.image_size());
    }
  }
}
