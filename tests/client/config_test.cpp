// ClientConfig: the schema, its defaults, its errors (key and line), TOML round trips, the
// documentation of every key, and `ota-client --check-config`.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "config.hpp"
#include "ota/core/file.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"

using ota::client::ClientConfig;
using ota::client::parse_client_config;
using ota::client::to_toml;

namespace {

// The error of a configuration that must not parse.
std::string error_of(const std::string& toml) {
  auto c = parse_client_config(toml, "client.toml");
  REQUIRE_FALSE(c.is_ok());
  CHECK(c.status().code() == ota::Code::kInvalidArgument);
  return c.status().message();
}

ClientConfig parsed(const std::string& toml) {
  auto c = parse_client_config(toml, "client.toml");
  INFO(c.status().to_string());
  REQUIRE(c.is_ok());
  return *c;
}

// Every key set, strings with what TOML must escape.
ClientConfig populated() {
  ClientConfig c;
  c.vehicle.vin = "VIN \"quoted\" \\ back";
  c.vehicle.ecus = {"bcm", "tcu", "ecu-09"};
  c.broker.uri = "ssl://127.0.0.1:8883";
  c.broker.username = "ota-client-2";
  c.broker.password_file = "/run/secrets/pass\nword";
  c.broker.tls_ca = "/etc/ota/ca.crt";
  c.broker.tls_cert = "/etc/ota/client.crt";
  c.broker.tls_key = "/etc/ota/client.key";
  c.state.dir = "/var/lib/ota client/état";
  c.conditions.file = "/tmp/conditions.json";
  c.report.file = "/tmp/report.json";
  c.campaign.file = "/tmp/campaign.json";
  c.consent.answers = {"postpone:300", "decline", "accept"};
  c.timeouts.agent_ms = 1;
  c.timeouts.stall_ms = ota::client::kMaxTimeoutMs;
  c.timeouts.campaign_ms = ota::client::kMaxCampaignMs;
  c.transfer.min_rate = 1;
  c.transfer.rate_window_ms = 1000;
  c.trust.root = "/etc/ota/root.signed";
  c.trust.dir = "/var/lib/ota/trust";
  c.trust.allow_unsigned = true;
  c.trust.ecu_keys = "/etc/ota/ecus";
  c.cloud.uri = "ssl://cloud.example:8883";
  c.cloud.ca = "/etc/ota/cloud-ca.crt";
  c.cloud.cert = "/etc/ota/vehicle.crt";
  c.cloud.key = "/etc/ota/vehicle.key";
  c.cloud.vehicle = "vehicle-7";
  return c;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

TEST_CASE("every default of the client configuration", "[unit][client][config]") {
  const ClientConfig c = parsed("");
  CHECK(c == ClientConfig{});
  CHECK(c.vehicle.vin.empty());
  CHECK(c.vehicle.ecus.empty());
  CHECK(c.broker.uri == "tcp://127.0.0.1:1883");
  CHECK(c.broker.username == "ota-client");
  CHECK(c.broker.password_file.empty());
  CHECK(c.broker.tls_ca.empty());
  CHECK(c.broker.tls_cert.empty());
  CHECK(c.broker.tls_key.empty());
  CHECK(c.state.dir == "/var/lib/ota-client");
  CHECK(c.conditions.file.empty());
  CHECK(c.report.file.empty());
  CHECK(c.campaign.file.empty());
  CHECK(c.consent.answers.empty());
  CHECK(c.timeouts.agent_ms == 30000);
  CHECK(c.timeouts.stall_ms == 5000);
  CHECK(c.timeouts.campaign_ms == 0);
  CHECK(c.transfer.min_rate == 16384);
  CHECK(c.transfer.rate_window_ms == 30000);
  CHECK(c.trust.root.empty());
  CHECK(c.trust.dir.empty());
  CHECK(c.trust_dir() == "/var/lib/ota-client/trust");
  CHECK_FALSE(c.trust.allow_unsigned);
  CHECK(c.trust.ecu_keys.empty());
  CHECK(c.cloud.uri.empty());
  CHECK(c.cloud.ca.empty());
  CHECK(c.cloud.cert.empty());
  CHECK(c.cloud.key.empty());
  CHECK(c.cloud.vehicle == "ota-client");
  // Empty sections change nothing.
  CHECK(parsed("[broker]\n[trust]\n[cloud]\n") == ClientConfig{});
}

TEST_CASE("every key is read into its field", "[unit][client][config]") {
  const ClientConfig c = parsed(R"(
[vehicle]
vin = "SIMVIN0000000001"
ecus = ["bcm", "tcu"]
[broker]
uri = "tcp://10.0.0.1:1883"
username = "gw"
password_file = "/p"
tls_ca = "/ca"
tls_cert = "/cert"
tls_key = "/key"
[state]
dir = "/s"
[conditions]
file = "/c.json"
[report]
file = "/r.json"
[campaign]
file = "/camp.json"
[consent]
answers = ["postpone:300", "accept"]
[timeouts]
agent_ms = 1000
stall_ms = 2000
[trust]
root = "/root.signed"
dir = "/t"
allow_unsigned = true
ecu_keys = "/keys"
[cloud]
uri = "ssl://cloud:8883"
ca = "/cca"
cert = "/ccert"
key = "/ckey"
vehicle = "car-1"
)");
  CHECK(c.vehicle.vin == "SIMVIN0000000001");
  CHECK(c.vehicle.ecus == std::vector<std::string>{"bcm", "tcu"});
  CHECK(c.broker.uri == "tcp://10.0.0.1:1883");
  CHECK(c.broker.username == "gw");
  CHECK(c.broker.password_file == "/p");
  CHECK(c.broker.tls_ca == "/ca");
  CHECK(c.broker.tls_cert == "/cert");
  CHECK(c.broker.tls_key == "/key");
  CHECK(c.state.dir == "/s");
  CHECK(c.conditions.file == "/c.json");
  CHECK(c.report.file == "/r.json");
  CHECK(c.campaign.file == "/camp.json");
  CHECK(c.consent.answers == std::vector<std::string>{"postpone:300", "accept"});
  CHECK(c.timeouts.agent_ms == 1000);
  CHECK(c.timeouts.stall_ms == 2000);
  CHECK(c.trust.root == "/root.signed");
  CHECK(c.trust.dir == "/t");
  CHECK(c.trust_dir() == "/t");
  CHECK(c.trust.allow_unsigned);
  CHECK(c.trust.ecu_keys == "/keys");
  CHECK(c.cloud.uri == "ssl://cloud:8883");
  CHECK(c.cloud.ca == "/cca");
  CHECK(c.cloud.cert == "/ccert");
  CHECK(c.cloud.key == "/ckey");
  CHECK(c.cloud.vehicle == "car-1");
}

TEST_CASE("a misspelt key or section is an error naming it and its line", "[unit][client][config]") {
  SECTION("key") {
    const std::string e = error_of("[broker]\nuri = \"tcp://h:1\"\nusrname = \"x\"\n");
    CHECK(e.find("client.toml:3:") == 0);
    CHECK(e.find("unknown key broker.usrname") != std::string::npos);
    CHECK(e.find("did you mean username?") != std::string::npos);
  }
  SECTION("section") {
    const std::string e = error_of("[vehicle]\nvin = \"V\"\n\n[brokr]\nuri = \"tcp://h:1\"\n");
    CHECK(e.find("client.toml:4:") == 0);
    CHECK(e.find("unknown section [brokr]") != std::string::npos);
    CHECK(e.find("did you mean broker?") != std::string::npos);
  }
  SECTION("a key of another section") {
    const std::string e = error_of("[state]\nfile = \"/x\"\n");
    CHECK(e.find("client.toml:2: unknown key state.file") == 0);
  }
  SECTION("a key outside any section") {
    const std::string e = error_of("vin = \"V\"\n[vehicle]\n");
    CHECK(e.find("client.toml:1: unknown key 'vin' outside any section") == 0);
  }
  SECTION("a section that is not a table") {
    const std::string e = error_of("broker = \"tcp://h:1\"\n");
    CHECK(e.find("client.toml:1: broker: expected a table, got a string") == 0);
  }
}

TEST_CASE("a value of the wrong type is an error naming the key and its line", "[unit][client][config]") {
  CHECK(error_of("[timeouts]\nagent_ms = \"30000\"\n") ==
        "client.toml:2: timeouts.agent_ms: expected an integer, got a string");
  CHECK(error_of("[timeouts]\nstall_ms = 5000.0\n") ==
        "client.toml:2: timeouts.stall_ms: expected an integer, got a floating-point number");
  CHECK(error_of("[trust]\nallow_unsigned = 1\n") ==
        "client.toml:2: trust.allow_unsigned: expected a boolean, got an integer");
  CHECK(error_of("[broker]\nuri = 1883\n") == "client.toml:2: broker.uri: expected a string, got an integer");
  CHECK(error_of("[vehicle]\necus = \"bcm\"\n") ==
        "client.toml:2: vehicle.ecus: expected an array of strings, got a string");
  // An array item: its own line.
  CHECK(error_of("[vehicle]\necus = [\n  \"bcm\",\n  7,\n]\n") ==
        "client.toml:4: vehicle.ecus[1]: expected a string, got an integer");
}

TEST_CASE("a value out of range is an error naming the key and its line", "[unit][client][config]") {
  CHECK(error_of("[timeouts]\ncampaign_ms = -1\n") ==
        "client.toml:2: timeouts.campaign_ms: -1 is out of range (0 to 604800000)");
  CHECK(error_of("[transfer]\nmin_rate = 0\n") ==
        "client.toml:2: transfer.min_rate: 0 is out of range (1 to 1073741824)");
  CHECK(error_of("[transfer]\nrate_window_ms = 999\n") ==
        "client.toml:2: transfer.rate_window_ms: 999 is out of range (1000 to 86400000)");
  CHECK(error_of("[timeouts]\nagent_ms = 0\n") ==
        "client.toml:2: timeouts.agent_ms: 0 is out of range (1 to 86400000)");
  CHECK(error_of("[timeouts]\nstall_ms = 86400001\n") ==
        "client.toml:2: timeouts.stall_ms: 86400001 is out of range (1 to 86400000)");
  CHECK(error_of("[broker]\nuri = \"\"\n") == "client.toml:2: broker.uri: must not be empty");
  CHECK(error_of("[state]\ndir = \"\"\n") == "client.toml:2: state.dir: must not be empty");
  CHECK(error_of("[vehicle]\necus = [\"bcm\", \"../etc\"]\n")
            .find("client.toml:2: vehicle.ecus[1]: '../etc' is not an ECU id") == 0);
  CHECK(error_of("[consent]\nanswers = [\"accept\", \"postpone:soon\"]\n")
            .find("client.toml:2: consent.answers[1]: 'postpone:soon' is not accept, decline or "
                  "postpone:MILLISECONDS") == 0);
  std::string many = "[vehicle]\necus = [";
  for (size_t i = 0; i <= ota::client::kMaxConfigEcus; ++i) many += "\"e" + std::to_string(i) + "\",";
  many += "]\n";
  CHECK(error_of(many) == "client.toml:2: vehicle.ecus: 257 items, at most 256");
}

TEST_CASE("the first error in the file is reported, with its line", "[unit][client][config]") {
  const std::string toml =
      "# a vehicle\n"
      "[vehicle]\n"
      "vin = \"V\"\n"
      "\n"
      "[broker]\n"
      "uri = \"tcp://127.0.0.1:1883\"\n"
      "password_fil = \"/p\"\n"
      "[timeouts]\n"
      "agent_ms = -5\n";
  CHECK(error_of(toml).find("client.toml:7: unknown key broker.password_fil") == 0);
  // A TOML syntax error: toml++'s words, the file and the line.
  const std::string syntax = error_of("[vehicle]\nvin = \"V\"\necus = [\"bcm\"\n");
  CHECK(syntax.find("client.toml:") == 0);
  CHECK(syntax.find("client.toml:0:") == std::string::npos);
}

TEST_CASE("ClientConfig -> TOML -> ClientConfig is the identity", "[unit][client][config]") {
  const ClientConfig c = populated();
  const std::string minimal = to_toml(c);
  INFO(minimal);
  CHECK(parsed(minimal) == c);
  const std::string complete = to_toml(c, true);
  INFO(complete);
  CHECK(parsed(complete) == c);

  // Defaults are left out of the minimal form and written in the complete one.
  CHECK(to_toml(ClientConfig{}).empty());
  const std::string defaults = to_toml(ClientConfig{}, true);
  CHECK(parsed(defaults) == ClientConfig{});
  CHECK(defaults.find("[timeouts]\nagent_ms = 30000\nstall_ms = 5000\n") != std::string::npos);
  CHECK(defaults.find("uri = \"tcp://127.0.0.1:1883\"") != std::string::npos);
  CHECK(defaults.find("# password_file is not set") != std::string::npos);

  // Each single change survives the trip, and is not mistaken for another.
  ClientConfig one;
  one.timeouts.stall_ms = 7;
  CHECK(parsed(to_toml(one)) == one);
  CHECK(parsed(to_toml(one)) != ClientConfig{});
  ClientConfig other;
  other.trust.allow_unsigned = true;
  CHECK(parsed(to_toml(other)) == other);
  CHECK(to_toml(other) == "[trust]\nallow_unsigned = true\n");
}

TEST_CASE("the schema lists every key with its type and default", "[unit][client][config]") {
  std::map<std::string, ota::client::ConfigKey> keys;
  for (const auto& k : ota::client::client_config_schema()) keys.emplace(k.section + "." + k.key, k);
  CHECK(keys.size() == 27);
  REQUIRE(keys.count("timeouts.agent_ms"));
  CHECK(keys["timeouts.agent_ms"].type == "integer");
  CHECK(keys["timeouts.agent_ms"].default_value == "30000");
  CHECK(keys["broker.uri"].default_value == "\"tcp://127.0.0.1:1883\"");
  CHECK(keys["trust.allow_unsigned"].type == "boolean");
  CHECK(keys["trust.allow_unsigned"].default_value == "false");
  CHECK(keys["vehicle.ecus"].type == "array of strings");
  CHECK(keys["trust.ecu_keys"].type == "string");
  CHECK(keys["trust.ecu_keys"].default_value.empty());
  CHECK(keys["transfer.min_rate"].type == "integer");
  CHECK(keys["transfer.min_rate"].default_value == "16384");
  CHECK(keys["timeouts.campaign_ms"].default_value == "0");
}

TEST_CASE("docs/CLIENT.md documents every configuration key, and only those", "[unit][client][config]") {
  const std::string doc = read_text(std::string(OTA_SOURCE_DIR) + "/docs/CLIENT.md");
  REQUIRE_FALSE(doc.empty());
  const auto begin = doc.find("## 2. Configuration file");
  const auto end = doc.find("\n## 3.", begin);
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  // Rows "| `[section] key` | type | default | meaning |".
  std::map<std::string, std::vector<std::string>> rows;
  std::istringstream in(doc.substr(begin, end - begin));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `[", 0) != 0) continue;
    std::vector<std::string> cells;
    std::istringstream cs(line.substr(1));
    for (std::string cell; std::getline(cs, cell, '|');) {
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      cells.push_back(cell);
    }
    REQUIRE(cells.size() >= 4);
    const std::string key = cells[0].substr(cells[0].find("`[") + 2);
    const std::string section = key.substr(0, key.find(']'));
    const std::string name = key.substr(key.find("] ") + 2, key.rfind('`') - key.find("] ") - 2);
    rows[section + "." + name] = cells;
  }
  for (const auto& k : ota::client::client_config_schema()) {
    const std::string id = k.section + "." + k.key;
    INFO(id);
    REQUIRE(rows.count(id) == 1);
    CHECK(rows[id][1] == k.type);
    std::string unquoted = k.default_value;
    if (!unquoted.empty() && unquoted.front() == '"') unquoted = unquoted.substr(1, unquoted.size() - 2);
    if (!unquoted.empty()) CHECK(rows[id][2].find(unquoted) != std::string::npos);
    rows.erase(id);
  }
  for (const auto& [id, cells] : rows) FAIL_CHECK("documented, but not in the schema: " << id);
}

TEST_CASE("consent answers are accept, decline or postpone:MILLISECONDS", "[unit][client][config]") {
  using ota::client::ConsentStep;
  using ota::client::parse_consent_step;
  CHECK(parse_consent_step("accept")->kind == ConsentStep::kAccept);
  CHECK(parse_consent_step("decline")->kind == ConsentStep::kDecline);
  auto p = parse_consent_step("postpone:300");
  REQUIRE(p.is_ok());
  CHECK(p->kind == ConsentStep::kPostpone);
  CHECK(p->postpone_for == std::chrono::milliseconds(300));
  CHECK(parse_consent_step("postpone:0")->postpone_for == std::chrono::milliseconds(0));
  for (const char* bad : {"", "Accept", "postpone", "postpone:", "postpone:-1", "postpone:1e3",
                          "postpone:86400001", "postpone:99999999999", "later"}) {
    INFO(bad);
    CHECK_FALSE(parse_consent_step(bad).is_ok());
  }
}

TEST_CASE("a configuration file is read with a bound and named in errors", "[unit][client][config]") {
  auto dir = ota::sim::TempDir::create("client-config-");
  REQUIRE(dir.is_ok());
  auto missing = ota::client::load_client_config(dir->file("none.toml"));
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().message().find(dir->file("none.toml")) != std::string::npos);
  REQUIRE(ota::atomic_write_file(dir->file("huge.toml"), std::string(ota::client::kMaxConfigBytes + 1, '#'))
              .is_ok());
  CHECK_FALSE(ota::client::load_client_config(dir->file("huge.toml")).is_ok());
  REQUIRE(ota::atomic_write_file(dir->file("ok.toml"), to_toml(populated())).is_ok());
  auto ok = ota::client::load_client_config(dir->file("ok.toml"));
  REQUIRE(ok.is_ok());
  CHECK(*ok == populated());
}

TEST_CASE("ota-client --check-config prints the effective configuration or the error",
          "[unit][client][config]") {
  auto dir = ota::sim::TempDir::create("client-check-");
  REQUIRE(dir.is_ok());
  auto check = [&](std::vector<std::string> args, const std::string& out) {
    args.insert(args.begin(), {OTA_CLIENT_BIN, "--check-config"});
    auto child =
        ota::sim::ChildProcess::spawn(args, ota::sim::SpawnOptions{dir->file(out), {}, "client", ""});
    REQUIRE(child.is_ok());
    auto exit = child->wait_for(std::chrono::seconds(30));
    REQUIRE(exit.has_value());
    CHECK(exit->exited());
    return exit->exit_code;
  };

  ClientConfig c;
  c.broker.uri = "tcp://10.1.2.3:1883";
  c.vehicle.ecus = {"bcm"};
  REQUIRE(ota::atomic_write_file(dir->file("good.toml"), to_toml(c)).is_ok());
  CHECK(check({"--config", dir->file("good.toml"), "--report", "/tmp/r.json"}, "good.out") == 0);
  const std::string good = read_text(dir->file("good.out"));
  INFO(good);
  // The printed configuration is the effective one: defaults and the command line's overrides.
  auto printed = parse_client_config(good, "stdout");
  REQUIRE(printed.is_ok());
  ClientConfig effective = c;
  effective.report.file = "/tmp/r.json";
  CHECK(*printed == effective);
  CHECK(good.find("agent_ms = 30000") != std::string::npos);

  CHECK(check({}, "defaults.out") == 0);
  CHECK(parse_client_config(read_text(dir->file("defaults.out")), "stdout").value() == ClientConfig{});

  REQUIRE(
      ota::atomic_write_file(dir->file("bad.toml"), "[vehicle]\nvin = \"V\"\n[timeouts]\nagent_ms = true\n")
          .is_ok());
  CHECK(check({"--config", dir->file("bad.toml")}, "bad.out") == 2);
  const std::string bad = read_text(dir->file("bad.out"));
  CHECK(bad.find(dir->file("bad.toml") + ":4: timeouts.agent_ms: expected an integer, got a boolean") !=
        std::string::npos);

  CHECK(check({"--config", dir->file("missing.toml")}, "missing.out") == 2);
  CHECK(read_text(dir->file("missing.out")).find("missing.toml") != std::string::npos);
}
