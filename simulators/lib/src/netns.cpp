#include "ota/sim/netns.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "ota/sim/process.hpp"

namespace ota::sim {
namespace {

Status ip(std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  std::string cmd;
  for (const auto& a : args) cmd += (cmd.empty() ? "" : " ") + a;
  auto r = run_command(args, std::chrono::milliseconds(15000));
  if (!r) return r.status().with_context(cmd);
  if (!r->exit.success()) {
    return make_error(Code::kUnavailable, cmd + " failed (" + r->exit.describe() + "): " + r->output);
  }
  return Status::ok();
}

bool address_in_use(const std::string& prefix) {
  auto r = run_command({"ip", "-o", "-4", "addr", "show"}, std::chrono::milliseconds(15000));
  return r && r->output.find(" " + prefix) != std::string::npos;
}

}  // namespace

bool NetNamespace::supported() {
  if (::geteuid() != 0) return false;
  auto r = run_command({"ip", "netns", "list"}, std::chrono::milliseconds(15000));
  return r && r->exit.success();
}

Result<NetNamespace> NetNamespace::create() {
  static std::atomic<unsigned> counter{0};
  const unsigned pid = static_cast<unsigned>(::getpid());
  // Addresses 10.213.A.B/30: A from the pid, B a /30 block from a per-process counter; skip
  // blocks that some other interface already uses (another test process, say).
  for (int attempt = 0; attempt < 64; ++attempt) {
    const unsigned n = counter++;
    const unsigned a = (pid + n / 64) % 256;
    const unsigned b = (n % 64) * 4;
    const std::string base = "10.213." + std::to_string(a) + ".";
    const std::string host_ip = base + std::to_string(b + 1);
    if (address_in_use(host_ip + "/")) continue;

    NetNamespace ns;
    ns.name_ = "ota-" + std::to_string(pid) + "-" + std::to_string(n);
    char ifname[16];
    std::snprintf(ifname, sizeof ifname, "ov%x", (pid % 0x100000) * 64 + n % 64);
    ns.host_if_ = std::string(ifname) + "h";
    const std::string ns_if = std::string(ifname) + "n";
    ns.host_ip_ = host_ip;
    ns.ns_ip_ = base + std::to_string(b + 2);

    OTA_RETURN_IF_ERROR(ip({"netns", "add", ns.name_}));
    // From here on the destructor of `ns` cleans up whatever was created.
    OTA_RETURN_IF_ERROR(ip({"link", "add", ns.host_if_, "type", "veth", "peer", "name", ns_if}));
    OTA_RETURN_IF_ERROR(ip({"link", "set", ns_if, "netns", ns.name_}));
    OTA_RETURN_IF_ERROR(ip({"addr", "add", ns.host_ip_ + "/30", "dev", ns.host_if_}));
    OTA_RETURN_IF_ERROR(ip({"link", "set", ns.host_if_, "up"}));
    OTA_RETURN_IF_ERROR(ip({"-n", ns.name_, "addr", "add", ns.ns_ip_ + "/30", "dev", ns_if}));
    OTA_RETURN_IF_ERROR(ip({"-n", ns.name_, "link", "set", ns_if, "up"}));
    OTA_RETURN_IF_ERROR(ip({"-n", ns.name_, "link", "set", "lo", "up"}));
    return Result<NetNamespace>(std::move(ns));
  }
  return make_error(Code::kUnavailable, "no free 10.213.x.y/30 block for a network namespace");
}

NetNamespace::NetNamespace(NetNamespace&& other) noexcept
    : name_(std::move(other.name_)),
      host_if_(std::move(other.host_if_)),
      host_ip_(std::move(other.host_ip_)),
      ns_ip_(std::move(other.ns_ip_)) {
  other.name_.clear();
  other.host_if_.clear();
}

NetNamespace& NetNamespace::operator=(NetNamespace&& other) noexcept {
  if (this != &other) {
    destroy();
    name_ = std::move(other.name_);
    host_if_ = std::move(other.host_if_);
    host_ip_ = std::move(other.host_ip_);
    ns_ip_ = std::move(other.ns_ip_);
    other.name_.clear();
    other.host_if_.clear();
  }
  return *this;
}

NetNamespace::~NetNamespace() { destroy(); }

void NetNamespace::destroy() noexcept {
  // Deleting the namespace destroys its end of the veth pair, which takes the host end with it;
  // the explicit link delete covers a namespace that never received its end.
  if (!host_if_.empty()) (void)run_command({"ip", "link", "del", host_if_}, std::chrono::milliseconds(15000));
  if (!name_.empty()) (void)run_command({"ip", "netns", "del", name_}, std::chrono::milliseconds(15000));
  host_if_.clear();
  name_.clear();
}

std::vector<std::string> NetNamespace::wrap(std::vector<std::string> argv) const {
  argv.insert(argv.begin(), {"ip", "netns", "exec", name_});
  return argv;
}

}  // namespace ota::sim
