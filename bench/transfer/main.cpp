// ota-bench-transfer: the transfer throughput of the real pipeline against plain MQTT clients, in
// one run.
//
//   (a) ota-sim --agents N --image-size S: broker + ota-client + N ota-agent-sim processes, one
//       full campaign; throughput over the campaign and over the transfer phase.
//   (b) plain Paho MQTT C++ clients through the same kind of broker (same config and ACL), the
//       same chunk size at QoS 1: N subscriber processes that SHA-256 and write what they get,
//       one publisher sending N x S. Flow "window": app-level acknowledgement per chunk and a
//       window of chunks per subscriber (the pipeline's scheme); flow "inflight": QoS 1 only with
//       Paho's max_inflight.
//   (c) hand-written MQTT 3.1.1 peers over bare TCP sockets doing the same as (b) "window".
//   (d) with --rss-512: the agent's peak RSS while installing a 512 MiB image.
//   (a') with --sim-paho: (a) again with every MQTT connection on Paho (OTA_MQTT_CLIENT=paho)
//       instead of the native client, which carries tcp:// by default.
//
// The peers are this program re-executed as `ota-bench-transfer peer ...`. Every scenario starts a
// fresh broker; CPU time of each process comes from getrusage (peers report their own; the broker
// from /proc/PID/stat; the pipeline's processes by sampling /proc).
#include <google/protobuf/util/json_util.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <dirent.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "ota/core/file.hpp"
#include "ota/core/program_info.hpp"
#include "ota/sim/broker.hpp"
#include "ota/sim/process.hpp"
#include "ota/sim/tempdir.hpp"
#include "ota/v1/ota.pb.h"

#ifndef OTA_BENCH_TRANSFER_DIR
#define OTA_BENCH_TRANSFER_DIR "."
#endif

namespace ota::bench {
namespace {

using Clock = std::chrono::steady_clock;

bool parse_size(const std::string& text, uint64_t* out) {
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (const std::exception&) {
    return false;
  }
  std::string unit = text.substr(pos);
  static const std::map<std::string, uint64_t> units = {
      {"", 1},           {"B", 1},          {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
      {"K", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30},   {"KB", 1000},        {"MB", 1000000},
      {"GB", 1000000000}};
  auto it = units.find(unit);
  if (it == units.end()) return false;
  *out = v * it->second;
  return true;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

std::string dir_of(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? "." : p.substr(0, s);
}

double children_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

struct ProcStat {
  int ppid = 0;
  double cpu_s = 0;  // utime + stime
  std::string comm;
};

bool read_proc_stat(int pid, ProcStat* out) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(f, s)) return false;
  auto l = s.find('('), r = s.rfind(')');
  if (l == std::string::npos || r == std::string::npos) return false;
  out->comm = s.substr(l + 1, r - l - 1);
  std::istringstream rest(s.substr(r + 2));
  std::string field;
  std::vector<std::string> v;
  while (rest >> field) v.push_back(field);
  // v[0] is field 3 (state): ppid = field 4, utime = field 14, stime = field 15.
  if (v.size() < 13) return false;
  static const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  out->ppid = std::stoi(v[1]);
  out->cpu_s = (std::stod(v[11]) + std::stod(v[12])) / tck;
  return true;
}

std::string cmdline_label(int pid, const std::string& comm) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string a;
  while (std::getline(f, a, '\0')) args.push_back(a);
  if (args.empty()) return comm;
  std::string base = args[0].substr(args[0].rfind('/') + 1);
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--ecu") return base + " " + args[i + 1];
  }
  return base.empty() ? comm : base;
}

// Samples the CPU time of every descendant of a process every `period` until stopped; keeps the
// last value seen per pid (so a process's final ~period is missed).
class CpuSampler {
 public:
  CpuSampler(int root, std::chrono::milliseconds period) : root_(root), period_(period) {
    thread_ = std::thread([this] { loop(); });
  }
  ~CpuSampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // label -> CPU seconds (summed over pids with the same label)
  std::map<std::string, double> by_label() const {
    std::map<std::string, double> m;
    for (const auto& [pid, e] : seen_) m[e.label] += e.cpu_s;
    return m;
  }
  // label -> {MB read, MB written} through syscalls (sockets and files alike)
  std::map<std::string, std::pair<double, double>> io_by_label() const {
    std::map<std::string, std::pair<double, double>> m;
    for (const auto& [pid, e] : seen_) {
      m[e.label].first += e.rchar / 1e6;
      m[e.label].second += e.wchar / 1e6;
    }
    return m;
  }

