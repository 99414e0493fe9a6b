// CloudLink against a real cloud broker (render-cloud: TLS, client certificates) and a real
// ota-cloud-sim process. Every child is a ChildProcess or a CloudBroker member of the fixture, so
// it is stopped when the test ends, passed or not.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "cloud_link.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/transport.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/cloud_broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/sim/wait.hpp"

namespace {

using namespace std::chrono_literals;
using ota::Code;
using ota::client::CloudLink;
using ota::client::CloudLinkOptions;
using ota::client::DownloadStats;

std::string status_of(const ota::Status& st) { return st.to_string(); }

struct CloudFixture {
  CloudFixture() {
    auto t = ota::sim::TempDir::create("ota-cloud-test-");
    REQUIRE(t.is_ok());
    tmp.emplace(std::move(t.value()));
    auto b = ota::sim::CloudBroker::start({});
    INFO("cloud broker: " << status_of(b.status()));
    REQUIRE(b.is_ok());
    broker = std::move(b.value());
    packages = tmp->file("packages");
    reports = tmp->file("reports");
    cache = tmp->file("cache");
    std::filesystem::create_directories(packages);
  }

  // A package of pseudo-random bytes; returns its digest.
  ota::Digest write_package(const std::string& name, uint64_t size) {
    std::mt19937_64 rng(size ^ std::hash<std::string>()(name));
    std::ofstream out(packages + "/" + name, std::ios::binary);
    std::vector<uint64_t> block(1 << 14);
    ota::Sha256 sha;
    for (uint64_t done = 0; done < size;) {
      for (auto& w : block) w = rng();
      const size_t n = static_cast<size_t>(std::min<uint64_t>(block.size() * 8, size - done));
      out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
      sha.update(block.data(), n);
      done += n;
    }
    REQUIRE(out.good());
    return sha.finish();
  }

  // A campaign with one target per package; sizes and digests are filled in by ota-cloud-sim.
  std::string write_campaign(const std::string& id, const std::vector<std::string>& package_names) {
    std::string json = "{\"campaign_id\": \"" + id + "\", \"vin\": \"ota-client\", \"targets\": [";
    int i = 0;
    for (const auto& p : package_names) {
      if (i > 0) json += ",";
      json += "{\"ecu_id\": \"ecu-" + std::to_string(i++) +
              "\", \"version\": \"2.0\", \"full\": {\"encoding\": "
              "\"PAYLOAD_ENCODING_RAW\", \"uri\": \"cloud://" +
              p + "\"}}";
    }
    json += "]}";
    const std::string path = tmp->file("campaign.json");
    REQUIRE(ota::atomic_write_file(path, json).is_ok());
    return path;
  }

  void start_sim(std::vector<std::string> extra) {
    std::vector<std::string> argv{OTA_CLOUD_SIM, "--broker", broker->uri(),   "--pki", broker->pki_dir(),
                                  "--packages",  packages,   "--reports-dir", reports};
    argv.insert(argv.end(), extra.begin(), extra.end());
    sim_log = tmp->file("cloud-sim.log");
    auto child = ota::sim::ChildProcess::spawn(argv, {sim_log, {}, "ota-cloud-sim", {}});
    INFO(status_of(child.status()));
    REQUIRE(child.is_ok());
    sim.emplace(std::move(child.value()));
    const bool up = ota::sim::wait_for_file_contains(sim_log, "serving packages", 15000ms);
    INFO("ota-cloud-sim log:\n" << ota::sim::tail_file(sim_log));
    REQUIRE(up);
  }

  CloudLinkOptions link_options() const {
    CloudLinkOptions o;
    o.uri = broker->uri();
    o.ca_file = broker->ca_file();
    o.cert_file = broker->cert_file("ota-client");
    o.key_file = broker->key_file("ota-client");
    o.vehicle = "ota-client";
    o.stall_timeout = 2000ms;
    // For measurements: OTA_CLOUD_CHUNK (bytes) and OTA_CLOUD_WINDOW override the defaults.
    if (const char* c = std::getenv("OTA_CLOUD_CHUNK")) o.chunk_size = static_cast<uint32_t>(std::atoi(c));
    if (const char* w = std::getenv("OTA_CLOUD_WINDOW")) o.window = static_cast<uint32_t>(std::atoi(w));
    return o;
  }

  std::unique_ptr<CloudLink> connect(CloudLinkOptions o) {
    auto link = CloudLink::connect(std::move(o));
    INFO("connect: " << status_of(link.status()));
    REQUIRE(link.is_ok());
    return std::move(link.value());
  }

