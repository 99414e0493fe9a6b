// Every campaign ends and its report arrives, whatever crashes in between: the cloud broker killed
// (kill -9, retained messages not yet saved) and restarted, the client restarted with reports
// still queued, the platform restarted, and a finished campaign offered again. Real cloud brokers
// (render-cloud, TLS), real ota-cloud-sim processes, and for the re-offer a whole ota-sim vehicle
// and a real ota-client.
#include <catch2/catch.hpp>

#include <google/protobuf/util/json_util.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "cloud_link.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/transport.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/cloud_broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/sim/wait.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using ota::client::CloudLink;
using ota::client::CloudLinkOptions;

std::string read_or_empty(const std::string& path) {
  auto c = ota::read_small_file(path, 16 << 20);
  return c ? *c : std::string();
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().string());
  return out;
}

struct RecoveryFixture {
  RecoveryFixture() {
    auto t = ota::sim::TempDir::create("ota-cloud-recovery-");
    REQUIRE(t.is_ok());
    tmp.emplace(std::move(t.value()));
    auto b = ota::sim::CloudBroker::start({});
    INFO(b.status().to_string());
    REQUIRE(b.is_ok());
    broker = std::move(b.value());
    packages = tmp->file("packages");
    reports = tmp->file("reports");
    std::filesystem::create_directories(packages);
    std::ofstream(packages + "/ecu.bin") << std::string(1000, 'e');
    campaign = tmp->file("campaign.json");
    REQUIRE(ota::atomic_write_file(
                campaign,
                R"({"campaign_id": "camp-r", "vin": "ota-client", "targets": [{"ecu_id": "ecu-0",
                                   "version": "2.0", "full": {"encoding": "PAYLOAD_ENCODING_RAW",
                                   "uri": "cloud://ecu.bin"}}]})")
                .is_ok());
  }

  // Starts ota-cloud-sim offering camp-r (log cloud-sim-N.log, N counting the starts).
  void start_sim(std::vector<std::string> extra) {
    std::vector<std::string> argv{OTA_CLOUD_SIM,     "--broker",   broker->uri(), "--pki",
                                  broker->pki_dir(), "--packages", packages,      "--reports-dir",
                                  reports,           "--campaign", campaign};
    argv.insert(argv.end(), extra.begin(), extra.end());
    sim_log = tmp->file("cloud-sim-" + std::to_string(++sims) + ".log");
    sim.reset();
    auto child = ota::sim::ChildProcess::spawn(argv, {sim_log, {}, "ota-cloud-sim", {}});
    REQUIRE(child.is_ok());
    sim.emplace(std::move(child.value()));
    const bool up = ota::sim::wait_for_file_contains(sim_log, "serving packages", 15000ms);
    INFO(ota::sim::tail_file(sim_log));
    REQUIRE(up);
  }

  // kill -9 of the cloud broker, then a start on the same port and database; waits until
  // ota-cloud-sim is back on it.
  void crash_and_restart_broker() {
    broker->kill();
    Status st = broker->restart();
    INFO(st.to_string());
    REQUIRE(st.is_ok());
    const bool back = ota::sim::wait_for_file_contains(sim_log, "reconnected to the broker", 20000ms);
    INFO(ota::sim::tail_file(sim_log));
    REQUIRE(back);
  }

  CloudLinkOptions link_options() const {
    CloudLinkOptions o;
    o.uri = broker->uri();
    o.ca_file = broker->ca_file();
    o.cert_file = broker->cert_file("ota-client");
    o.key_file = broker->key_file("ota-client");
    o.report_dir = tmp->file("outbox");
    o.report_resend_min = 500ms;
    o.report_resend_max = 2000ms;
    return o;
  }

  std::unique_ptr<CloudLink> connect() {
    auto link = CloudLink::connect(link_options());
    INFO(link.status().to_string());
    REQUIRE(link.is_ok());
    return std::move(link.value());
  }

  std::string sim_text() const { return read_or_empty(sim_log); }

  using Status = ota::Status;
  std::optional<ota::sim::TempDir> tmp;
  std::unique_ptr<ota::sim::CloudBroker> broker;
  std::optional<ota::sim::ChildProcess> sim;  // declared after broker: stopped first
  std::string packages, reports, campaign, sim_log;
  int sims = 0;
};

