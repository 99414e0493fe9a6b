// End-to-end scenarios through ota-sim: broker, client and agents as real processes.
#include <catch2/catch.hpp>

#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/state.pb.h"
#include "support.hpp"

using ota::test::run_sim;

namespace {
ota::sim::TempDir temp() { return ota::test::temp_dir("ota-it-"); }
}  // namespace

TEST_CASE("A full-image campaign updates every ECU and reports it", "[integration][client]") {
  auto dir = temp();
  auto run = run_sim(dir, {"--agents", "3", "--image-size", "1MiB"});
  INFO(run.output << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == ota::v1::CAMPAIGN_SUCCESS);
  REQUIRE(run.report.ecus_size() == 3);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == ota::v1::SUCCESS);
    CHECK(e.version_before() == "1.0.0");
    CHECK(e.version_after() == "1.1.0");
    CHECK(e.bytes_transferred() >= e.image_size());
    CHECK(e.encoding() == ota::v1::PAYLOAD_ENCODING_RAW);
    CHECK(ota::test::boot_bank(run, e.ecu_id()) == "B");
    // The ECU's own signed word for its commit, verifiable with its public key alone.
    REQUIRE_FALSE(e.ecu_signed_result().empty());
    auto key = ota::trust::PublicKey::load(run.work + "/keys/ecus/" + e.ecu_id() + ".pub");
    REQUIRE(key.is_ok());
    CHECK(ota::trust::verify_result_signature(e.ecu_signed_result(), *key).is_ok());
    auto other = ota::trust::PublicKey::load(run.work + "/keys/ecus/" +
                                             (e.ecu_id() == "bcm" ? "tcu" : "bcm") + ".pub");
    REQUIRE(other.is_ok());
    CHECK(ota::trust::verify_result_signature(e.ecu_signed_result(), *other).code() ==
          ota::Code::kSignatureInvalid);
  }
  CHECK(run.report.duration_ms() > 0);
  // One entry per child: client, 3 agents, cloud-sim, broker; each with its peak RSS.
  CHECK(run.report.processes_size() == 6);
  bool platform = false;
  for (const auto& p : run.report.processes()) {
    CHECK(p.peak_rss_kib() > 0);
    platform |= p.name() == "cloud-sim" && p.exit_code() == 0;  // it received the report and exited
  }
  CHECK(platform);
  // The platform collected the vehicle's report.
  CHECK(run.client_log().find("campaign offered by the platform (signed)") != std::string::npos);
  // The bytes in the new bank are the target image.
  auto bank = ota::sha256_file(run.work + "/ecu/bcm/bank_b.img");
  auto image = ota::sha256_file(run.work + "/packages/bcm/image-1.1.0.bin");
  REQUIRE(bank.is_ok());
  REQUIRE(image.is_ok());
  CHECK(*bank == *image);
}

// The vehicle's MQTT connections use the native client by default; Paho carries them when asked
// (and always for MQTT 5 and TLS), so both stay able to run a whole campaign.
TEST_CASE("The same campaign succeeds with every vehicle connection on either MQTT client",
          "[integration][client]") {
  for (const std::string client : {"native", "paho"}) {
    DYNAMIC_SECTION("MQTT client " << client) {
      auto dir = temp();
      auto run = run_sim(dir, {"--agents", "2", "--image-size", "2MiB", "--delta", "--full-only", "1"}, 240,
                         {"OTA_MQTT_CLIENT=" + client});
      INFO(run.output << run.client_log());
      REQUIRE(run.exit_code == 0);
      REQUIRE(run.has_report);
      CHECK(run.report.result() == ota::v1::CAMPAIGN_SUCCESS);
      REQUIRE(run.report.ecus_size() == 2);
      for (const auto& e : run.report.ecus()) {
        CHECK(e.result() == ota::v1::SUCCESS);
        CHECK(ota::test::boot_bank(run, e.ecu_id()) == "B");
        auto agent_log = ota::read_small_file(run.work + "/ecu/" + e.ecu_id() + "/agent.log", 16 << 20);
        REQUIRE(agent_log.is_ok());
        CHECK(agent_log->find("MQTT client " + client + " for tcp://") != std::string::npos);
      }
      CHECK(run.client_log().find("MQTT client " + client + " for tcp://") != std::string::npos);
    }
  }
}

