// broker-config/render and make-pki as command-line tools: argument checks, idempotence,
// certificate contents. (Starting the rendered broker is covered by broker_test.cpp.)
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"

using namespace std::chrono_literals;

namespace {

const std::string kConfigDir = OTA_BROKER_CONFIG_DIR_FOR_TESTS;

struct Run {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};

Run run(std::vector<std::string> argv, const ota::sim::TempDir& dir) {
  static int n = 0;
  const std::string log = dir.file("run-" + std::to_string(n++) + ".log");
  auto child = ota::sim::ChildProcess::spawn(std::move(argv), ota::sim::SpawnOptions{log, {}, "", ""});
  REQUIRE(child.is_ok());
  auto info = child->wait_for(60s);
  REQUIRE(info);
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return Run{info->exit_code, ss.str()};
}

Run render(std::vector<std::string> args, const ota::sim::TempDir& dir) {
  args.insert(args.begin(), {"bash", kConfigDir + "/render"});
  return run(std::move(args), dir);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ota::sim::TempDir temp() {
  auto d = ota::sim::TempDir::create("ota-config-test-");
  REQUIRE(d.is_ok());
  return std::move(d.value());
}

}  // namespace

TEST_CASE("render refuses bad arguments with a clear message", "[unit][broker-config]") {
  auto dir = temp();
  const std::string inst = dir.file("inst");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--dir", inst}, "--port is required"},
      {{"--port", "1883"}, "--dir is required"},
      {{"--dir", inst, "--port", "70000"}, "not a port number"},
      {{"--dir", inst, "--port", "1883", "--agents", "ecu-a,ecu/b"}, "'ecu/b' is invalid"},
      {{"--dir", inst, "--port", "1883", "--agents", "ecu-a,ecu-#"}, "'ecu-#' is invalid"},
      {{"--dir", inst, "--port", "1883", "--agents", "ota-client"}, "reserved"},
      {{"--dir", inst, "--port", "1883", "--agents", "ecu-a,ecu-a"}, "given twice"},
      {{"--dir", inst, "--port", "1883", "--tls-port", "1884"}, "needs --pki"},
      {{"--dir", inst, "--port", "1883", "--tls-port", "1884", "--pki", dir.file("nope")}, "not a directory"},
      {{"--dir", inst, "--port", "1883", "--tls-port", "1884", "--pki", dir.path()}, "ca.crt is missing"},
      {{"--dir", inst, "--port", "1883", "--bogus"}, "unknown argument"},
  };
  for (const auto& c : cases) {
    auto r = render(c.args, dir);
    INFO(r.output);
    CHECK(r.exit_code != 0);
    CHECK(r.output.find("render: error: ") != std::string::npos);
    CHECK(r.output.find(c.message) != std::string::npos);
  }
}

TEST_CASE("render writes a complete instance and keeps passwords when run again", "[unit][broker-config]") {
  auto dir = temp();
  const std::string inst = dir.file("inst");
  auto first = render({"--dir", inst, "--port", "1883", "--agents", "ecu-a,ecu-b", "-q"}, dir);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK(first.output.empty());  // -q: quiet on success

  const std::string conf = slurp(inst + "/mosquitto.conf");
  CHECK(conf.find("@") == std::string::npos);  // every placeholder substituted
  CHECK(conf.find("\nlistener 1883 127.0.0.1\n") != std::string::npos);
  CHECK(conf.find("\nallow_anonymous false\n") != std::string::npos);
  CHECK(conf.find("\npersistence true\n") != std::string::npos);
  CHECK(conf.find("password_file " + inst + "/passwd") != std::string::npos);
  const std::string acl = slurp(inst + "/acl");
  // An agent writes the five leaves of its own up/ and nothing else (no up/#).
  CHECK(acl.find("user ecu-b\ntopic write ota/v1/ecu/ecu-b/up/hello\ntopic write ota/v1/ecu/ecu-b/up/state\n"
                 "topic write ota/v1/ecu/ecu-b/up/ack\ntopic write ota/v1/ecu/ecu-b/up/result\n"
                 "topic write ota/v1/ecu/ecu-b/up/dtc\ntopic read ota/v1/ecu/ecu-b/down/#\n") !=
        std::string::npos);
  CHECK(acl.find("/up/#") == std::string::npos);
  CHECK(acl.find("\npattern ") == std::string::npos);  // no rules that apply to every user
  const std::string pw_a = slurp(inst + "/credentials/ecu-a.pass");
  CHECK(pw_a.size() == 33);  // 32 hex digits and a newline
  CHECK(slurp(inst + "/passwd").find("ecu-a:$7$") != std::string::npos);

  auto second = render({"--dir", inst, "--port", "1883", "--agents", "ecu-a,ecu-b,ecu-c", "-q"}, dir);
  REQUIRE(second.exit_code == 0);
  CHECK(slurp(inst + "/credentials/ecu-a.pass") == pw_a);
  CHECK(slurp(inst + "/credentials/ecu-c.pass").size() == 33);
  CHECK(slurp(inst + "/acl").find("user ecu-c\n") != std::string::npos);
  struct stat st {};
  REQUIRE(::stat((inst + "/credentials/ecu-c.pass").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("make-pki issues ECDSA P-256 certificates with the expected names", "[unit][broker-config]") {
  auto dir = temp();
  const std::string pki = dir.file("pki");
  auto made = run({"bash", kConfigDir + "/make-pki", pki, "--agents", "ecu-a", "--extra-ip", "10.200.1.1",
                   "--cn-extra", "intruder"},
                  dir);
  INFO(made.output);
  REQUIRE(made.exit_code == 0);

  auto broker = run({"openssl", "x509", "-in", pki + "/broker.crt", "-noout", "-text"}, dir);
  REQUIRE(broker.exit_code == 0);
  CHECK(broker.output.find("CN = ota-broker") != std::string::npos);
  CHECK(broker.output.find("NIST CURVE: P-256") != std::string::npos);
  CHECK(broker.output.find("IP Address:127.0.0.1") != std::string::npos);
  CHECK(broker.output.find("DNS:localhost") != std::string::npos);
  CHECK(broker.output.find("IP Address:10.200.1.1") != std::string::npos);
  CHECK(broker.output.find("TLS Web Server Authentication") != std::string::npos);

  for (const std::string cn : {"ota-client", "ota-observer", "ota-cloud", "ecu-a", "intruder"}) {
    INFO(cn);
    auto cert = run({"openssl", "x509", "-in", pki + "/clients/" + cn + ".crt", "-noout", "-text"}, dir);
    REQUIRE(cert.exit_code == 0);
    CHECK(cert.output.find("CN = " + cn + "\n") != std::string::npos);
    CHECK(cert.output.find("TLS Web Client Authentication") != std::string::npos);
    auto verify =
        run({"openssl", "verify", "-CAfile", pki + "/ca.crt", pki + "/clients/" + cn + ".crt"}, dir);
    CHECK(verify.exit_code == 0);
    struct stat st {};
    REQUIRE(::stat((pki + "/clients/" + cn + ".key").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }

  // Running again keeps the CA, so certificates issued before stay valid.
  const std::string ca = slurp(pki + "/ca.crt");
  auto again = run({"bash", kConfigDir + "/make-pki", pki, "-q", "--agents", "ecu-a,ecu-b"}, dir);
  REQUIRE(again.exit_code == 0);
  CHECK(again.output.empty());
  CHECK(slurp(pki + "/ca.crt") == ca);
  CHECK(run({"openssl", "verify", "-CAfile", pki + "/ca.crt", pki + "/clients/ecu-b.crt"}, dir).exit_code ==
        0);
}