 private:
  struct Entry {
    std::string label, comm;
    double cpu_s = 0;
    uint64_t rchar = 0, wchar = 0;  // bytes through read()/write()-like calls (/proc/PID/io)
  };
  static void read_proc_io(int pid, uint64_t* rchar, uint64_t* wchar) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/io");
    std::string k;
    uint64_t v = 0;
    while (f >> k >> v) {
      if (k == "rchar:") *rchar = std::max(*rchar, v);
      if (k == "wchar:") *wchar = std::max(*wchar, v);
    }
  }
  void loop() {
    while (!stop_) {
      sample();
      std::this_thread::sleep_for(period_);
    }
  }
  void sample() {
    std::map<int, ProcStat> all;
    DIR* d = opendir("/proc");
    if (!d) return;
    while (dirent* e = readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end) continue;
      ProcStat ps;
      if (read_proc_stat(static_cast<int>(pid), &ps)) all[static_cast<int>(pid)] = ps;
    }
    closedir(d);
    std::set<int> desc{root_};
    bool grew = true;
    while (grew) {
      grew = false;
      for (const auto& [pid, ps] : all) {
        if (!desc.count(pid) && desc.count(ps.ppid)) {
          desc.insert(pid);
          grew = true;
        }
      }
    }
    for (int pid : desc) {
      auto it = all.find(pid);
      if (it == all.end()) continue;
      Entry& en = seen_[pid];
      // A child is labelled again once it has exec'd (between fork and exec it looks like its parent).
      if (en.label.empty() || en.comm != it->second.comm) {
        en.label = pid == root_ ? "ota-sim" : cmdline_label(pid, it->second.comm);
        en.comm = it->second.comm;
      }
      en.cpu_s = std::max(en.cpu_s, it->second.cpu_s);
      read_proc_io(pid, &en.rchar, &en.wchar);
    }
  }
  int root_;
  std::chrono::milliseconds period_;
  std::atomic<bool> stop_{false};
  std::map<int, Entry> seen_;
  std::thread thread_;
};

struct Options {
  int agents = 8;
  std::string image_size = "64MiB";
  std::string chunk_text = "256KiB";
  uint32_t window = 16;
  uint32_t sim_window = 0;  // (a): 0 = the client's default
  int runs = 3;
  bool skip_sim = false, skip_paho = false, skip_bare = false, rss_512 = false;
  std::string rss_size = "512MiB";
  // Paho settings tried for (b); the best is reported as (b).
  std::vector<uint32_t> paho_windows{16, 2};
  std::vector<uint32_t> paho_inflights{16};
  // What-if runs of the pipeline at other windows.
  std::vector<uint32_t> what_if_windows;
  // (a') the pipeline again with every MQTT connection on Paho: what the native client gains.
  bool sim_paho = false;
  std::string sub_sync = "0";
  bool no_nodelay = false;
  bool sub_state = false;
  std::string pub_impl, sub_impl;
  bool write_results = false;
  std::string results_file = std::string(OTA_BENCH_TRANSFER_DIR) + "/RESULTS.md";
  std::string bin_dir;
  int timeout_s = 600;
  // derived
  uint64_t size = 0, chunk = 0, sync_every = 0;
};

// One measured run of one scenario.
struct RunResult {
  bool ok = false;
  std::string error;
  double mbps = 0;                    // payload MB/s (10^6 bytes) over the transfer
  double campaign_mbps = 0;           // (a): over the whole campaign, as ota-sim prints it
  double wall_s = 0;                  // transfer (or campaign) wall time
  double cpu_total_s = 0;             // (a): every process (getrusage of children); (b), (c): broker + peers
  double cpu_all_s = 0;               // every child process, start-up included
  std::map<std::string, double> cpu;  // per process (or role)
  std::map<std::string, std::pair<double, double>> io_mb;  // (a): per process, MB read / written (syscalls)
  uint64_t bytes = 0;
  long agent_rss_kib = 0;  // (a)/(d): max peak RSS of the agents
  std::string note;
};

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof(b), f, v);
  return b;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Writes `size` bytes of pseudo-random data (xorshift) and returns its SHA-256.
Result<std::string> make_image(const std::string& path, uint64_t size) {
  auto sink = StreamSink::open(path, 0);
  if (!sink) return sink.status();
  std::vector<uint8_t> buf(1 << 20);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (uint64_t done = 0; done < size;) {
    for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(&buf[i], &x, 8);
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    OTA_RETURN_IF_ERROR(sink->write(buf.data(), n));
    done += n;
  }
  std::string hex = sink->hex_digest();
  OTA_RETURN_IF_ERROR(sink->close());
  return hex;
}

