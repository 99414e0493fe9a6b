// NetNamespace: a Linux network namespace joined to this host by a veth pair, so a process in it
// reaches the host only through one point-to-point link (like an ECU on another SoC of the
// vehicle). Needs root (CAP_NET_ADMIN) and iproute2.
//
//   auto ns = ota::sim::NetNamespace::create();          // 10.213.x.y/30 link
//   options.tls_bind = ns->host_ip();                    // broker's TLS listener on the link
//   options.tls_extra_ips = {ns->host_ip()};             // ... and in its certificate
//   ChildProcess::spawn(ns->wrap({"ota-agent-sim", "--broker", "ssl://" + ns->host_ip() + ":..."}));
//
// The namespace (and with it the veth pair) is deleted on destruction.
#pragma once

#include <string>
#include <vector>

#include "ota/core/status.hpp"

namespace ota::sim {

class NetNamespace {
 public:
  // Creates namespace "ota-<pid>-<n>" and a /30 link: host side host_ip(), namespace side
  // ns_ip(); loopback is up inside. Fails with the failing `ip` command and its output.
  static Result<NetNamespace> create();
  // True if this process may create network namespaces (root and `ip netns` available).
  static bool supported();

  NetNamespace(NetNamespace&& other) noexcept;
  NetNamespace& operator=(NetNamespace&& other) noexcept;
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;
  ~NetNamespace();

  const std::string& name() const noexcept { return name_; }
  const std::string& host_ip() const noexcept { return host_ip_; }  // the host's end of the link
  const std::string& ns_ip() const noexcept { return ns_ip_; }      // the namespace's end
  const std::string& host_interface() const noexcept { return host_if_; }

  // argv prefixed with `ip netns exec NAME`: runs the program inside the namespace.
  std::vector<std::string> wrap(std::vector<std::string> argv) const;

 private:
  NetNamespace() = default;
  void destroy() noexcept;

  std::string name_;
  std::string host_if_;
  std::string host_ip_;
  std::string ns_ip_;
};

}  // namespace ota::sim