  ota::v1::Campaign campaign(CloudLink& link) {
    auto c = link.wait_campaign(15000ms);
    INFO(status_of(c.status()) << "\nota-cloud-sim log:\n" << ota::sim::tail_file(sim_log));
    REQUIRE(c.is_ok());
    return c.value();
  }

  std::optional<ota::sim::TempDir> tmp;
  std::unique_ptr<ota::sim::CloudBroker> broker;
  std::optional<ota::sim::ChildProcess> sim;  // declared after broker: stopped first
  std::string packages, reports, cache, sim_log;
};

std::string digest_bytes(const ota::Digest& d) {
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace

TEST_CASE_METHOD(CloudFixture, "CloudLink receives the campaign published by ota-cloud-sim",
                 "[integration][cloud]") {
  const ota::Digest digest = write_package("brake-2.0.bin", 100000);
  start_sim({"--campaign", write_campaign("camp-offer", {"brake-2.0.bin"})});
  auto link = connect(link_options());
  const auto c = campaign(*link);
  CHECK(c.campaign_id() == "camp-offer");
  REQUIRE(c.targets_size() == 1);
  CHECK(c.targets(0).full().uri() == "cloud://brake-2.0.bin");
  CHECK(c.targets(0).full().size() == 100000);
  CHECK(c.targets(0).full().sha256() == digest_bytes(digest));
  // The same retained offer is not delivered twice.
  CHECK(link->wait_campaign(300ms).status().code() == Code::kTimeout);
}

TEST_CASE_METHOD(CloudFixture, "A signed campaign reaches the link as signed", "[integration][cloud]") {
  const ota::Digest digest = write_package("bcm-3.1.bin", 5000);
  ota::v1::SignedCampaign sc;
  sc.set_signed_director("director-metadata-bytes");
  sc.set_signed_image("image-metadata-bytes");
  auto* loc = sc.add_payloads();
  loc->set_sha256(digest_bytes(digest));
  loc->set_uri("cloud://bcm-3.1.bin");
  std::string json;
  REQUIRE(google::protobuf::util::MessageToJsonString(sc, &json).ok());
  const std::string path = tmp->file("signed.json");
  REQUIRE(ota::atomic_write_file(path, json).is_ok());
  start_sim({"--signed-campaign", path});
  auto link = connect(link_options());
  auto offer = link->wait_offer(15000ms);
  INFO(status_of(offer.status()) << "\nota-cloud-sim log:\n" << ota::sim::tail_file(sim_log));
  REQUIRE(offer.is_ok());
  REQUIRE(offer->has_signed_campaign());
  CHECK(offer->signed_campaign().SerializeAsString() == sc.SerializeAsString());
  CHECK_FALSE(offer->has_campaign());
}

TEST_CASE_METHOD(CloudFixture, "CloudLink downloads a package and its SHA-256 matches",
                 "[integration][cloud]") {
  const uint64_t size = 48u << 20;
  const ota::Digest digest = write_package("gateway-2.0.bin", size);
  write_package("small.bin", 1000);
  start_sim({"--campaign", write_campaign("camp-download", {"gateway-2.0.bin", "small.bin"})});
  auto link = connect(link_options());
  const auto offer = campaign(*link);

  const auto t0 = std::chrono::steady_clock::now();
  auto local = ota::client::localize(offer, cache, *link);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(status_of(local.status()) << "\nota-cloud-sim log:\n" << ota::sim::tail_file(sim_log));
  REQUIRE(local.is_ok());
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  std::cout << "cloud download: " << (size + 1000) / 1e6 / secs << " MB/s (" << (size >> 20) << " MiB in "
            << secs << " s), peak RSS of the test process " << ru.ru_maxrss / 1024 << " MiB\n";
  const std::string path = local->targets(0).full().uri();
  CHECK(path == cache + "/gateway-2.0.bin");
  auto got = ota::sha256_file(path);
  REQUIRE(got.is_ok());
  CHECK(got.value() == digest);
  CHECK_FALSE(std::filesystem::exists(path + ".part"));
  CHECK(local->targets(1).full().uri() == cache + "/small.bin");

  SECTION("an existing complete file is not fetched again") {
    DownloadStats st;
    REQUIRE(link->download(offer.targets(0).full(), path, {}, &st).is_ok());
    CHECK(st.fetched == 0);
  }
  SECTION("a digest that does not match is refused and the part file deleted") {
    auto ref = offer.targets(1).full();
    std::string wrong = ref.sha256();
    wrong[0] = static_cast<char>(wrong[0] ^ 1);
    ref.set_sha256(wrong);
    const std::string dest = cache + "/wrong.bin";
    auto st = link->download(ref, dest);
    CHECK(st.code() == Code::kHashMismatch);
    CHECK(st.message().find("SHA-256") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dest + ".part"));
    CHECK_FALSE(std::filesystem::exists(dest));
  }
  SECTION("an unknown package is refused by the platform") {
    auto ref = offer.targets(1).full();
    ref.set_uri("cloud://no-such-package");
    auto st = link->download(ref, cache + "/none.bin");
    CHECK(st.code() == Code::kNotFound);
    CHECK(st.message().find("no-such-package") != std::string::npos);
  }
  SECTION("a uri that is not a cloud package is refused") {
    auto ref = offer.targets(1).full();
    ref.set_uri("cloud://../etc/passwd");
    CHECK(link->download(ref, cache + "/x").code() == Code::kInvalidArgument);
  }
}

TEST_CASE_METHOD(CloudFixture, "An interrupted download resumes from its part file", "[integration][cloud]") {
  const uint64_t size = 8u << 20;
  const ota::Digest digest = write_package("body-2.0.bin", size);
  start_sim({"--campaign", write_campaign("camp-resume", {"body-2.0.bin"}), "--drop-download-after",
             std::to_string(3u << 20)});
  auto opts = link_options();
  opts.stall_timeout = 1000ms;
  auto link = connect(opts);
  const auto offer = campaign(*link);
  const std::string dest = cache + "/body-2.0.bin";
  std::filesystem::create_directories(cache);

  DownloadStats first;
  auto st = link->download(offer.targets(0).full(), dest, {}, &first);
  INFO(status_of(st) << "\nota-cloud-sim log:\n" << ota::sim::tail_file(sim_log));
  REQUIRE(st.code() == Code::kTimeout);
  const uint64_t part = std::filesystem::file_size(dest + ".part");
  CHECK(part >= (1u << 20));  // what was served before the drop, written in order
  CHECK(part < size);

  DownloadStats second;
  st = link->download(offer.targets(0).full(), dest, {}, &second);
  INFO(status_of(st));
  REQUIRE(st.is_ok());
  CHECK(second.resumed_from == part);
  CHECK(second.fetched == size - part);
  CHECK(second.fetched < size);
  auto got = ota::sha256_file(dest);
  REQUIRE(got.is_ok());
  CHECK(got.value() == digest);
}

TEST_CASE_METHOD(CloudFixture, "A CA that did not issue the broker certificate is refused",
                 "[integration][cloud]") {
  const std::string other = tmp->file("other-pki");
  auto r = ota::sim::run_command({std::string(OTA_BROKER_CONFIG_DIR_FOR_TESTS) + "/make-pki", other, "-q"});
  REQUIRE(r.is_ok());
  REQUIRE(r->exit.success());
  auto opts = link_options();
  opts.ca_file = other + "/ca.crt";
  opts.connect_timeout = 5000ms;
  auto link = CloudLink::connect(opts);
  REQUIRE_FALSE(link.is_ok());
  INFO(status_of(link.status()));
  CHECK(link.status().code() == Code::kUnavailable);
  CHECK(link.status().message().find("TLS handshake") != std::string::npos);
  CHECK(link.status().message().find(opts.ca_file) != std::string::npos);
}

TEST_CASE_METHOD(CloudFixture, "An unreachable cloud broker is named as such", "[integration][cloud]") {
  auto port = ota::sim::pick_free_port();
  REQUIRE(port.is_ok());
  auto opts = link_options();
  opts.uri = "ssl://127.0.0.1:" + std::to_string(port.value());
  opts.connect_timeout = 2000ms;
  auto link = CloudLink::connect(opts);
  REQUIRE_FALSE(link.is_ok());
  INFO(status_of(link.status()));
  CHECK(link.status().code() == Code::kUnavailable);
  CHECK(link.status().message().find("unreachable") != std::string::npos);
}

TEST_CASE_METHOD(CloudFixture, "A missing client certificate is refused", "[integration][cloud]") {
  SECTION("by the link, before connecting") {
    auto opts = link_options();
    opts.cert_file.clear();
    auto link = CloudLink::connect(opts);
    REQUIRE_FALSE(link.is_ok());
    CHECK(link.status().code() == Code::kInvalidArgument);
    CHECK(link.status().message().find("client certificate") != std::string::npos);
    opts.cert_file = tmp->file("missing.crt");
    link = CloudLink::connect(opts);
    REQUIRE_FALSE(link.is_ok());
    CHECK(link.status().message().find("missing.crt") != std::string::npos);
  }
  SECTION("by the broker, for a client without one") {
    ota::TransportOptions t;
    t.uri = broker->uri();
    t.client_id = "no-cert";
    t.mqtt_v5 = true;
    t.tls = ota::TlsOptions{broker->ca_file(), "", ""};
    auto transport = ota::make_transport(t);
    auto st = transport->connect(5000ms);
    INFO(status_of(st));
    CHECK_FALSE(st.is_ok());
  }
}

TEST_CASE_METHOD(CloudFixture, "A report published by the link reaches the reports dir of ota-cloud-sim",
                 "[integration][cloud]") {
  write_package("ecu.bin", 1000);
  start_sim({"--campaign", write_campaign("camp-report", {"ecu.bin"}), "--exit-after-report"});
  auto link = connect(link_options());
  const auto offer = campaign(*link);

  ota::v1::VehicleInventory inv;
  inv.set_vin("ota-client");
  inv.add_ecus()->set_ecu_id("ecu-0");
  REQUIRE(link->publish_inventory(inv).is_ok());
  ota::v1::CampaignStatus status;
  status.set_campaign_id(offer.campaign_id());
  status.set_state("TRANSFER");
  REQUIRE(link->publish_status(status).is_ok());
  ota::v1::VehicleReport report;
  report.set_vin("ota-client");
  report.set_campaign_id(offer.campaign_id());
  report.set_result(ota::v1::CAMPAIGN_SUCCESS);
  auto* ecu = report.add_ecus();
  ecu->set_ecu_id("ecu-0");
  ecu->set_result(ota::v1::SUCCESS);
  REQUIRE(link->publish_report(report).is_ok());

  auto exit = sim->wait_for(15000ms);
  INFO("ota-cloud-sim log:\n" << ota::sim::tail_file(sim_log));
  REQUIRE(exit.has_value());
  CHECK(exit->success());
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(reports)) files.push_back(e.path().string());
  REQUIRE(files.size() == 1);
  auto json = ota::read_small_file(files[0]);
  REQUIRE(json.is_ok());
  ota::v1::VehicleReport back;
  REQUIRE(google::protobuf::util::JsonStringToMessage(json.value(), &back).ok());
  CHECK(back.campaign_id() == "camp-report");
  CHECK(back.result() == ota::v1::CAMPAIGN_SUCCESS);
  CHECK(json.value().find("\"campaign_id\"") != std::string::npos);  // proto field names
  std::string log = ota::sim::tail_file(sim_log, 50);
  CHECK(log.find("inventory from ota-client: 1 ECUs") != std::string::npos);
  CHECK(log.find("status from ota-client: campaign camp-report TRANSFER") != std::string::npos);
  CHECK(log.find("campaign camp-report withdrawn") != std::string::npos);
}