bool wait_files(const std::vector<std::string>& files, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (const auto& f : files) {
    while (access(f.c_str(), F_OK) != 0) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return true;
}

// ------------------------------------------------------------------------------ (b) and (c)
RunResult run_baseline(const Options& o, const std::string& impl, const std::string& flow, uint32_t window,
                       uint32_t inflight, const std::string& image, const std::string& image_sha,
                       const std::string& work, int run) {
  RunResult res;
  const std::string tag = impl + "-" + flow + "-" + std::to_string(flow == "window" ? window : inflight) +
                          "-" + std::to_string(run);
  const std::string dir = work + "/" + tag;
  if (Status st = make_dirs(dir); !st.is_ok()) {
    res.error = st.to_string();
    return res;
  }
  std::vector<std::string> ids;
  for (int i = 0; i < o.agents; ++i) ids.push_back("ecu-" + std::to_string(i));
  sim::BrokerOptions bo;
  bo.agents = ids;
  auto broker = sim::Broker::start(bo);
  if (!broker) {
    res.error = "broker: " + broker.status().to_string();
    return res;
  }
  const std::string exe = self_exe();
  auto common_args = [&](const std::string& role) {
    // --pub-impl / --sub-impl swap one side of the Paho scenarios (diagnosis: which side is slow).
    std::string peer_impl = impl;
    if (impl == "paho" && role == "pub" && !o.pub_impl.empty()) peer_impl = o.pub_impl;
    if (impl == "paho" && role == "sub" && !o.sub_impl.empty()) peer_impl = o.sub_impl;
    return std::vector<std::string>{exe,          "peer",
                                    "--role",     role,
                                    "--impl",     peer_impl,
                                    "--flow",     flow,
                                    "--host",     (*broker)->host(),
                                    "--port",     std::to_string((*broker)->port()),
                                    "--size",     std::to_string(o.size),
                                    "--chunk",    std::to_string(o.chunk),
                                    "--window",   std::to_string(window),
                                    "--inflight", std::to_string(inflight),
                                    "--nodelay",  o.no_nodelay ? "0" : "1",
                                    "--timeout",  std::to_string(o.timeout_s)};
  };
  const double cpu0 = children_cpu_s();
  std::vector<sim::ChildProcess> subs;
  std::vector<std::string> ready;
  for (const auto& id : ids) {
    // Every receiver writes into a file that already holds an image, as the agents rewrite bank B
    // (ota-sim flashes both banks): on this VM, page-cache pages touched for the first time cost
    // about 20x more to fill than pages a file already has, so both sides must be in one regime.
    std::error_code ec;
    std::filesystem::copy_file(image, dir + "/" + id + ".bin",
                               std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) {
      res.error = "copy " + image + ": " + ec.message();
      return res;
    }
    auto argv = common_args("sub");
    std::vector<std::string> more{"--id",         id,
                                  "--user",       id,
                                  "--password",   (*broker)->password(id),
                                  "--out",        dir + "/" + id + ".bin",
                                  "--ready",      dir + "/" + id + ".ready",
                                  "--result",     dir + "/" + id + ".result",
                                  "--sync-every", std::to_string(o.sync_every),
                                  "--state-file", o.sub_state ? "1" : "0"};
    argv.insert(argv.end(), more.begin(), more.end());
    sim::SpawnOptions so;
    so.log_path = dir + "/" + id + ".log";
    so.name = "sub " + id;
    auto c = sim::ChildProcess::spawn(argv, so);
    if (!c) {
      res.error = c.status().to_string();
      return res;
    }
    subs.push_back(std::move(*c));
    ready.push_back(dir + "/" + id + ".ready");
  }
  if (!wait_files(ready, std::chrono::seconds(20))) {
    res.error = "subscribers did not get ready: " + sim::tail_file(subs[0].log_path(), 5);
    return res;
  }
  ProcStat b0{}, b1{};
  const int bpid = (*broker)->process()->pid();
  read_proc_stat(bpid, &b0);
  auto argv = common_args("pub");
  std::vector<std::string> more{"--user",  "ota-client", "--password", (*broker)->password("ota-client"),
                                "--image", image,        "--result",   dir + "/pub.result"};
  argv.insert(argv.end(), more.begin(), more.end());
  for (const auto& id : ids) {
    argv.push_back("--ids");
    argv.push_back(id);
  }
  // Diagnosis: OTA_BENCH_PUB_WRAP="strace -f -tt -o FILE" runs the publisher under a tool.
  if (const char* wrap = std::getenv("OTA_BENCH_PUB_WRAP"); wrap && *wrap) {
    std::istringstream words(wrap);
    std::vector<std::string> pre;
    for (std::string w; words >> w;) pre.push_back(w);
    argv.insert(argv.begin(), pre.begin(), pre.end());
  }
  sim::SpawnOptions so;
  so.log_path = dir + "/pub.log";
  so.name = "publisher";
  const auto t0 = Clock::now();
  auto pub = sim::ChildProcess::spawn(argv, so);
  if (!pub) {
    res.error = pub.status().to_string();
    return res;
  }
  auto pexit = pub->wait_for(std::chrono::seconds(o.timeout_s));
  if (!pexit) pexit = pub->kill();
  // Subscribers finish right after the publisher (window) or may trail it (inflight).
  const auto grace = std::max<Clock::duration>(std::chrono::seconds(10), (Clock::now() - t0) * 2);
  const auto sub_deadline = Clock::now() + grace;
  std::vector<sim::ExitInfo> sexits;
  for (auto& s : subs) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(sub_deadline - Clock::now());
    auto e = s.wait_for(std::max(left, std::chrono::milliseconds(1)));
    sexits.push_back(e ? *e : s.kill());
  }
  read_proc_stat(bpid, &b1);
  (*broker)->stop();
  res.cpu_total_s = children_cpu_s() - cpu0;
  res.cpu["broker"] = b1.cpu_s - b0.cpu_s;

  auto pr = read_result(dir + "/pub.result");
  if (!pr || (*pr)["ok"] != "1") {
    res.error = "publisher failed (" + pexit->describe() +
                "): " + (pr ? (*pr)["error"] : sim::tail_file(dir + "/pub.log", 5));
  }
  auto num = [](PeerResult& r, const char* k) { return r.count(k) ? std::stod(r[k]) : 0.0; };
  int64_t t_start = pr ? static_cast<int64_t>(num(*pr, "t_start_ns")) : 0;
  int64_t t_end = pr ? static_cast<int64_t>(num(*pr, "t_end_ns")) : 0;
  if (pr) res.cpu["publisher"] = num(*pr, "cpu_user_s") + num(*pr, "cpu_sys_s");
  double sub_cpu = 0, sync_s = 0;
  uint64_t gaps = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto sr = read_result(dir + "/" + ids[i] + ".result");
    if (!sr) {
      if (res.error.empty()) res.error = ids[i] + " wrote no result (" + sexits[i].describe() + ")";
      continue;
    }
    auto& r = *sr;
    sub_cpu += num(r, "cpu_user_s") + num(r, "cpu_sys_s");
    res.agent_rss_kib = std::max<long>(res.agent_rss_kib, static_cast<long>(num(r, "max_rss_kib")));
    sync_s += num(r, "sync_s");
    gaps += static_cast<uint64_t>(num(r, "gaps"));
    res.bytes += static_cast<uint64_t>(num(r, "bytes"));
    t_end = std::max<int64_t>(t_end, static_cast<int64_t>(num(r, "t_end_ns")));
    if (res.error.empty() && r["ok"] != "1") res.error = ids[i] + ": " + r["error"];
    if (res.error.empty() && r["sha256"] != image_sha) res.error = ids[i] + ": SHA-256 mismatch";
  }
  res.cpu["subscribers"] = sub_cpu;
  // The transfer's own CPU: broker during the transfer, publisher, subscribers (the broker's
  // start-up, i.e. rendering and password hashing, is left out; all children: res.cpu_all_s).
  res.cpu_all_s = res.cpu_total_s;
  res.cpu_total_s = res.cpu["broker"] + res.cpu["publisher"] + sub_cpu;
  if (gaps > 0) res.note = std::to_string(gaps) + " chunks lost (broker queue limit)";
  if (sync_s > 0) res.note += (res.note.empty() ? "" : "; ") + fmt("fdatasync %.2f s (sum)", sync_s);
  res.note +=
      (res.note.empty() ? "" : "; ") + fmt("subscriber peak RSS %.1f MiB", res.agent_rss_kib / 1024.0);
  if (res.error.empty() && res.bytes != o.size * ids.size())
    res.error = "bytes received " + std::to_string(res.bytes);
  res.wall_s = (t_end - t_start) / 1e9;
  if (res.error.empty() && res.wall_s > 0) {
    res.ok = true;
    res.mbps = res.bytes / 1e6 / res.wall_s;
  }
  (void)sim::remove_tree(dir);  // the received files (N x S)
  return res;
}

