#include "common.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ota/core/file.hpp"

namespace ota::bench {

std::string ecu_of_topic(const std::string& topic) {
  static const std::string prefix = "ota/v1/ecu/";
  if (topic.compare(0, prefix.size(), prefix) != 0) return {};
  auto slash = topic.find('/', prefix.size());
  if (slash == std::string::npos) return {};
  return topic.substr(prefix.size(), slash - prefix.size());
}

Status write_result(const std::string& path, const PeerResult& r) {
  std::string s;
  for (const auto& [k, v] : r) s += k + "=" + v + "\n";
  return atomic_write_file(path, s);
}

Result<PeerResult> read_result(const std::string& path) {
  auto content = read_small_file(path, 1 << 16);
  if (!content) return content.status();
  PeerResult r;
  size_t pos = 0;
  const std::string& s = *content;
  while (pos < s.size()) {
    size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    std::string line = s.substr(pos, nl - pos);
    auto eq = line.find('=');
    if (eq != std::string::npos) r[line.substr(0, eq)] = line.substr(eq + 1);
    pos = nl + 1;
  }
  return r;
}

void add_self_usage(PeerResult& r) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return std::to_string(tv.tv_sec + tv.tv_usec / 1e6); };
  r["cpu_user_s"] = secs(ru.ru_utime);
  r["cpu_sys_s"] = secs(ru.ru_stime);
  r["max_rss_kib"] = std::to_string(ru.ru_maxrss);
}

int set_nodelay_on_tcp_sockets() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return 0;
  int count = 0;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(d)) continue;
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
      continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) continue;
    int one = 1;
    if (setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0) ++count;
  }
  closedir(d);
  return count;
}

Result<StreamSink> StreamSink::open(const std::string& path, uint64_t sync_every, bool state_file) {
  // Written in place from byte 0, like the agents' banks (see run_baseline).
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "open " + path);
  return StreamSink(fd, path, sync_every, state_file);
}

StreamSink::StreamSink(StreamSink&& o) noexcept
    : fd_(o.fd_),
      path_(std::move(o.path_)),
      state_file_(o.state_file_),
      sync_every_(o.sync_every_),
      since_sync_(o.since_sync_),
      bytes_(o.bytes_),
      sync_ns_(o.sync_ns_),
      sha_(std::move(o.sha_)) {
  o.fd_ = -1;
}

StreamSink::~StreamSink() {
  if (fd_ >= 0) ::close(fd_);
}

Status StreamSink::write(const uint8_t* data, size_t n) {
  sha_.update(data, n);
  bytes_ += n;
  while (n > 0) {
    ssize_t w = ::write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, "write");
    }
    data += w;
    n -= static_cast<size_t>(w);
    since_sync_ += static_cast<uint64_t>(w);
  }
  if (sync_every_ > 0 && since_sync_ >= sync_every_) {
    int64_t t0 = mono_ns();
    if (::fdatasync(fd_) != 0) return errno_status(errno, "fdatasync");
    if (state_file_) OTA_RETURN_IF_ERROR(atomic_write_file(path_ + ".state", std::to_string(bytes_) + "\n"));
    sync_ns_ += mono_ns() - t0;
    since_sync_ = 0;
  }
  return Status::ok();
}

Status StreamSink::close() {
  if (fd_ < 0) return Status::ok();
  if (sync_every_ > 0 && ::fdatasync(fd_) != 0) return errno_status(errno, "fdatasync");
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return errno_status(errno, "close");
  return Status::ok();
}

int finish_peer(const PeerConfig& c, const std::string& error, PeerResult fields, StreamSink* sink) {
  PeerResult& r = fields;
  r["ok"] = error.empty() ? "1" : "0";
  r["error"] = error;
  if (sink) {
    r["bytes"] = std::to_string(sink->bytes());
    r["sha256"] = sink->hex_digest();
    r["sync_s"] = std::to_string(sink->sync_seconds());
  }
  add_self_usage(r);
  (void)write_result(c.result_file, r);
  return error.empty() ? 0 : 1;
}

PubTargets pub_targets(const PeerConfig& c) {
  PubTargets t;
  for (size_t i = 0; i < c.ids.size(); ++i) {
    t.topics.push_back(data_topic(c.ids[i]));
    t.index[c.ids[i]] = i;
  }
  return t;
}

}  // namespace ota::bench
