// CloudBroker: see ota/sim/cloud_broker.hpp.
#include "ota/sim/cloud_broker.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ota/sim/broker.hpp"
#include "ota/sim/wait.hpp"

#ifndef OTA_BROKER_CONFIG_DIR
#define OTA_BROKER_CONFIG_DIR ""
#endif

namespace ota::sim {
namespace {

using std::chrono::milliseconds;
constexpr int kStartAttempts = 5;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<std::unique_ptr<CloudBroker>> CloudBroker::start(CloudBrokerOptions options) {
  if (options.config_dir.empty()) {
    const char* env = std::getenv("OTA_BROKER_CONFIG_DIR");
    options.config_dir = (env != nullptr && *env != '\0') ? env : OTA_BROKER_CONFIG_DIR;
  }
  if (!std::filesystem::exists(options.config_dir + "/render-cloud")) {
    return make_error(Code::kNotFound, "broker-config directory '" + options.config_dir +
                                           "' has no render-cloud script (set CloudBrokerOptions::config_dir "
                                           "or OTA_BROKER_CONFIG_DIR)");
  }
  if (options.vehicles.empty()) return make_error(Code::kInvalidArgument, "cloud broker: no vehicle ids");
  std::unique_ptr<CloudBroker> b(new CloudBroker());
  b->mosquitto_ = find_executable("mosquitto", {"/usr/sbin", "/usr/local/sbin", "/sbin"});
  if (b->mosquitto_.empty())
    return make_error(Code::kNotFound, "mosquitto binary not found in PATH or /usr/sbin");
  if (options.dir.empty()) {
    auto temp = TempDir::create("ota-cloud-broker-");
    if (!temp) return temp.status();
    b->dir_ = temp->path();
    b->temp_.emplace(std::move(temp.value()));
  } else {
    std::error_code ec;
    std::filesystem::create_directories(options.dir, ec);
    if (ec) return make_error(Code::kIoError, "create " + options.dir + ": " + ec.message());
    b->dir_ = std::filesystem::absolute(options.dir).lexically_normal().string();
  }
  b->options_ = options;
  if (options.pki_dir.empty()) {
    b->pki_dir_ = b->dir_ + "/pki";
    std::vector<std::string> extra;
    for (const auto& v : options.vehicles) {
      if (v != "ota-client") extra.push_back(v);
    }
    std::vector<std::string> args{b->pki_dir_, "-q"};
    if (!extra.empty()) args.insert(args.end(), {"--cn-extra", join(extra, ',')});
    OTA_RETURN_IF_ERROR(run_script(options.config_dir + "/make-pki", args, b->dir_ + "/make-pki.log"));
  } else {
    b->pki_dir_ = options.pki_dir;
  }
  Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    auto port = pick_free_port();
    if (!port) return port.status();
    b->port_ = port.value();
    OTA_RETURN_IF_ERROR(run_script(options.config_dir + "/render-cloud",
                                   {"--dir", b->dir_, "--port", std::to_string(b->port_), "--pki",
                                    b->pki_dir_, "--vehicles", join(options.vehicles, ','), "-q"},
                                   b->dir_ + "/render-cloud.log"));
    last = b->launch();
    if (last.is_ok()) return b;
    if (last.message().find("Address already in use") == std::string::npos) return last;
  }
  return last.with_context("cloud broker could not bind a free port");
}

Status CloudBroker::launch() {
  std::ofstream(log_path(), std::ios::trunc).close();
  auto child = ChildProcess::spawn({mosquitto_, "-c", dir_ + "/mosquitto.conf"},
                                   SpawnOptions{dir_ + "/mosquitto.out", {}, "cloud-broker", dir_});
  if (!child) return child.status();
  process_.emplace(std::move(child.value()));
  // mosquitto logs "... running" once its listener is bound.
  bool exited = false;
  bool up = wait_until(
      [&] {
        if (!process_->running()) {
          exited = true;
          return true;
        }
        return read_all(log_path()).find(" running") != std::string::npos;
      },
      options_.ready_timeout);
  if (up && !exited) return Status::ok();
  std::string why = exited ? "exited during start-up" : "did not log that it runs in time";
  process_.reset();
  return make_error(Code::kUnavailable, "cloud broker mosquitto " + why + "; " + log_path() + ":\n" +
                                            tail_file(log_path(), 15) +
                                            tail_file(dir_ + "/mosquitto.out", 5));
}

void CloudBroker::stop(milliseconds grace) {
  if (process_) {
    process_->terminate(grace);
    process_.reset();
  }
}

void CloudBroker::kill() {
  if (process_) {
    process_->kill();
    process_.reset();
  }
}

Status CloudBroker::restart() {
  stop();
  return launch().with_context("cloud broker restart on port " + std::to_string(port_));
}

CloudBroker::~CloudBroker() { stop(); }

}  // namespace ota::sim