// ------------------------------------------------------------------------------ (a) and (d)
RunResult run_sim(const Options& o, int agents, const std::string& image_size, uint32_t window, bool on_paho,
                  const std::string& work, const std::string& tag) {
  RunResult res;
  const std::string dir = work + "/" + tag;
  const std::string report = dir + ".json";
  std::vector<std::string> argv{o.bin_dir + "/ota-sim",
                                "--agents",
                                std::to_string(agents),
                                "--image-size",
                                image_size,
                                "--chunk-size",
                                std::to_string(o.chunk),
                                "--window",
                                std::to_string(window),
                                "--work-dir",
                                dir,
                                "--report",
                                report,
                                "--quiet",
                                "--no-cloud",
                                "--timeout",
                                std::to_string(o.timeout_s)};
  sim::SpawnOptions so;
  so.log_path = dir + ".log";
  so.name = "ota-sim";
  if (on_paho) so.env_extra.push_back("OTA_MQTT_CLIENT=paho");
  const double cpu0 = children_cpu_s();
  const auto t0 = Clock::now();
  auto child = sim::ChildProcess::spawn(argv, so);
  if (!child) {
    res.error = child.status().to_string();
    return res;
  }
  std::optional<sim::ExitInfo> exit;
  {
    CpuSampler sampler(child->pid(), std::chrono::milliseconds(50));
    exit = child->wait_for(std::chrono::seconds(o.timeout_s + 30));
    sampler.stop();
    res.cpu = sampler.by_label();
    res.io_mb = sampler.io_by_label();
  }
  if (!exit) exit = child->kill();
  res.cpu_total_s = children_cpu_s() - cpu0;
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  auto content = read_small_file(report, 16 << 20);
  v1::VehicleReport rep;
  if (!content || !google::protobuf::util::JsonStringToMessage(*content, &rep).ok()) {
    res.error = "ota-sim wrote no report (" + exit->describe() + "): " + sim::tail_file(dir + ".log", 8);
    (void)sim::remove_tree(dir);
    return res;
  }
  uint64_t max_transfer_ms = 0;
  for (const auto& e : rep.ecus()) {
    res.bytes += e.bytes_transferred();
    for (const auto& p : e.phases()) {
      if (p.phase() == v1::PHASE_TRANSFER)
        max_transfer_ms = std::max<uint64_t>(max_transfer_ms, p.duration_ms());
    }
  }
  for (const auto& p : rep.processes()) {
    if (p.name().rfind("agent ", 0) == 0)
      res.agent_rss_kib = std::max<long>(res.agent_rss_kib, static_cast<long>(p.peak_rss_kib()));
  }
  if (rep.result() != v1::CAMPAIGN_SUCCESS) {
    res.error = "campaign " + v1::CampaignResult_Name(rep.result()) + ": " + rep.reason();
  } else if (max_transfer_ms == 0 || rep.duration_ms() == 0) {
    res.error = "report has no transfer timing";
  } else {
    res.ok = true;
    res.mbps = res.bytes / 1e3 / static_cast<double>(max_transfer_ms);
    res.campaign_mbps = res.bytes / 1e3 / static_cast<double>(rep.duration_ms());
    res.wall_s = max_transfer_ms / 1e3;
    res.note = fmt("campaign %.2f s", rep.duration_ms() / 1e3) + fmt(", ota-sim wall %.2f s", wall) +
               fmt("; agent peak RSS %.1f MiB", res.agent_rss_kib / 1024.0);
  }
  (void)sim::remove_tree(dir);
  (void)std::remove(report.c_str());
  return res;
}