ota::v1::VehicleReport success_report(const std::string& id) {
  ota::v1::VehicleReport r;
  r.set_vin("ota-client");
  r.set_campaign_id(id);
  r.set_result(ota::v1::CAMPAIGN_SUCCESS);
  r.add_ecus()->set_ecu_id("ecu-0");
  return r;
}

}  // namespace

TEST_CASE_METHOD(RecoveryFixture, "An offer the cloud broker lost in a crash still reaches the vehicle",
                 "[integration][fault][cloud]") {
  SECTION("the vehicle asks for its pending offer when it connects") {
    // No resend by the platform within the test: only the vehicle's OfferRequest can bring it.
    start_sim({"--offer-resend-min-ms", "3600000", "--offer-resend-max-ms", "3600000"});
    crash_and_restart_broker();  // the retained offer was not saved yet (autosave every 60 s)
    auto link = connect();
    auto c = link->wait_campaign(15000ms);
    INFO(c.status().to_string() << "\n" << ota::sim::tail_file(sim_log));
    REQUIRE(c.is_ok());
    CHECK(c->campaign_id() == "camp-r");
    CHECK(sim_text().find("campaign camp-r offered again to ota-client (the vehicle asked for it)") !=
          std::string::npos);
    CHECK(ota::sim::wait_for_file_contains(sim_log, "offer of campaign camp-r acknowledged by ota-client",
                                           10000ms));
  }
  SECTION("the platform offers again until the vehicle acknowledges it") {
    start_sim({"--offer-resend-min-ms", "200", "--offer-resend-max-ms", "400"});
    crash_and_restart_broker();
    // A vehicle that neither asks nor acknowledges still gets the offer, again and again.
    ota::TransportOptions t;
    t.uri = broker->uri();
    t.client_id = "silent-vehicle";
    t.mqtt_v5 = true;
    t.tls =
        ota::TlsOptions{broker->ca_file(), broker->cert_file("ota-client"), broker->key_file("ota-client")};
    auto silent = ota::make_transport(t);
    std::mutex mu;
    std::condition_variable cv;
    int offers = 0;
    silent->on_message([&](const ota::TransportMessage& m) {
      if (m.payload.empty()) return;
      std::lock_guard<std::mutex> lock(mu);
      ++offers;
      cv.notify_all();
    });
    REQUIRE(silent->connect(5000ms).is_ok());
    REQUIRE(silent->subscribe("ota/v1/cloud/ota-client/down/campaign", 1).is_ok());
    {
      std::unique_lock<std::mutex> lock(mu);
      INFO(ota::sim::tail_file(sim_log));
      REQUIRE(cv.wait_for(lock, 15s, [&] { return offers >= 2; }));
    }
    CHECK(sim_text().find("not acknowledged; next in") != std::string::npos);
    auto link = connect();
    auto c = link->wait_campaign(15000ms);
    REQUIRE(c.is_ok());
    CHECK(c->campaign_id() == "camp-r");
    CHECK(ota::sim::wait_for_file_contains(sim_log, "offer of campaign camp-r acknowledged by ota-client",
                                           10000ms));
  }
}

