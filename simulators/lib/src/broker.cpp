#include "ota/sim/broker.hpp"
#include "mqtt_wire.hpp"
#include "ota/core/topics.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef OTA_BROKER_CONFIG_DIR
#define OTA_BROKER_CONFIG_DIR ""
#endif

namespace ota::sim {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kStartAttempts = 5;
constexpr const char* kAddressInUse = "address in use";

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

std::uintmax_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

std::string read_from(const std::string& path, std::uintmax_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(static_cast<std::streamoff>(offset));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string last_lines(const std::string& text, std::size_t n) {
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (std::size_t i = 0; i < n && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return pos == 0 ? text : text.substr(pos + 1);
}

// Binds `count` distinct free ports on 127.0.0.1 (all held open until all are known).
Result<std::vector<int>> pick_free_ports(int count) {
  std::vector<int> fds;
  std::vector<int> ports;
  Status error;
  for (int i = 0; i < count && error.is_ok(); ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = make_error(Code::kUnavailable, std::string("socket: ") + std::strerror(errno));
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      error = make_error(Code::kUnavailable, std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  if (!error.is_ok()) return error;
  return ports;
}

// Waits until fd is readable/writable or the deadline passes.
bool poll_fd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    struct pollfd pfd {
      fd, events, 0
    };
    int r = ::poll(&pfd, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

// A TCP connection to host:port (IPv4), made within the deadline. Non-blocking descriptor.
Result<int> connect_tcp(const std::string& host, int port, const std::string& where,
                        Clock::time_point deadline) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return make_error(Code::kInvalidArgument, "mqtt probe: '" + host + "' is not an IPv4 address");
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return make_error(Code::kUnavailable, where + ": socket: " + std::strerror(errno));
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      if (!poll_fd(fd, POLLOUT, deadline)) {
        ::close(fd);
        return make_error(Code::kTimeout, where + ": connect timed out");
      }
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  if (err != 0) {
    ::close(fd);
    return make_error(Code::kUnavailable, where + ": connect: " + std::strerror(err));
  }
  return fd;
}

Status send_all(int fd, std::string_view data, const std::string& where, Clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    if (!poll_fd(fd, POLLOUT, deadline)) return make_error(Code::kTimeout, where + ": send timed out");
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return make_error(Code::kUnavailable, where + ": send: " + std::strerror(errno));
    }
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  return Status::ok();
}

Status recv_all(int fd, uint8_t* out, std::size_t size, const std::string& where,
                Clock::time_point deadline) {
  std::size_t got = 0;
  while (got < size) {
    if (!poll_fd(fd, POLLIN, deadline)) return make_error(Code::kTimeout, where + ": no CONNACK in time");
    ssize_t n = ::recv(fd, out + got, size - got, 0);
    if (n == 0) return make_error(Code::kUnavailable, where + ": connection closed before CONNACK");
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return make_error(Code::kUnavailable, where + ": recv: " + std::strerror(errno));
    }
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  return Status::ok();
}

}  // namespace

Result<int> pick_free_port() {
  auto ports = pick_free_ports(1);
  if (!ports) return ports.status();
  return ports.value()[0];
}

Result<int> mqtt_connect_probe(const std::string& host, int port, const std::string& user,
                               const std::string& password, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = "mqtt probe " + host + ":" + std::to_string(port);
  auto fd = connect_tcp(host, port, where, deadline);
  if (!fd) return fd.status();
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{*fd};

  static std::atomic<unsigned> counter{0};
  mqtt::ConnectFields fields;
  fields.client_id = "ota-probe-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  fields.username = user;
  fields.password = password;
  fields.keepalive_s = 10;
  auto packet = mqtt::connect_packet(fields);
  if (!packet) return packet.status().with_context(where);
  OTA_RETURN_IF_ERROR(send_all(*fd, *packet, where, deadline));
  uint8_t connack[4];
  OTA_RETURN_IF_ERROR(recv_all(*fd, connack, sizeof connack, where, deadline));
  auto h = mqtt::parse_fixed_header(connack, 2);
  if (!h.is_ok() || !h->has_value() || (*h)->remaining != 2) {
    return make_error(Code::kCorrupt, where + ": answer is not a CONNACK");
  }
  auto rc = mqtt::parse_connack(**h, connack + 2, 2);
  if (!rc.is_ok()) return rc.status().with_context(where);
  if (*rc == 0) {
    const char disconnect[2] = {static_cast<char>(0xe0), 0};
    (void)::send(*fd, disconnect, sizeof disconnect, MSG_NOSIGNAL);
  }
  return static_cast<int>(*rc);
}

Result<std::unique_ptr<Broker>> Broker::start(BrokerOptions options) {
  std::unique_ptr<Broker> b(new Broker());
  if (options.config_dir.empty()) {
    const char* env = std::getenv("OTA_BROKER_CONFIG_DIR");
    options.config_dir = (env != nullptr && *env != '\0') ? env : OTA_BROKER_CONFIG_DIR;
  }
  if (options.config_dir.empty() || !std::filesystem::exists(options.config_dir + "/render")) {
    return make_error(Code::kNotFound, "broker-config directory '" + options.config_dir +
                                           "' has no render script (set BrokerOptions::config_dir or "
                                           "OTA_BROKER_CONFIG_DIR)");
  }
  for (const auto& a : options.agents) {
    if (!topics::valid_ecu_id(a))
      return make_error(Code::kInvalidArgument, "'" + a + "' is not an ECU id (" + topics::kEcuIdRule + ")");
  }
  b->mosquitto_ = options.mosquitto_path.empty()
                      ? find_executable("mosquitto", {"/usr/sbin", "/usr/local/sbin", "/sbin"})
                      : find_executable(options.mosquitto_path);
  if (b->mosquitto_.empty()) {
    return make_error(Code::kNotFound,
                      "mosquitto binary not found in PATH or /usr/sbin (apt-get install mosquitto)");
  }

  if (options.dir.empty()) {
    auto temp = TempDir::create("ota-broker-");
    if (!temp) return temp.status();
    b->dir_ = temp->path();
    b->temp_.emplace(std::move(temp.value()));
  } else {
    std::error_code ec;
    std::filesystem::create_directories(options.dir, ec);
    if (ec) return make_error(Code::kIoError, "create " + options.dir + ": " + ec.message());
    b->dir_ = std::filesystem::absolute(options.dir).lexically_normal().string();
    while (b->dir_.size() > 1 && b->dir_.back() == '/') b->dir_.pop_back();
  }
  b->agents_ = options.agents;
  b->options_ = std::move(options);

  if (b->options_.tls) {
    std::vector<std::string> args{b->pki_dir(), "-q"};
    if (!b->agents_.empty()) args.insert(args.end(), {"--agents", join(b->agents_, ',')});
    if (!b->options_.tls_extra_ips.empty())
      args.insert(args.end(), {"--extra-ip", join(b->options_.tls_extra_ips, ',')});
    OTA_RETURN_IF_ERROR(run_script(b->options_.config_dir + "/make-pki", args, b->dir_ + "/make-pki.log"));
  }

  Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    auto ports = pick_free_ports(b->options_.tls ? 2 : 1);
    if (!ports) return ports.status();
    b->port_ = b->options_.port != 0 ? b->options_.port : ports.value()[0];
    b->tls_port_ = !b->options_.tls ? 0 : b->options_.tls_port != 0 ? b->options_.tls_port : ports.value()[1];
    const bool fixed = b->options_.port != 0 || b->options_.tls_port != 0;
    OTA_RETURN_IF_ERROR(b->render());
    std::ofstream(b->log_path(), std::ios::trunc).close();
    last = b->launch_and_wait();
    if (last.is_ok()) return Result<std::unique_ptr<Broker>>(std::move(b));
    if (fixed || last.message().find(kAddressInUse) == std::string::npos) return last;
    // Another process took the port between pick and bind: pick new ports and try again.
  }
  return last.with_context("mosquitto could not bind a free port after " + std::to_string(kStartAttempts) +
                           " attempts");
}

Broker::~Broker() { stop(); }

std::string Broker::uri() const { return "tcp://" + host_ + ":" + std::to_string(port_); }

std::string Broker::tls_uri() const {
  return tls_port_ == 0 ? std::string() : "ssl://" + host_ + ":" + std::to_string(tls_port_);
}

std::string Broker::credentials_file(const std::string& user) const {
  return dir_ + "/credentials/" + user + ".pass";
}

std::string Broker::password(const std::string& user) const {
  if (!topics::valid_ecu_id(user) && user != topics::kClientUser && user != topics::kObserverUser) return {};
  return read_first_line(credentials_file(user));
}

std::string Broker::pki_dir() const { return options_.tls ? dir_ + "/pki" : std::string(); }

bool Broker::running() { return process_ && process_->running(); }

Status Broker::render() {
  std::vector<std::string> args{"--dir", dir_, "--port", std::to_string(port_), "--bind", host_, "-q"};
  if (!agents_.empty()) args.insert(args.end(), {"--agents", join(agents_, ',')});
  if (!options_.strict_client_ids) args.push_back("--no-strict-clientid");
  if (options_.tls) {
    args.insert(args.end(), {"--tls-port", std::to_string(tls_port_), "--pki", pki_dir(), "--tls-bind",
                             options_.tls_bind.empty() ? host_ : options_.tls_bind});
  }
  return run_script(options_.config_dir + "/render", args, dir_ + "/render.log");
}

Status Broker::launch_and_wait() {
  const std::uintmax_t log_offset = file_size_or_zero(log_path());
  auto child =
      ChildProcess::spawn({mosquitto_, "-c", config_path()}, SpawnOptions{log_path(), {}, "mosquitto", dir_});
  if (!child) return child.status();
  process_.emplace(std::move(child.value()));

  const std::string observer_password = password("ota-observer");
  const auto deadline = Clock::now() + options_.ready_timeout;
  std::string last_probe = "no attempt";
  while (true) {
    if (auto info = process_->wait_for(milliseconds(0))) {
      std::string log = read_from(log_path(), log_offset);
      process_.reset();
      std::string msg = "mosquitto exited during start-up (" + info->describe() + "); last lines of " +
                        log_path() + ":\n" + last_lines(log, 15);
      if (log.find("Address already in use") != std::string::npos)
        msg = std::string(kAddressInUse) + ": " + msg;
      return make_error(Code::kUnavailable, msg);
    }
    // Probe only once this mosquitto says it has bound all its listeners: before that, a CONNECT
    // to the port could reach another process that holds it.
    const std::string log = read_from(log_path(), log_offset);
    if (log.find(" running") == std::string::npos) {
      last_probe = "mosquitto has not logged that it is running";
      if (Clock::now() >= deadline) break;
      std::this_thread::sleep_for(milliseconds(5));
      continue;
    }
    auto rc = mqtt_connect_probe(host_, port_, "ota-observer", observer_password, milliseconds(1000));
    if (rc && rc.value() == 0) return Status::ok();
    if (rc) {
      // The broker answers but refuses the rendered credentials: retrying will not help.
      process_->terminate(milliseconds(2000));
      process_.reset();
      return make_error(Code::kInternal, "mosquitto on port " + std::to_string(port_) +
                                             " refused the ota-observer CONNECT (CONNACK code " +
                                             std::to_string(rc.value()) + "); last lines of " + log_path() +
                                             ":\n" + last_lines(read_from(log_path(), log_offset), 15));
    }
    last_probe = rc.status().message();
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  process_->terminate(milliseconds(2000));
  process_.reset();
  return make_error(Code::kTimeout, "mosquitto did not answer on port " + std::to_string(port_) + " within " +
                                        std::to_string(options_.ready_timeout.count()) + " ms (" +
                                        last_probe + "); last lines of " + log_path() + ":\n" +
                                        last_lines(read_from(log_path(), log_offset), 15));
}

Status Broker::add_agent(const std::string& ecu_id) {
  if (!topics::valid_ecu_id(ecu_id)) {
    return make_error(Code::kInvalidArgument,
                      "'" + ecu_id + "' is not an ECU id (" + topics::kEcuIdRule + ")");
  }
  if (std::find(agents_.begin(), agents_.end(), ecu_id) != agents_.end()) return Status::ok();
  agents_.push_back(ecu_id);
  if (options_.tls) {
    std::vector<std::string> args{pki_dir(), "-q", "--agents", join(agents_, ',')};
    if (!options_.tls_extra_ips.empty())
      args.insert(args.end(), {"--extra-ip", join(options_.tls_extra_ips, ',')});
    OTA_RETURN_IF_ERROR(run_script(options_.config_dir + "/make-pki", args, dir_ + "/make-pki.log"));
  }
  OTA_RETURN_IF_ERROR(render());
  if (!running()) return Status::ok();  // picked up by the next restart()
  OTA_RETURN_IF_ERROR(process_->send_signal(SIGHUP));
  // The reload is asynchronous: wait until the new user is accepted.
  const std::string pw = password(ecu_id);
  const auto deadline = Clock::now() + milliseconds(5000);
  while (Clock::now() < deadline) {
    auto rc = mqtt_connect_probe(host_, port_, ecu_id, pw, milliseconds(1000));
    if (rc && rc.value() == 0) return Status::ok();
    std::this_thread::sleep_for(milliseconds(10));
  }
  return make_error(Code::kTimeout, "mosquitto did not accept new agent " + ecu_id + " after reload");
}

std::optional<ExitInfo> Broker::stop(milliseconds grace) {
  if (!process_) return std::nullopt;
  ExitInfo info = process_->terminate(grace);
  process_.reset();
  return info;
}

std::optional<ExitInfo> Broker::kill() {
  if (!process_) return std::nullopt;
  ExitInfo info = process_->kill();
  process_.reset();
  return info;
}

Status Broker::restart() {
  if (process_) stop();
  return launch_and_wait();
}

}  // namespace ota::sim