// ------------------------------------------------------------------------------ report
struct Scenario {
  std::string key, title;
  std::string impl, flow;  // baselines
  uint32_t window = 0, inflight = 0;
  bool on_paho = false;  // (a): every MQTT connection of the pipeline on Paho instead of the native client
  std::vector<RunResult> runs;
  std::vector<double> ok_mbps() const {
    std::vector<double> v;
    for (const auto& r : runs)
      if (r.ok) v.push_back(r.mbps);
    return v;
  }
  double med() const { return median(ok_mbps()); }
  // The run whose MB/s is the median (or nearest), for CPU figures.
  const RunResult* median_run() const {
    const RunResult* best = nullptr;
    double m = med();
    for (const auto& r : runs)
      if (r.ok && (!best || std::abs(r.mbps - m) < std::abs(best->mbps - m))) best = &r;
    return best;
  }
};

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char b[64];
  std::strftime(b, sizeof(b), "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return b;
}

std::string first_line_of_command(std::vector<std::string> argv) {
  auto r = sim::run_command(std::move(argv), std::chrono::seconds(5));
  if (!r) return "?";
  std::string s = r->output;
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "?";
}

std::string render(const Options& o, const std::vector<Scenario>& sc, const RunResult* rss,
                   const std::string& cmd) {
  std::ostringstream out;
  const double gb_per_run = o.agents * static_cast<double>(o.size) / 1e9;
  out << "| scenario | median MB/s | runs (MB/s) | transfer wall s | CPU-s total | CPU-s per GB | notes |\n";
  out << "|---|---:|---|---:|---:|---:|---|\n";
  for (const auto& s : sc) {
    std::string runs;
    for (const auto& r : s.runs)
      runs += (runs.empty() ? "" : ", ") + (r.ok ? fmt("%.0f", r.mbps) : std::string("fail"));
    const RunResult* m = s.median_run();
    out << "| " << s.title << " | " << (m ? fmt("%.1f", s.med()) : "-") << " | " << runs << " | "
        << (m ? fmt("%.2f", m->wall_s) : "-") << " | " << (m ? fmt("%.1f", m->cpu_total_s) : "-") << " | "
        << (m ? fmt("%.2f", m->cpu_total_s / gb_per_run) : "-") << " | " << (m ? m->note : "") << " |\n";
  }
  auto find = [&](const std::string& k) -> const Scenario* {
    for (const auto& s : sc)
      if (s.key == k && !s.ok_mbps().empty()) return &s;
    return nullptr;
  };
  const Scenario* a = find("sim");
  const Scenario* b = nullptr;
  for (const auto& s : sc)
    if (s.impl == "paho" && !s.ok_mbps().empty() && (!b || s.med() > b->med())) b = &s;
  const Scenario* c = find("bare");
  out << "\n";
  if (b) out << "(b) = best Paho setting: " << b->title << ", " << fmt("%.1f MB/s", b->med()) << "\n\n";
  if (a && b) {
    out << "- (a)/(b), transfer phase: **" << fmt("%.2f", a->med() / b->med()) << "x** (goal >= 0.9x)\n";
    std::vector<double> camp;
    for (const auto& r : a->runs)
      if (r.ok) camp.push_back(r.campaign_mbps);
    out << "- (a)/(b), whole campaign as ota-sim prints it (" << fmt("%.1f MB/s", median(camp))
        << "): " << fmt("%.2f", median(camp) / b->med()) << "x\n";
  }
  if (a && c)
    out << "- (a)/(c) bare-socket, transfer phase: **" << fmt("%.2f", a->med() / c->med())
        << "x** (goal >= 0.8x)\n";
  for (const auto& s : sc) {
    if (s.key != "what-if" || s.ok_mbps().empty() || !b) continue;
    out << "- " << s.title << ": " << fmt("%.1f MB/s", s.med()) << ", "
        << fmt("%.2fx (b)", s.med() / b->med())
        << (c ? fmt(", %.2fx (c)", s.med() / c->med()) : std::string()) << "\n";
  }
  if (b && c) out << "- (b)/(c): " << fmt("%.2f", b->med() / c->med()) << "x\n";
  if (rss) {
    out << "- (d) agent peak RSS installing a " << o.rss_size << " image: "
        << (rss->ok ? fmt("**%.1f MiB**", rss->agent_rss_kib / 1024.0) + " (goal < 16 MiB)"
                    : "failed: " + rss->error)
        << "\n";
  }
  out << "\nCPU seconds per process (median run of each scenario; the pipeline's by sampling /proc every 50 "
         "ms):\n\n";
  out << "| scenario | process | CPU-s | CPU-s per GB |\n|---|---|---:|---:|\n";
  for (const auto& s : sc) {
    const RunResult* m = s.median_run();
    if (!m) continue;
    std::map<std::string, double> agg;
    for (const auto& [k, v] : m->cpu) {
      std::string key = k;
      if (k.rfind("ota-agent-sim ", 0) == 0) key = "ota-agent-sim (all " + std::to_string(o.agents) + ")";
      agg[key] += v;
    }
    std::map<std::string, std::pair<double, double>> io;
    for (const auto& [k, v] : m->io_mb) {
      std::string key = k;
      if (k.rfind("ota-agent-sim ", 0) == 0) key = "ota-agent-sim (all " + std::to_string(o.agents) + ")";
      io[key].first += v.first;
      io[key].second += v.second;
    }
    for (const auto& [k, v] : agg) {
      if (v < 0.01) continue;
      std::string io_note;
      if (io.count(k)) io_note = fmt(" (read %.0f MB", io[k].first) + fmt(", wrote %.0f MB)", io[k].second);
      out << "| " << s.title << " | " << k << io_note << " | " << fmt("%.2f", v) << " | "
          << fmt("%.2f", v / gb_per_run) << " |\n";
    }
  }
  out << "\nCommand: `" << cmd << "`\n";
  return out.str();
}