TEST_CASE_METHOD(RecoveryFixture, "A report sent while the cloud broker is down arrives after it comes back",
                 "[integration][fault][cloud]") {
  start_sim({});
  SECTION("through the same link, which resends after reconnecting") {
    auto link = connect();
    REQUIRE(link->wait_campaign(15000ms).is_ok());
    broker->kill();
    REQUIRE(link->queue_report(success_report("camp-r")).is_ok());  // stored; the publish goes nowhere
    REQUIRE(broker->restart().is_ok());
    Status acked = link->wait_reports_acknowledged(30000ms);
    INFO(acked.to_string() << "\n" << ota::sim::tail_file(sim_log));
    REQUIRE(acked.is_ok());
  }
  SECTION("after a client restart while the broker was down") {
    {
      auto link = connect();
      REQUIRE(link->wait_campaign(15000ms).is_ok());
      broker->kill();
      REQUIRE(link->queue_report(success_report("camp-r")).is_ok());
      CHECK(link->wait_reports_acknowledged(500ms).code() == ota::Code::kTimeout);
    }  // the client ends with its report unacknowledged
    crash_and_restart_broker();
    auto link = connect();  // publishes the outbox at start
    Status acked = link->wait_reports_acknowledged(30000ms);
    INFO(acked.to_string() << "\n" << ota::sim::tail_file(sim_log));
    REQUIRE(acked.is_ok());
  }
  REQUIRE(ota::sim::wait_for_file_contains(sim_log, "campaign camp-r withdrawn from ota-client", 10000ms));
  const auto stored = files_in(reports);
  REQUIRE(stored.size() == 1);
  CHECK(stored[0] == reports + "/ota-client-camp-r.json");
  ota::v1::VehicleReport back;
  REQUIRE(google::protobuf::util::JsonStringToMessage(read_or_empty(stored[0]), &back).ok());
  CHECK(back.result() == ota::v1::CAMPAIGN_SUCCESS);
}

TEST_CASE_METHOD(RecoveryFixture, "A duplicate report is stored once and acknowledged each time",
                 "[integration][fault][cloud]") {
  start_sim({});
  auto link = connect();
  REQUIRE(link->wait_campaign(15000ms).is_ok());
  REQUIRE(link->queue_report(success_report("camp-r")).is_ok());
  REQUIRE(link->wait_reports_acknowledged(15000ms).is_ok());

  SECTION("by the same platform") {}
  SECTION("by a restarted platform") {
    sim->terminate();
    start_sim({});
  }
  // The same report again, as a resend crossing the ack would bring it.
  REQUIRE(link->resend_stored_report("camp-r"));
  Status acked = link->wait_reports_acknowledged(15000ms);
  INFO(acked.to_string() << "\n" << ota::sim::tail_file(sim_log));
  REQUIRE(acked.is_ok());
  CHECK(ota::sim::wait_for_file_contains(sim_log, "duplicate report from ota-client: campaign camp-r",
                                         10000ms));
  // Stored by the first platform only; the restarted one found it on disk.
  CHECK(count_of(sim_text(), "ota-cloud-sim: report from ota-client") == (sims == 1 ? 1u : 0u));
  CHECK(files_in(reports).size() == 1);
  CHECK(link->outbox().pending().empty());
}

namespace {

// `key = "..."` of [section] in a TOML text, replaced by `value`.
void set_toml(std::string& toml, const std::string& section, const std::string& key,
              const std::string& value) {
  const auto at_section = toml.find("[" + section + "]");
  REQUIRE(at_section != std::string::npos);
  const std::string lead = "\n" + key + " = \"";
  const auto at = toml.find(lead, at_section);
  REQUIRE(at != std::string::npos);
  const auto begin = at + lead.size();
  toml.replace(begin, toml.find('"', begin) - begin, value);
}

std::string toml_value(const std::string& toml, const std::string& section, const std::string& key) {
  const auto at_section = toml.find("[" + section + "]");
  if (at_section == std::string::npos) return {};
  const std::string lead = "\n" + key + " = \"";
  const auto at = toml.find(lead, at_section);
  if (at == std::string::npos) return {};
  const auto begin = at + lead.size();
  return toml.substr(begin, toml.find('"', begin) - begin);
}

}  // namespace