namespace {

// A hostile platform: answers every DownloadRequest with a chunk spoiled by `spoil`.
struct FakePlatform {
  FakePlatform(CloudFixture& f, std::function<void(ota::v1::DownloadChunk&, std::string& bytes)> spoil)
      : spoil_(std::move(spoil)) {
    ota::TransportOptions t;
    t.uri = f.broker->uri();
    t.client_id = "fake-platform";
    t.mqtt_v5 = true;
    t.tls = ota::TlsOptions{f.broker->ca_file(), f.broker->cert_file("ota-cloud"),
                            f.broker->key_file("ota-cloud")};
    transport = ota::make_transport(t);
    transport->on_message([this](const ota::TransportMessage& m) {
      ota::v1::DownloadRequest req;
      if (!req.ParseFromString(m.payload)) return;
      ota::v1::DownloadChunk c;
      ota::codec::set_protocol(c.mutable_protocol());
      c.set_request_id(req.request_id());
      c.set_package(req.package());
      c.set_offset(req.offset());
      c.set_total_size(4096);
      c.set_data(std::string(std::min<uint64_t>(req.length(), 4096 - req.offset()), 'x'));
      c.set_crc32c(ota::crc32c(c.data().data(), c.data().size()));
      c.set_last(req.offset() + c.data().size() == 4096);
      std::string bytes;
      spoil_(c, bytes);
      if (bytes.empty()) bytes = c.SerializeAsString();
      (void)transport->publish("ota/v1/cloud/ota-client/down/download/" + req.request_id(), bytes, 1, false);
    });
    REQUIRE(transport->connect(5000ms).is_ok());
    REQUIRE(transport->subscribe("ota/v1/cloud/+/up/download", 1).is_ok());
  }
  std::function<void(ota::v1::DownloadChunk&, std::string&)> spoil_;
  std::unique_ptr<ota::Transport> transport;
};

ota::v1::PayloadRef ref_4k() {
  ota::v1::PayloadRef ref;
  ref.set_uri("cloud://pkg");
  ref.set_size(4096);
  const ota::Digest d = ota::Sha256::of(std::string(4096, 'x'));
  ref.set_sha256(std::string(reinterpret_cast<const char*>(d.data()), d.size()));
  return ref;
}

}  // namespace