int orchestrate(Options& o, const std::string& cmdline) {
  if (!parse_size(o.image_size, &o.size) || o.size == 0 || !parse_size(o.chunk_text, &o.chunk) ||
      o.chunk == 0 || !parse_size(o.sub_sync, &o.sync_every)) {
    std::fprintf(stderr, "ota-bench-transfer: bad --image-size, --chunk or --sub-sync\n");
    return 2;
  }
  if (o.bin_dir.empty()) o.bin_dir = dir_of(self_exe());
  auto work = sim::TempDir::create("ota-bench-transfer-");
  if (!work) {
    std::fprintf(stderr, "ota-bench-transfer: %s\n", work.status().to_string().c_str());
    return 1;
  }
  const std::string image = work->file("image.bin");
  std::string image_sha;
  if (!(o.skip_paho && o.skip_bare)) {
    auto sha = make_image(image, o.size);
    if (!sha) {
      std::fprintf(stderr, "ota-bench-transfer: %s\n", sha.status().to_string().c_str());
      return 1;
    }
    image_sha = *sha;
  }
  std::vector<Scenario> sc;
  const std::string size_note = std::to_string(o.agents) + " x " + o.image_size;
  if (!o.skip_sim) {
    sc.push_back({"sim",
                  o.sim_window
                      ? "(a) ota-sim pipeline, window " + std::to_string(o.sim_window)
                      : std::string("(a) ota-sim pipeline, default window (4 in flight shared by the ECUs)"),
                  "",
                  "",
                  o.sim_window,
                  0,
                  false,
                  {}});
    if (o.sim_paho) {
      sc.push_back({"what-if",
                    "(a') ota-sim pipeline on Paho (OTA_MQTT_CLIENT=paho), same window",
                    "",
                    "",
                    o.sim_window,
                    0,
                    true,
                    {}});
    }
    for (uint32_t w : o.what_if_windows) {
      sc.push_back(
          {"what-if", "(a') what-if: pipeline, window " + std::to_string(w), "", "", w, 0, false, {}});
    }
  }
  if (!o.skip_paho) {
    for (uint32_t w : o.paho_windows) {
      sc.push_back(
          {"paho", "(b) Paho C++, app acks, window " + std::to_string(w), "paho", "window", w, 0, false, {}});
    }
    for (uint32_t i : o.paho_inflights) {
      if (i == 0) continue;
      sc.push_back({"paho",
                    "(b) Paho C++, QoS 1 only, " + std::to_string(i) + " PUBLISH in flight",
                    "paho",
                    "inflight",
                    0,
                    i,
                    false,
                    {}});
    }
  }
  if (!o.skip_bare) {
    sc.push_back({"bare",
                  "(c) bare-socket MQTT, app acks, window " + std::to_string(o.window),
                  "bare",
                  "window",
                  o.window,
                  0,
                  false,
                  {}});
  }
  std::fprintf(stderr, "ota-bench-transfer: %s, chunk %s, SHA-256 backend %s, %d run(s)\n", size_note.c_str(),
               o.chunk_text.c_str(), Sha256::backend(), o.runs);
  for (int run = 1; run <= o.runs; ++run) {
    for (auto& s : sc) {
      RunResult r;
      if (s.key == "sim" || s.key == "what-if") {
        r = run_sim(o, o.agents, o.image_size, s.window, s.on_paho, work->path(),
                    "sim-" + std::to_string(run));
      } else {
        r = run_baseline(o, s.impl, s.flow, s.window, s.inflight, image, image_sha, work->path(), run);
      }
      std::fprintf(stderr, "  run %d %-55s %s\n", run, s.title.c_str(),
                   r.ok ? (fmt("%7.1f MB/s", r.mbps) + fmt("  wall %.2f s", r.wall_s) +
                           fmt("  CPU %.1f s", r.cpu_total_s) + (r.note.empty() ? "" : "  (" + r.note + ")"))
                              .c_str()
                        : ("FAILED: " + r.error).c_str());
      s.runs.push_back(std::move(r));
    }
  }
  std::optional<RunResult> rss;
  if (o.rss_512) {
    rss = run_sim(o, 1, o.rss_size, o.sim_window, false, work->path(), "rss");
    std::fprintf(
        stderr, "  agent peak RSS, %s image: %s\n", o.rss_size.c_str(),
        rss->ok ? fmt("%.1f MiB", rss->agent_rss_kib / 1024.0).c_str() : ("FAILED: " + rss->error).c_str());
  }
  const std::string table = render(o, sc, rss ? &*rss : nullptr, cmdline);
  std::printf("\n%s", table.c_str());
  if (o.write_results) {
    std::ostringstream md;
    md << "# Transfer benchmark results\n\n";
    md << "Written by `ota-bench-transfer --write-results` on " << now_utc() << ".\n\n";
    md << "- Machine: " << std::thread::hardware_concurrency() << " cores, " << cpu_model()
       << "; shared with other builds, so figures are noisy (median of " << o.runs << " runs).\n";
    md << "- Broker: " << first_line_of_command({"mosquitto", "-h"})
       << ", rendered from broker-config/ (plain listener on loopback).\n";
    md << "- " << paho_version() << "; SHA-256 backend: " << Sha256::backend() << ".\n";
    md << "- Workload: " << size_note << ", chunk " << o.chunk_text << ", QoS 1; window " << o.window
       << " chunks per receiver for (c), (a) and (b) as listed. (a) MB/s is over the transfer phase (bytes / "
          "longest ECU transfer phase); "
          "(b) and (c) from the publisher's first PUBLISH to the last subscriber's last byte hashed and "
          "written"
       << (o.sync_every ? " (fdatasync every " + o.sub_sync + ")" : " (no fsync)")
       << ". Every receiver rewrites a file that already holds an image, as the agents rewrite bank B; "
          "the pipeline's agents also checkpoint (fdatasync + state file) every 8 MiB beside the transfer.\n";
    md << "- CPU-s total: (a) getrusage of ota-sim and all its children over the whole campaign (start-up, "
          "image generation, install, activation included, so it overstates the transfer's share); (b), (c) "
          "the "
          "broker's CPU during the transfer plus the publisher's and subscribers' own getrusage.\n\n";
    md << table;
    md << "\nSee PROFILE.md for where the pipeline's time goes.\n";
    if (Status st = atomic_write_file(o.results_file, md.str()); !st.is_ok()) {
      std::fprintf(stderr, "ota-bench-transfer: %s\n", st.to_string().c_str());
      return 1;
    }
    std::fprintf(stderr, "wrote %s\n", o.results_file.c_str());
  }
  return 0;
}

