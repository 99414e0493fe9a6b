// DynsecBroker: a second Mosquitto for tests, whose users and topic ACL live in its dynamic
// security plugin, so that it refuses a SUBSCRIBE with SUBACK 0x80 (Mosquitto 2.0 with the
// project's file ACL grants every SUBSCRIBE and filters messages at delivery instead).
//
//   ota::test::DynsecBroker refusing;  // REQUIREs that it started
//   auto agent = refusing.connect_peer(ota::MqttClient::kNative, "ecu-a");
//   CHECK(agent->subscribe("ota/v1/ecu/ecu-b/down/#", 1).code() == ota::Code::kRejected);
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ota/core/transport.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/sim/wait.hpp"
#include "ota/test/transport_peer.hpp"

namespace ota::test {

// A Mosquitto whose users and topic ACL live in the dynamic security plugin: ecu-a may subscribe
// to its down/ subtree and publish in its up/ subtree, ota-client may publish commands and read
// every up/ subtree; any other SUBSCRIBE is refused (SUBACK 0x80). Stopped on destruction.
class DynsecBroker {
 public:
  // How long the broker may take to start and accept ecu-a.
  static constexpr std::chrono::seconds kStartDeadline{10};

  DynsecBroker() {
    using namespace std::chrono_literals;
    auto temp = sim::TempDir::create("ota-dynsec-broker-");
    REQUIRE(temp.is_ok());
    dir_.emplace(std::move(temp.value()));
    const std::string mosquitto =
        sim::find_executable("mosquitto", {"/usr/sbin", "/usr/local/sbin", "/sbin"});
    const std::string ctrl = sim::find_executable("mosquitto_ctrl");
    const std::string plugin = find_plugin();
    INFO("mosquitto: '" << mosquitto << "', mosquitto_ctrl: '" << ctrl << "', plugin: '" << plugin << "'");
    REQUIRE(!mosquitto.empty());
    REQUIRE(!ctrl.empty());
    REQUIRE(!plugin.empty());

    // `mosquitto_ctrl dynsec init FILE USER PASSWORD` writes a configuration whose only client is
    // USER with the salted hash of PASSWORD; the hashes are taken from there.
    std::string clients;
    for (const std::string user : {"ecu-a", "ota-client"}) {
      passwords_[user == "ecu-a" ? 0 : 1] = "dynsec-" + user + "-" + std::to_string(::getpid());
      const std::string init = dir_->file("init-" + user + ".json");
      auto run = sim::run_command({ctrl, "dynsec", "init", init, user, password(user)}, 10s);
      REQUIRE(run.is_ok());
      INFO(run->output);
      REQUIRE(run->exit.success());
      const std::string json = read_text_file(init);
      std::smatch hash, salt, iterations;
      REQUIRE(std::regex_search(json, hash, std::regex(R"re("password":\s*"([^"]+)")re")));
      REQUIRE(std::regex_search(json, salt, std::regex(R"re("salt":\s*"([^"]+)")re")));
      REQUIRE(std::regex_search(json, iterations, std::regex(R"re("iterations":\s*(\d+))re")));
      clients += std::string(clients.empty() ? "" : ",") + R"({"username":")" + user + R"(","password":")" +
                 hash[1].str() + R"(","salt":")" + salt[1].str() + R"(","iterations":)" +
                 iterations[1].str() + R"(,"roles":[{"rolename":")" + user + R"("}]})";
    }
    std::ofstream(dir_->file("dynsec.json"))
        << R"({"clients":[)" << clients << R"(],"roles":[)"
        << R"({"rolename":"ecu-a","acls":[)"
        << R"({"acltype":"subscribePattern","topic":"ota/v1/ecu/ecu-a/down/#","allow":true},)"
        << R"({"acltype":"publishClientSend","topic":"ota/v1/ecu/ecu-a/up/#","allow":true}]},)"
        << R"({"rolename":"ota-client","acls":[)"
        << R"({"acltype":"subscribePattern","topic":"ota/v1/ecu/+/up/#","allow":true},)"
        << R"({"acltype":"publishClientSend","topic":"ota/v1/ecu/+/down/#","allow":true}]}],)"
        << R"("defaultACLAccess":{"publishClientSend":false,"publishClientReceive":true,)"
        << R"("subscribe":false,"unsubscribe":true}})";

    const passwd* pw = ::getpwuid(::geteuid());
    REQUIRE(pw != nullptr);
    // Started as root, mosquitto drops to this user: by default "mosquitto", who cannot read dir_.
    const std::string run_user = pw->pw_name;
    // Another process may take the picked port before mosquitto binds it: then a new one.
    for (int attempt = 0; attempt < 3 && !process_; ++attempt) {
      auto port = sim::pick_free_port();
      REQUIRE(port.is_ok());
      port_ = port.value();
      std::ofstream(dir_->file("mosquitto.conf"), std::ios::trunc)
          << "user " << run_user << "\n"
          << "per_listener_settings false\nallow_anonymous false\npersistence false\n"
          << "plugin " << plugin << "\nplugin_opt_config_file " << dir_->file("dynsec.json") << "\n"
          << "listener " << port_ << " 127.0.0.1\n";
      const std::string log = dir_->file("mosquitto-" + std::to_string(attempt) + ".log");
      auto child =
          sim::ChildProcess::spawn({mosquitto, "-c", dir_->file("mosquitto.conf")},
                                   sim::SpawnOptions{log, {}, "mosquitto (dynamic security)", dir_->path()});
      INFO(child.status().to_string());
      REQUIRE(child.is_ok());
      const bool ready = sim::wait_until(
          [&] {
            auto rc = sim::mqtt_connect_probe("127.0.0.1", port_, "ecu-a", password("ecu-a"), 500ms);
            return (rc.is_ok() && rc.value() == 0) || !child->running();
          },
          kStartDeadline, 10ms);
      const std::string output = sim::tail_file(log);
      if (ready && child->running()) {
        process_.emplace(std::move(child.value()));
      } else if (output.find("Address already in use") == std::string::npos) {
        INFO("mosquitto log:\n" << output);
        FAIL("the dynamic-security mosquitto did not accept ecu-a on port " << port_);
      }
    }
    REQUIRE(process_);
    waker_ = std::make_unique<PahoWaker>(options_for("ota-client"));
  }
  DynsecBroker(const DynsecBroker&) = delete;
  DynsecBroker& operator=(const DynsecBroker&) = delete;
  ~DynsecBroker() {
    using namespace std::chrono_literals;
    waker_.reset();  // before the broker ends
    if (process_) process_->terminate(2000ms);
  }

  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  std::string password(const std::string& user) const { return passwords_[user == "ecu-a" ? 0 : 1]; }
  TransportOptions options_for(const std::string& user) const {
    TransportOptions o;
    o.uri = uri();
    o.client_id = unique_client_id(user);
    o.username = user;
    o.password = password(user);
    return o;
  }
  std::unique_ptr<Peer> connect_peer(MqttClient engine, const std::string& user) {
    return ota::test::connect_peer(*waker_, engine, options_for(user));
  }

 private:
  static std::string find_plugin() {
    std::vector<std::string> candidates{"/usr/lib/mosquitto_dynamic_security.so",
                                        "/usr/local/lib/mosquitto_dynamic_security.so"};
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib", ec)) {
      if (entry.is_directory(ec))
        candidates.push_back(entry.path().string() + "/mosquitto_dynamic_security.so");
    }
    for (const auto& c : candidates) {
      if (std::filesystem::exists(c, ec)) return c;
    }
    return {};
  }

  std::optional<sim::TempDir> dir_;
  std::string passwords_[2];
  int port_ = 0;
  std::optional<sim::ChildProcess> process_;
  std::unique_ptr<PahoWaker> waker_;
};

}  // namespace ota::test