TEST_CASE_METHOD(CloudFixture, "Chunks from a hostile platform are refused with the reason",
                 "[integration][cloud]") {
  std::filesystem::create_directories(cache);
  auto opts = link_options();
  opts.chunk_size = 1024;
  auto link = connect(opts);
  const std::string dest = cache + "/pkg";
  SECTION("well-formed chunks pass") {
    FakePlatform fake(*this, [](ota::v1::DownloadChunk&, std::string&) {});
    auto st = link->download(ref_4k(), dest);
    INFO(status_of(st));
    CHECK(st.is_ok());
  }
  SECTION("a total size that differs from the campaign's") {
    FakePlatform fake(*this, [](ota::v1::DownloadChunk& c, std::string&) { c.set_total_size(1u << 30); });
    auto st = link->download(ref_4k(), dest);
    CHECK(st.code() == Code::kCorrupt);
    CHECK(st.message().find("campaign says 4096") != std::string::npos);
  }
  SECTION("a chunk longer than asked for") {
    FakePlatform fake(*this, [](ota::v1::DownloadChunk& c, std::string&) { c.mutable_data()->append("y"); });
    auto st = link->download(ref_4k(), dest);
    CHECK(st.code() == Code::kCorrupt);
    CHECK(st.message().find("expected 1024") != std::string::npos);
  }
  SECTION("a CRC-32C that never matches") {
    FakePlatform fake(*this, [](ota::v1::DownloadChunk& c, std::string&) { c.set_crc32c(c.crc32c() ^ 1); });
    auto st = link->download(ref_4k(), dest);
    CHECK(st.code() == Code::kHashMismatch);
    CHECK(st.message().find("CRC-32C") != std::string::npos);
  }
  SECTION("bytes that are not a DownloadChunk") {
    FakePlatform fake(*this,
                      [](ota::v1::DownloadChunk&, std::string& bytes) { bytes = std::string(64, '\xff'); });
    auto st = link->download(ref_4k(), dest);
    CHECK(st.code() == Code::kCorrupt);
    CHECK(st.message().find("DownloadChunk") != std::string::npos);
  }
  SECTION("an answer for another offset") {
    FakePlatform fake(*this, [](ota::v1::DownloadChunk& c, std::string&) { c.set_offset(c.offset() + 1); });
    auto st = link->download(ref_4k(), dest);
    CHECK(st.code() == Code::kCorrupt);
  }
}