int peer_main(int argc, char** argv) {
  CLI::App app{"ota-bench-transfer peer (internal)"};
  PeerConfig c;
  int nodelay = 1;
  app.add_option("--role", c.role)->required();
  app.add_option("--impl", c.impl)->required();
  app.add_option("--flow", c.flow)->required();
  app.add_option("--host", c.host);
  app.add_option("--port", c.port)->required();
  app.add_option("--user", c.user);
  app.add_option("--password", c.password);
  app.add_option("--id", c.id);
  app.add_option("--ids", c.ids);
  app.add_option("--image", c.image);
  app.add_option("--out", c.out);
  app.add_option("--ready", c.ready_file);
  app.add_option("--result", c.result_file)->required();
  app.add_option("--size", c.size)->required();
  app.add_option("--chunk", c.chunk);
  app.add_option("--window", c.window);
  app.add_option("--inflight", c.inflight);
  app.add_option("--sync-every", c.sync_every);
  int state_file = 0;
  app.add_option("--state-file", state_file);
  app.add_option("--nodelay", nodelay);
  app.add_option("--timeout", c.timeout_s);
  CLI11_PARSE(app, argc, argv);
  c.nodelay = nodelay != 0;
  c.state_file = state_file != 0;
  if (c.impl == "paho") return c.role == "pub" ? run_paho_pub(c) : run_paho_sub(c);
  if (c.impl == "bare") return c.role == "pub" ? run_bare_pub(c) : run_bare_sub(c);
  std::fprintf(stderr, "unknown --impl %s\n", c.impl.c_str());
  return 2;
}

}  // namespace
}  // namespace ota::bench