TEST_CASE("A failed health check rolls the whole atomic group back", "[integration][client][fault]") {
  auto dir = temp();
  auto run = run_sim(dir, {"--agents", "4", "--image-size", "512KiB", "--fail", "tcu:health"});
  INFO(run.output << run.client_log());
  CHECK(run.exit_code != 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == ota::v1::CAMPAIGN_FAILED);
  const auto* tcu = run.ecu("tcu");
  REQUIRE(tcu != nullptr);
  CHECK(tcu->result() == ota::v1::FAILED);
  CHECK(tcu->error().phase() == ota::v1::PHASE_HEALTH);
  CHECK(tcu->error().message().find("health") != std::string::npos);
  REQUIRE(run.report.ecus_size() == 4);
  for (const auto& e : run.report.ecus()) {
    if (e.ecu_id() != "tcu") CHECK(e.result() == ota::v1::ROLLED_BACK);
    CHECK(e.version_after() == "1.0.0");
    CHECK(ota::test::boot_bank(run, e.ecu_id()) == "A");
  }
  CHECK(run.report.reason().find("tcu") != std::string::npos);
}

TEST_CASE("A mixed campaign sends deltas to capable ECUs and full images to the others",
          "[integration][client]") {
  auto dir = temp();
  auto run = run_sim(dir, {"--agents", "4", "--image-size", "2MiB", "--delta", "--full-only", "2"});
  INFO(run.output << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  REQUIRE(run.report.ecus_size() == 4);
  int deltas = 0, fulls = 0;
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == ota::v1::SUCCESS);
    CHECK(e.version_after() == "1.1.0");
    if (e.encoding() == ota::v1::PAYLOAD_ENCODING_DELTA) {
      ++deltas;
      CHECK(e.bytes_transferred() < e.image_size() / 4);
    } else {
      ++fulls;
      CHECK(e.bytes_transferred() >= e.image_size());
    }
    auto bank = ota::sha256_file(run.work + "/ecu/" + e.ecu_id() + "/bank_b.img");
    auto image = ota::sha256_file(run.work + "/packages/" + e.ecu_id() + "/image-1.1.0.bin");
    REQUIRE(bank.is_ok());
    CHECK(*bank == *image);
  }
  CHECK(deltas == 2);
  CHECK(fulls == 2);
}

TEST_CASE("A refused pre-condition sends nothing", "[integration][client]") {
  auto dir = temp();
  auto run = run_sim(dir, {"--agents", "4", "--image-size", "256KiB", "--soc", "12", "--min-soc", "30"});
  CHECK(run.exit_code != 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == ota::v1::CAMPAIGN_REJECTED);
  CHECK(run.report.reason().find("battery at 12 %") != std::string::npos);
  REQUIRE(run.report.ecus_size() == 4);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.bytes_transferred() == 0);
    CHECK(e.version_after() == "1.0.0");
  }
  auto moving = run_sim(temp(), {"--agents", "1", "--image-size", "256KiB", "--not-parked"});
  REQUIRE(moving.has_report);
  CHECK(moving.report.result() == ota::v1::CAMPAIGN_REJECTED);
  CHECK(moving.report.reason().find("not parked") != std::string::npos);
}

TEST_CASE("Consent postponed then accepted updates and declined does not", "[integration][client]") {
  auto dir = temp();
  auto run = run_sim(dir, {"--agents", "4", "--image-size", "256KiB", "--consent", "postpone:300,accept"});
  INFO(run.output << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == ota::v1::CAMPAIGN_SUCCESS);
  CHECK(run.client_log().find("postponed the update by 300 ms") != std::string::npos);

  auto declined = run_sim(temp(), {"--agents", "2", "--image-size", "256KiB", "--consent", "decline"});
  REQUIRE(declined.has_report);
  CHECK(declined.report.result() == ota::v1::CAMPAIGN_REJECTED);
  CHECK(declined.report.reason().find("declined") != std::string::npos);
  REQUIRE(declined.report.ecus_size() == 2);
  for (const auto& e : declined.report.ecus()) CHECK(e.bytes_transferred() == 0);
}

