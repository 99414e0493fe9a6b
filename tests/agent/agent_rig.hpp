// AgentRig: one Agent over a loopback broker and a FileDevice in a temporary directory, on a clock
// the test moves, and the client's side of the protocol: commands and chunks out; results, acks
// and the retained hello and state in; every transition the agent took, as its seam reports them.
// Everything is waited for with a deadline (kDeadline), nothing sleeps.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent_internal.hpp"
#include "manual_clock.hpp"
#include "ota/agent.hpp"
#include "ota/core/loopback_transport.hpp"
#include "ota/file_device.hpp"
#include "ota/v1/state.pb.h"
#include "state_machine.hpp"

namespace ota::agent_test {

namespace v1 = ::ota::v1;
using agent_impl::Action;
using agent_impl::Event;

inline constexpr std::chrono::seconds kDeadline{5};
inline constexpr int64_t kStartTime = 1'700'000'000;  // unix seconds on the rig's clock
inline constexpr uint32_t kChunk = 4096;
inline constexpr const char* kEcu = "ecu-a";

// A directory of its own under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An image: its bytes and what a Target says of it.
struct Image {
  std::string version;
  std::string bytes;
  std::string sha256;  // raw 32 bytes
};
Image make_image(const std::string& version, size_t size, uint32_t seed);

// The content of a file ("" when it cannot be read).
std::string file_content(const std::string& path);

// The event a command is for the transition table.
Event event_of(const v1::Command& cmd);

// A raw target for `image`.
v1::Target raw_target(const Image& image);

// A FileDevice with faults on cue, a record of its calls ("activate B", "rollback A", ...), and
// copies of the agent's state file taken on entry of a call: what a kill at that moment leaves.
class TestDevice : public agent::FileDevice {
 public:
  TestDevice(const TempDir& dir, uint64_t bank_size);
  ~TestDevice() override;

  Status finish_install(agent::Bank bank, const agent::ImageInfo& image) override;
  Status activate(agent::Bank bank, const agent::ImageInfo& image) override;
  Status health_check(agent::Bank bank, std::chrono::milliseconds timeout) override;
  Status commit(agent::Bank bank) override;
  Status rollback(agent::Bank previous) override;
  std::vector<agent::Dtc> read_dtcs() override;
  Status clear_dtcs(const std::vector<uint32_t>& codes) override;

  // Calls of `what` ("activate", "health_check", ...) fail with `st` from now on (OK: succeed).
  void fail(const std::string& what, Status st);
  // health_check blocks until release_health(); release_health() also waits until every blocked
  // check has returned.
  void hang_health();
  void release_health();
  // On entry of `what`, the file at `path` is copied (once).
  void snapshot_at(const std::string& what, const std::string& path);
  std::optional<std::string> snapshot() const;
  std::vector<std::string> calls() const;
  std::vector<agent::Dtc> dtcs;  // what read_dtcs returns (set before the agent starts)

 private:
  Status enter(const std::string& what, const std::string& detail);

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable health_changed_;
  std::map<std::string, Status> faults_;
  std::vector<std::string> calls_;
  bool hang_health_ = false;
  int health_running_ = 0;
  std::string snapshot_call_, snapshot_path_;
  std::optional<std::string> snapshot_;
  std::vector<uint32_t> cleared_;
};

struct Transition {
  Event event;
  Action action;
  v1::Phase before;
  v1::Phase after;
};

class AgentRig {
 public:
  AgentRig();
  ~AgentRig();

  TempDir dir;
  std::shared_ptr<LoopbackBroker> broker = std::make_shared<LoopbackBroker>();
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(kStartTime);
  TestDevice device;
  agent::AgentConfig config;  // adjust before start()
  Image base;                 // the factory image in bank A
  Image next;                 // the update

  // Starts the agent; REQUIREs OK and waits for its start and connected transitions.
  void start();
  // The start() status, without the REQUIRE (and without waiting when it fails).
  Status try_start();
  void stop();
  void restart() {
    stop();
    start();
  }
  std::string state_path() const { return config.state_dir + "/agent-state.pb"; }

  // ---- the client's side
  // Sends a command (a correlation id, the protocol version and a campaign id are added unless set)
  // and returns its correlation id, without waiting.
  std::string send(v1::Command cmd);
  // Sends a command and waits for its transition and its Result.
  v1::Result call(v1::Command cmd);
  v1::Result start_transfer(const Image& image, const std::string& transfer_id, uint32_t chunk_size = kChunk);
  v1::Result install(const std::string& transfer_id);
  v1::Result activate(const std::string& transfer_id, uint32_t health_timeout_ms = 0);
  v1::Result commit(const std::string& transfer_id);
  v1::Result rollback(const std::string& transfer_id);
  v1::Result cancel(const std::string& transfer_id);
  // Sends one chunk and waits for its transition; `damage` flips a byte after the CRC is taken.
  void send_chunk(const Image& image, const std::string& transfer_id, uint64_t offset,
                  uint32_t chunk_size = kChunk, bool damage = false);
  // Sends the payload's chunks from `from` to the end and returns the last ack.
  v1::ChunkAck send_payload(const Image& image, const std::string& transfer_id, uint64_t from = 0);

  // Brings a fresh agent to `phase` (IDLE, TRANSFER with one chunk received and durable, STAGED,
  // TRIAL or DONE) with transfer "t1" of `next`.
  void reach(v1::Phase phase);

  // ---- what the agent did
  size_t transitions_seen() const;
  // The first transition after the first `mark` ones whose event is `event`.
  Transition wait_transition(Event event, size_t mark);
  const Transition& last_transition() const;
  size_t acks_seen() const;
  // Hellos the agent itself published (its Will excluded) since `mark` (a hellos_seen() value):
  // waits for the first with a deadline, REQUIREs it.
  size_t hellos_seen() const;
  v1::Hello wait_hello(size_t mark);
  // The acks after the first `mark` ones, once there is at least one.
  std::vector<v1::ChunkAck> wait_acks(size_t mark);
  std::optional<v1::Result> result_of(const std::string& correlation_id);
  v1::AgentDiskState disk() const;  // read from the state file
  v1::Hello hello() const;          // the retained hello
  v1::AgentState state() const;     // the retained state

 private:
  void complete(v1::Command* cmd);
  void record(const TransportMessage& m);
  void on_transition(const agent_impl::Rule& rule, v1::Phase before, v1::Phase after);

  std::unique_ptr<Transport> client_;
  std::unique_ptr<agent::Agent> agent_;
  uint64_t next_correlation_ = 1;

  mutable std::mutex seen_mu_;  // guards the three records below
  std::condition_variable seen_changed_;
  std::vector<Transition> transitions_;
  std::vector<v1::ChunkAck> acks_;
  std::vector<v1::Hello> hellos_;
  std::map<std::string, v1::Result> results_;
};

}  // namespace ota::agent_test

namespace ota::agent_test {

// The row an event took, checked against its row of kRules: the action, the phase it arrived in,
// the answer on success (`result`: the command's Result, null for other events; `acks`: the acks the
// event produced), the phase after it, and that the state file holds that phase too.
void check_row(AgentRig& rig, const Transition& t, Event event, Action action, v1::Phase from,
               const v1::Result* result, const std::vector<v1::ChunkAck>& acks);

}  // namespace ota::agent_test