int main(int argc, char** argv) {
  using namespace ota::bench;
  if (argc > 1 && std::string(argv[1]) == "peer") return peer_main(argc - 1, argv + 1);
  CLI::App app{"ota-bench-transfer: pipeline transfer throughput against plain Paho and bare-socket MQTT"};
  app.set_version_flag("--version", ota::version_text("ota-bench-transfer"));
  Options o;
  app.add_option("--agents", o.agents, "receivers (ECUs / subscribers)")->check(CLI::Range(1, 64));
  app.add_option("--image-size", o.image_size, "bytes per receiver (e.g. 64MiB)");
  app.add_option("--chunk", o.chunk_text, "chunk size (e.g. 256KiB)");
  app.add_option("--window", o.window, "chunks in flight per receiver (app-ack baselines)");
  app.add_option("--sim-window", o.sim_window, "(a): chunks in flight per ECU (0: the client's default)");
  app.add_option("--paho-windows", o.paho_windows, "(b): app-ack windows to try (chunks per subscriber)")
      ->delimiter(',');
  app.add_option("--paho-inflights", o.paho_inflights,
                 "(b): QoS-1-only variants, PUBLISHes in flight (0 or none: skip)")
      ->delimiter(',');
  app.add_option("--runs", o.runs, "runs of each scenario (the median is reported)")
      ->check(CLI::Range(1, 20));
  app.add_option("--what-if", o.what_if_windows, "also run the pipeline at these windows")->delimiter(',');
  app.add_flag("--skip-sim", o.skip_sim, "do not run (a), the ota-sim pipeline");
  app.add_flag("--sim-paho", o.sim_paho, "(a') also run the pipeline with every MQTT connection on Paho");
  app.add_flag("--skip-paho", o.skip_paho, "do not run (b), the Paho baselines");
  app.add_flag("--skip-bare", o.skip_bare, "do not run (c), the bare-socket baseline");
  app.add_flag("--rss-512", o.rss_512, "(d) also measure the agent's peak RSS installing a 512 MiB image");
  app.add_option("--rss-image-size", o.rss_size, "image size for --rss-512");
  app.add_option("--sub-sync", o.sub_sync,
                 "baseline subscribers fdatasync every N bytes (e.g. 8MiB; 0: never)");
  app.add_option("--pub-impl", o.pub_impl, "diagnosis: the (b) scenarios' publisher is paho or bare")
      ->check(CLI::IsMember({"paho", "bare"}));
  app.add_option("--sub-impl", o.sub_impl, "diagnosis: the (b) scenarios' subscribers are paho or bare")
      ->check(CLI::IsMember({"paho", "bare"}));
  app.add_flag(
      "--sub-state", o.sub_state,
      "with --sub-sync, subscribers also save a state file atomically at each sync (like the agent SDK)");
  app.add_flag("--no-nodelay", o.no_nodelay, "leave Nagle on in the baselines' MQTT sockets");
  app.add_flag("--write-results", o.write_results, "write RESULTS.md next to this program's source");
  app.add_option("--results-file", o.results_file, "where --write-results writes");
  app.add_option("--bin-dir", o.bin_dir, "directory holding ota-sim (default: this program's)");
  app.add_option("--timeout", o.timeout_s, "seconds before a scenario is given up");
  CLI11_PARSE(app, argc, argv);
  std::string cmd = "ota-bench-transfer";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--results-file" || a == "--bin-dir") {
      ++i;
      continue;
    }
    cmd += " " + a;
  }
  return orchestrate(o, cmd);
}