TEST_CASE("Cancel before activation leaves every ECU on its old version", "[integration][client]") {
  auto dir = temp();
  // Slow flash so that the cancel lands mid-transfer.
  auto run =
      run_sim(dir, {"--agents", "4", "--image-size", "8MiB", "--write-speed", "8", "--cancel-at", "10"});
  INFO(run.output << run.client_log());
  CHECK(run.exit_code != 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == ota::v1::CAMPAIGN_CANCELLED);
  REQUIRE(run.report.ecus_size() == 4);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == ota::v1::CANCELLED);
    CHECK(e.version_after() == "1.0.0");
    CHECK(e.bytes_transferred() < e.image_size());
    CHECK(ota::test::boot_bank(run, e.ecu_id()) == "A");
  }
}

TEST_CASE("kill -9 of the client mid-transfer resumes without re-sending what agents hold",
          "[integration][client][fault]") {
  auto dir = temp();
  // Slow flash and a small window: the kill lands with most of each image still to send.
  auto run = run_sim(dir, {"--agents", "4", "--image-size", "8MiB", "--write-speed", "6", "--window", "4",
                           "--kill-client-at", "30"});
  INFO(run.output << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  CHECK(run.report.result() == ota::v1::CAMPAIGN_SUCCESS);
  REQUIRE(run.report.ecus_size() == 4);
  uint64_t sent = 0, images = 0;
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == ota::v1::SUCCESS);
    CHECK(e.version_after() == "1.1.0");
    sent += e.bytes_transferred();
    images += e.image_size();
  }
  // Sent in all, by both clients (the killed one's count is journaled every 250 ms): about the
  // images, far less than sending them twice.
  CHECK(sent > images / 2);
  CHECK(sent < images + images / 4);
  // The restarted client took the campaign up from its journal, once.
  auto journal_bytes = ota::read_small_file(run.work + "/client-state/campaign-journal.pb", 16 << 20);
  INFO(journal_bytes.status().to_string());
  REQUIRE(journal_bytes.is_ok());
  ota::v1::CampaignJournal journal;
  REQUIRE(journal.ParseFromString(*journal_bytes));
  CHECK(journal.campaign().campaign_id() == "sim-campaign-1");
  CHECK(journal.resumes() == 1);
  CHECK(journal.finished());
  const std::string log = run.client_log();
  // Every agent held part of its image when the new client asked: the transfer resumed there.
  for (const auto& e : run.report.ecus()) {
    auto at = log.find(e.ecu_id() + ": resumed at byte ");
    REQUIRE(at != std::string::npos);
    uint64_t offset = std::stoull(log.substr(at + e.ecu_id().size() + 18));
    CHECK(offset > 0);
    CHECK(offset < e.image_size());
  }
  bool killed = false;
  for (const auto& p : run.report.processes())
    killed |= p.name().find("killed") != std::string::npos && p.exit_code() == -9;
  CHECK(killed);
}

TEST_CASE("A transient commit failure is retried so the atomic group is never half-committed",
          "[integration][client][fault]") {
  auto dir = temp();
  auto run = run_sim(dir, {"--agents", "3", "--image-size", "256KiB", "--fail", "adas:commit"});
  INFO(run.output << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  REQUIRE(run.report.ecus_size() == 3);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == ota::v1::SUCCESS);
    CHECK(e.version_after() == "1.1.0");
  }
  CHECK(run.client_log().find("adas: commit attempt 1 failed") != std::string::npos);
}

TEST_CASE("DTCs the campaign resolves are cleared after the update and reported before and after",
          "[integration][client]") {
  auto dir = temp();
  auto run = run_sim(dir, {"--agents", "4", "--image-size", "256KiB", "--dtcs", "2"});
  INFO(run.output << run.client_log());
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.has_report);
  REQUIRE(run.report.ecus_size() == 4);
  for (const auto& e : run.report.ecus()) {
    CHECK(e.result() == ota::v1::SUCCESS);
    REQUIRE(e.dtcs_before_size() == 2);
    // The campaign resolves 0xC10000: only the other one is left.
    REQUIRE(e.dtcs_after_size() == 1);
    CHECK(e.dtcs_after(0).code() == 0xC10001u);
  }
  CHECK(run.report.conditions_start().battery_soc_percent() == 80);
  CHECK(run.report.conditions_end().timestamp_ms() >= run.report.conditions_start().timestamp_ms());
}