// Hidden (not run by ctest): `cloud_tests "[cloud-bench]"`, size from OTA_CLOUD_BENCH_MIB (256).
TEST_CASE_METHOD(CloudFixture, "Download rate of a large package", "[.][cloud-bench]") {
  const char* env = std::getenv("OTA_CLOUD_BENCH_MIB");
  const uint64_t size = static_cast<uint64_t>(env ? std::atoi(env) : 256) << 20;
  const ota::Digest digest = write_package("big.bin", size);
  start_sim({"--campaign", write_campaign("camp-bench", {"big.bin"})});
  auto link = connect(link_options());
  const auto offer = campaign(*link);
  std::filesystem::create_directories(cache);
  DownloadStats st;
  REQUIRE(link->download(offer.targets(0).full(), cache + "/big.bin", {}, &st).is_ok());
  auto got = ota::sha256_file(cache + "/big.bin");
  REQUIRE(got.is_ok());
  CHECK(got.value() == digest);
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  std::cout << "cloud download: " << (size >> 20) << " MiB in " << st.seconds
            << " s = " << size / 1e6 / st.seconds << " MB/s (chunk " << link->options().chunk_size
            << ", window " << link->options().window << "), peak RSS of the test process "
            << ru.ru_maxrss / 1024 << " MiB\n";
}