TEST_CASE("A finished campaign offered again is answered with its stored report",
          "[integration][fault][cloud]") {
  auto dir = ota::test::temp_dir("ota-cloud-reoffer-");
  auto first = ota::test::run_sim(dir, {"--agents", "1", "--image-size", "256KiB"});
  INFO(first.output << first.client_log());
  REQUIRE(first.exit_code == 0);
  REQUIRE(first.report.result() == ota::v1::CAMPAIGN_SUCCESS);
  std::string toml = read_or_empty(first.work + "/client.toml");
  REQUIRE_FALSE(toml.empty());
  const std::string report_file = toml_value(toml, "report", "file");
  REQUIRE_FALSE(report_file.empty());
  const std::string report_before = read_or_empty(report_file);
  REQUIRE(report_before.find("CAMPAIGN_SUCCESS") != std::string::npos);

  // The same vehicle again (its state, its trust store, its outbox), with a new vehicle broker and
  // a platform that offers the campaign once more, as one that never got the report would.
  ota::sim::BrokerOptions bo;
  bo.agents = {"bcm"};
  auto vehicle_broker = ota::sim::Broker::start(bo);
  REQUIRE(vehicle_broker.is_ok());
  ota::sim::CloudBrokerOptions co;
  co.dir = dir.file("cloud-broker-2");
  co.pki_dir = first.work + "/cloud-broker/pki";
  auto cloud_broker = ota::sim::CloudBroker::start(co);
  INFO(cloud_broker.status().to_string());
  REQUIRE(cloud_broker.is_ok());
  set_toml(toml, "broker", "uri", (*vehicle_broker)->uri());
  set_toml(toml, "broker", "password_file", (*vehicle_broker)->credentials_file("ota-client"));
  set_toml(toml, "cloud", "uri", (*cloud_broker)->uri());
  REQUIRE(ota::atomic_write_file(dir.file("again.toml"), toml).is_ok());

  const std::string platform_reports = dir.file("platform-reports");
  const std::string sim_log = dir.file("again-cloud-sim.log");
  auto platform = ota::sim::ChildProcess::spawn(
      {OTA_CLOUD_SIM, "--broker", (*cloud_broker)->uri(), "--pki", co.pki_dir, "--packages",
       first.work + "/cloud-packages", "--signed-campaign", first.work + "/signed-campaign.json",
       "--reports-dir", platform_reports, "--exit-after-report"},
      {sim_log, {}, "ota-cloud-sim", {}});
  REQUIRE(platform.is_ok());
  REQUIRE(ota::sim::wait_for_file_contains(sim_log, "serving packages", 15000ms));
  auto agent = ota::sim::ChildProcess::spawn(
      {ota::test::bin("ota-agent-sim"), "--ecu", "bcm", "--hardware-id", "bcm-hw1", "--broker",
       (*vehicle_broker)->uri(), "--password-file", (*vehicle_broker)->credentials_file("bcm"), "--dir",
       first.work + "/ecu/bcm", "--trust-root", first.work + "/keys/root.signed"},
      {dir.file("again-agent.log"), {}, "agent", ""});
  REQUIRE(agent.is_ok());
  const std::string client_log = dir.file("again-client.log");
  auto client = ota::sim::ChildProcess::spawn(
      {ota::test::bin("ota-client"), "--config", dir.file("again.toml")}, {client_log, {}, "client", ""});
  REQUIRE(client.is_ok());
  auto exit = client->wait_for(90s);
  const std::string log = read_or_empty(client_log);
  INFO(log << "\n" << ota::sim::tail_file(sim_log));
  REQUIRE(exit.has_value());
  CHECK(exit->exit_code == 0);  // the stored SUCCESS
  CHECK(log.find("already ended CAMPAIGN_SUCCESS here") != std::string::npos);
  CHECK(log.find("replay") == std::string::npos);
  CHECK(read_or_empty(report_file) == report_before);  // not overwritten

  auto platform_exit = platform->wait_for(20s);
  REQUIRE(platform_exit.has_value());
  CHECK(platform_exit->success());
  const auto stored = files_in(platform_reports);
  REQUIRE(stored.size() == 1);
  ota::v1::VehicleReport back;
  REQUIRE(google::protobuf::util::JsonStringToMessage(read_or_empty(stored[0]), &back).ok());
  CHECK(back.result() == ota::v1::CAMPAIGN_SUCCESS);
  CHECK(back.campaign_id() == first.report.campaign_id());
}
