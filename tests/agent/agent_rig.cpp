#include "agent_rig.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <random>

#include <unistd.h>

#include "ota/core/codec.hpp"
#include "ota/core/crc32c.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"

namespace ota::agent_test {

namespace {

std::string raw(const Digest& d) { return std::string(reinterpret_cast<const char*>(d.data()), d.size()); }

std::string topic(topics::Leaf leaf) { return topics::ecu(kEcu, leaf); }

// $TMPDIR, else /dev/shm when there is one: these tests read what the agent wrote, they do not
// measure how long its fsyncs take, and on a disk those are most of their time.
std::string temp_root() {
  const char* tmp = std::getenv("TMPDIR");
  if (tmp && *tmp) return tmp;
  if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
  return "/tmp";
}

}  // namespace

// ------------------------------------------------------------------------------------------- TempDir

TempDir::TempDir() {
  std::string pattern = temp_root() + "/ota-agent-unit-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp " + pattern + " failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// --------------------------------------------------------------------------------------------- images

Image make_image(const std::string& version, size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  Image img;
  img.version = version;
  img.bytes.resize(size);
  for (char& c : img.bytes) c = static_cast<char>(rng() & 0xff);
  img.sha256 = raw(Sha256::of(img.bytes));
  return img;
}

v1::Target raw_target(const Image& image) {
  v1::Target t;
  t.set_version(image.version);
  t.set_size(image.bytes.size());
  t.set_sha256(image.sha256);
  t.set_encoding(v1::PAYLOAD_ENCODING_RAW);
  t.set_payload_size(image.bytes.size());
  t.set_payload_sha256(image.sha256);
  t.set_hardware_id("hw-1");
  return t;
}

std::string file_content(const std::string& path) {
  auto bytes = read_small_file(path);
  return bytes ? *bytes : std::string();
}

// ----------------------------------------------------------------------------------------- TestDevice

TestDevice::TestDevice(const TempDir& dir, uint64_t bank_size)
    : FileDevice(dir.file("bank_a.img"), dir.file("bank_b.img"), dir.file("boot"), bank_size) {}

TestDevice::~TestDevice() { release_health(); }

Status TestDevice::enter(const std::string& what, const std::string& detail) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.push_back(detail.empty() ? what : what + " " + detail);
  if (!snapshot_ && what == snapshot_call_) {
    auto bytes = read_small_file(snapshot_path_);
    if (bytes) snapshot_ = *bytes;
  }
  auto fault = faults_.find(what);
  return fault == faults_.end() ? Status::ok() : fault->second;
}

Status TestDevice::finish_install(agent::Bank bank, const agent::ImageInfo& image) {
  OTA_RETURN_IF_ERROR(enter("finish_install", agent::bank_name(bank)));
  return FileDevice::finish_install(bank, image);
}

Status TestDevice::activate(agent::Bank bank, const agent::ImageInfo& image) {
  OTA_RETURN_IF_ERROR(enter("activate", agent::bank_name(bank)));
  return FileDevice::activate(bank, image);
}

Status TestDevice::health_check(agent::Bank bank, std::chrono::milliseconds) {
  Status st = enter("health_check", agent::bank_name(bank));
  std::unique_lock<std::mutex> lock(mu_);
  ++health_running_;
  health_changed_.wait(lock, [this] { return !hang_health_; });
  --health_running_;
  health_changed_.notify_all();
  return st;  // touches nothing of the device once the lock is released
}

Status TestDevice::commit(agent::Bank bank) { return enter("commit", agent::bank_name(bank)); }

Status TestDevice::rollback(agent::Bank previous) {
  OTA_RETURN_IF_ERROR(enter("rollback", agent::bank_name(previous)));
  return FileDevice::rollback(previous);
}

std::vector<agent::Dtc> TestDevice::read_dtcs() {
  (void)enter("read_dtcs", "");
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<agent::Dtc> out;
  for (const auto& d : dtcs) {
    bool cleared = false;
    for (uint32_t c : cleared_) cleared |= c == d.code;
    if (!cleared) out.push_back(d);
  }
  return out;
}

Status TestDevice::clear_dtcs(const std::vector<uint32_t>& codes) {
  OTA_RETURN_IF_ERROR(enter("clear_dtcs", ""));
  std::lock_guard<std::mutex> lock(mu_);
  if (codes.empty()) {
    for (const auto& d : dtcs) cleared_.push_back(d.code);
  } else {
    cleared_.insert(cleared_.end(), codes.begin(), codes.end());
  }
  return Status::ok();
}

void TestDevice::fail(const std::string& what, Status st) {
  std::lock_guard<std::mutex> lock(mu_);
  if (st.is_ok()) {
    faults_.erase(what);
  } else {
    faults_[what] = std::move(st);
  }
}

void TestDevice::hang_health() {
  std::lock_guard<std::mutex> lock(mu_);
  hang_health_ = true;
}

void TestDevice::release_health() {
  std::unique_lock<std::mutex> lock(mu_);
  hang_health_ = false;
  health_changed_.notify_all();
  health_changed_.wait_for(lock, kDeadline, [this] { return health_running_ == 0; });
}

void TestDevice::snapshot_at(const std::string& what, const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_call_ = what;
  snapshot_path_ = path;
  snapshot_.reset();
}

std::optional<std::string> TestDevice::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

std::vector<std::string> TestDevice::calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

// ------------------------------------------------------------------------------------------- AgentRig

AgentRig::AgentRig() : device(dir, 64 * 1024) {
  base = make_image("1.0.0", 20000, 1);
  next = make_image("2.0.0", 3 * kChunk + 1808, 2);
  REQUIRE(atomic_write_file(dir.file("bank_a.img"), base.bytes).is_ok());
  config.ecu_id = kEcu;
  config.hardware_id = "hw-1";
  config.broker_uri = "loopback://broker";
  config.state_dir = dir.file("state");
  config.factory_version = base.version;
  config.factory_image_size = base.bytes.size();
  config.durable_interval_bytes = kChunk;  // a checkpoint after every chunk
  config.health_timeout = std::chrono::milliseconds(10000);

  // What the agent publishes is recorded as the broker takes it, on the agent's own thread: by the
  // time a transition is reported, everything its action published is here.
  broker->set_interceptor([this](const std::string& from, const TransportMessage& m) {
    if (from == std::string("agent-") + kEcu) record(m);
    return LoopbackBroker::Action::kPass;
  });
  TransportOptions o;
  o.client_id = "test-client";
  client_ = make_loopback_transport(broker, o);
  REQUIRE(client_->connect(kDeadline).is_ok());
}

AgentRig::~AgentRig() {
  agent_.reset();
  device.release_health();  // a health check the agent gave up on returns before the device goes
  if (client_) client_->disconnect(std::chrono::seconds(1));
  broker->set_interceptor(nullptr);
}

Status AgentRig::try_start() {
  agent_impl::AgentSeams seams;
  auto b = broker;
  seams.make_transport = [b](TransportOptions o) {
    o.reconnect_min = std::chrono::milliseconds(1);
    return make_loopback_transport(b, std::move(o));
  };
  seams.clock = clock;
  seams.on_transition = [this](const agent_impl::Rule& r, v1::Phase before, v1::Phase after) {
    on_transition(r, before, after);
  };
  agent_ = agent_impl::AgentFactory::make(config, device, std::move(seams));
  return agent_->start();
}

void AgentRig::start() {
  const size_t mark = transitions_seen();
  Status st = try_start();
  INFO(st.to_string());
  REQUIRE(st.is_ok());
  wait_transition(Event::kStart, mark);
  wait_transition(Event::kConnected, mark);
}

void AgentRig::stop() {
  if (agent_) agent_->stop();
  agent_.reset();
}

void AgentRig::record(const TransportMessage& m) {
  std::string ecu;
  topics::Leaf leaf = topics::Leaf::kUnknown;
  if (!topics::parse_ecu_topic(m.topic, &ecu, &leaf)) return;
  std::lock_guard<std::mutex> lock(seen_mu_);
  if (leaf == topics::Leaf::kResult) {
    v1::Result r;
    if (r.ParseFromString(m.payload)) results_[r.correlation_id()] = r;
  } else if (leaf == topics::Leaf::kAck) {
    v1::ChunkAck a;
    if (a.ParseFromString(m.payload)) acks_.push_back(a);
  } else if (leaf == topics::Leaf::kHello) {
    v1::Hello h;
    if (h.ParseFromString(m.payload)) hellos_.push_back(h);
  }
  seen_changed_.notify_all();
}

size_t AgentRig::hellos_seen() const {
  std::lock_guard<std::mutex> lock(seen_mu_);
  return hellos_.size();
}

v1::Hello AgentRig::wait_hello(size_t mark) {
  std::unique_lock<std::mutex> lock(seen_mu_);
  const bool seen = seen_changed_.wait_for(lock, kDeadline, [&] { return hellos_.size() > mark; });
  INFO("waiting for a hello from the agent");
  REQUIRE(seen);
  return hellos_[mark];
}

void AgentRig::on_transition(const agent_impl::Rule& r, v1::Phase before, v1::Phase after) {
  std::lock_guard<std::mutex> lock(seen_mu_);
  transitions_.push_back({r.event, r.action, before, after});
  seen_changed_.notify_all();
}

size_t AgentRig::transitions_seen() const {
  std::lock_guard<std::mutex> lock(seen_mu_);
  return transitions_.size();
}

Transition AgentRig::wait_transition(Event event, size_t mark) {
  std::unique_lock<std::mutex> lock(seen_mu_);
  std::optional<Transition> found;
  seen_changed_.wait_for(lock, kDeadline, [&] {
    for (size_t i = mark; i < transitions_.size(); ++i) {
      if (transitions_[i].event == event) {
        found = transitions_[i];
        return true;
      }
    }
    return false;
  });
  INFO("waiting for a " << agent_impl::event_name(event) << " transition");
  REQUIRE(found);
  return *found;
}

const Transition& AgentRig::last_transition() const {
  std::lock_guard<std::mutex> lock(seen_mu_);
  REQUIRE(!transitions_.empty());
  return transitions_.back();
}

size_t AgentRig::acks_seen() const {
  std::lock_guard<std::mutex> lock(seen_mu_);
  return acks_.size();
}

std::vector<v1::ChunkAck> AgentRig::wait_acks(size_t mark) {
  std::unique_lock<std::mutex> lock(seen_mu_);
  seen_changed_.wait_for(lock, kDeadline, [&] { return acks_.size() > mark; });
  return std::vector<v1::ChunkAck>(acks_.begin() + static_cast<std::ptrdiff_t>(std::min(mark, acks_.size())),
                                   acks_.end());
}

std::optional<v1::Result> AgentRig::result_of(const std::string& correlation_id) {
  std::unique_lock<std::mutex> lock(seen_mu_);
  seen_changed_.wait_for(lock, kDeadline, [&] { return results_.count(correlation_id) > 0; });
  auto it = results_.find(correlation_id);
  if (it == results_.end()) return std::nullopt;
  return it->second;
}

Event event_of(const v1::Command& cmd) {
  if (cmd.protocol().major() != 1) return Event::kOtherMajor;
  switch (cmd.body_case()) {
    case v1::Command::kStartTransfer:
      return Event::kStartTransfer;
    case v1::Command::kInstall:
      return Event::kInstall;
    case v1::Command::kActivate:
      return Event::kActivate;
    case v1::Command::kCommit:
      return Event::kCommit;
    case v1::Command::kRollback:
      return Event::kRollback;
    case v1::Command::kCancel:
      return Event::kCancel;
    case v1::Command::kGetInventory:
      return Event::kGetInventory;
    case v1::Command::kReadDtcs:
      return Event::kReadDtcs;
    case v1::Command::kClearDtcs:
      return Event::kClearDtcs;
    default:
      return Event::kOtherCommand;
  }
}

void AgentRig::complete(v1::Command* cmd) {
  if (cmd->correlation_id().empty()) {
    cmd->set_correlation_id(std::string(kEcu) + "/" + std::to_string(next_correlation_++));
  }
  if (!cmd->has_protocol()) codec::set_protocol(cmd->mutable_protocol());
  if (cmd->campaign_id().empty()) cmd->set_campaign_id("c1");
}

std::string AgentRig::send(v1::Command cmd) {
  complete(&cmd);
  REQUIRE(client_->publish(topic(topics::Leaf::kCmd), cmd.SerializeAsString(), 1, false).is_ok());
  return cmd.correlation_id();
}

v1::Result AgentRig::call(v1::Command cmd) {
  complete(&cmd);
  const size_t mark = transitions_seen();
  const std::string id = send(cmd);
  wait_transition(event_of(cmd), mark);
  auto r = result_of(id);
  INFO("waiting for the result of " << id);
  REQUIRE(r);
  return *r;
}

v1::Result AgentRig::start_transfer(const Image& image, const std::string& transfer_id, uint32_t chunk_size) {
  v1::Command cmd;
  auto* st = cmd.mutable_start_transfer();
  st->set_transfer_id(transfer_id);
  *st->mutable_target() = raw_target(image);
  st->set_chunk_size(chunk_size);
  st->set_window(4);
  return call(cmd);
}

v1::Result AgentRig::install(const std::string& transfer_id) {
  v1::Command cmd;
  cmd.mutable_install()->set_transfer_id(transfer_id);
  return call(cmd);
}

v1::Result AgentRig::activate(const std::string& transfer_id, uint32_t health_timeout_ms) {
  v1::Command cmd;
  cmd.mutable_activate()->set_transfer_id(transfer_id);
  cmd.mutable_activate()->set_health_timeout_ms(health_timeout_ms);
  return call(cmd);
}

v1::Result AgentRig::commit(const std::string& transfer_id) {
  v1::Command cmd;
  cmd.mutable_commit()->set_transfer_id(transfer_id);
  return call(cmd);
}

v1::Result AgentRig::rollback(const std::string& transfer_id) {
  v1::Command cmd;
  cmd.mutable_rollback()->set_transfer_id(transfer_id);
  cmd.mutable_rollback()->set_reason("test");
  return call(cmd);
}

v1::Result AgentRig::cancel(const std::string& transfer_id) {
  v1::Command cmd;
  cmd.mutable_cancel()->set_transfer_id(transfer_id);
  return call(cmd);
}

void AgentRig::send_chunk(const Image& image, const std::string& transfer_id, uint64_t offset,
                          uint32_t chunk_size, bool damage) {
  v1::Chunk c;
  c.set_transfer_id(transfer_id);
  c.set_offset(offset);
  std::string data = image.bytes.substr(offset, chunk_size);
  c.set_crc32c(crc32c(data.data(), data.size()));
  if (damage) data[0] = static_cast<char>(data[0] ^ 1);
  c.set_data(data);
  c.set_last(offset + data.size() == image.bytes.size());
  const size_t mark = transitions_seen();
  REQUIRE(client_->publish(topic(topics::Leaf::kData), c.SerializeAsString(), 1, false).is_ok());
  wait_transition(Event::kChunk, mark);
}

v1::ChunkAck AgentRig::send_payload(const Image& image, const std::string& transfer_id, uint64_t from) {
  const size_t mark = acks_seen();
  size_t chunks = 0;
  for (uint64_t off = from; off < image.bytes.size(); off += kChunk) {
    send_chunk(image, transfer_id, off);
    ++chunks;
  }
  std::vector<v1::ChunkAck> acks;
  {
    std::unique_lock<std::mutex> lock(seen_mu_);
    seen_changed_.wait_for(lock, kDeadline, [&] { return acks_.size() >= mark + chunks; });
    acks.assign(acks_.begin() + static_cast<std::ptrdiff_t>(mark), acks_.end());
  }
  REQUIRE(acks.size() == chunks);
  for (const auto& a : acks) {
    INFO(a.error().message());
    CHECK(a.error().code() == v1::ERROR_CODE_OK);
  }
  return acks.back();
}

void AgentRig::reach(v1::Phase phase) {
  start();
  if (phase == v1::PHASE_IDLE) return;
  REQUIRE(start_transfer(next, "t1").outcome() == v1::OUTCOME_OK);
  if (phase == v1::PHASE_TRANSFER) {
    send_chunk(next, "t1", 0);
    // The same StartTransfer again waits for the checkpoint running beside the transfer: the state
    // file then stays as it is until the next event.
    REQUIRE(start_transfer(next, "t1").transfer_ready().resume_offset() == kChunk);
    return;
  }
  REQUIRE(send_payload(next, "t1").next_offset() == next.bytes.size());
  REQUIRE(install("t1").outcome() == v1::OUTCOME_OK);
  if (phase == v1::PHASE_STAGED) return;
  REQUIRE(activate("t1").outcome() == v1::OUTCOME_OK);
  if (phase == v1::PHASE_TRIAL) return;
  REQUIRE(commit("t1").outcome() == v1::OUTCOME_OK);
  REQUIRE(phase == v1::PHASE_DONE);
}

v1::AgentDiskState AgentRig::disk() const {
  auto bytes = read_small_file(state_path());
  REQUIRE(bytes.is_ok());
  v1::AgentDiskState s;
  REQUIRE(s.ParseFromString(*bytes));
  return s;
}

v1::Hello AgentRig::hello() const {
  auto bytes = broker->retained(topic(topics::Leaf::kHello));
  REQUIRE(bytes);
  v1::Hello h;
  REQUIRE(h.ParseFromString(*bytes));
  return h;
}

v1::AgentState AgentRig::state() const {
  auto bytes = broker->retained(topic(topics::Leaf::kState));
  REQUIRE(bytes);
  v1::AgentState s;
  REQUIRE(s.ParseFromString(*bytes));
  return s;
}

}  // namespace ota::agent_test

namespace ota::agent_test {

namespace {

const agent_impl::Rule* row_of(Event event, Action action) {
  for (const auto& r : agent_impl::rules()) {
    if (r.event == event && r.action == action) return &r;
  }
  return nullptr;
}

v1::Outcome outcome_of(agent_impl::Answer a) {
  switch (a) {
    case agent_impl::Answer::kOk:
      return v1::OUTCOME_OK;
    case agent_impl::Answer::kRefused:
      return v1::OUTCOME_REFUSED;
    case agent_impl::Answer::kRolledBack:
      return v1::OUTCOME_ROLLED_BACK;
    default:
      return v1::OUTCOME_UNSPECIFIED;
  }
}

}  // namespace

void check_row(AgentRig& rig, const Transition& t, Event event, Action action, v1::Phase from,
               const v1::Result* result, const std::vector<v1::ChunkAck>& acks) {
  const agent_impl::Rule* row = row_of(event, action);
  REQUIRE(row != nullptr);
  INFO("row " << agent_impl::event_name(event) << "/" << agent_impl::action_name(action) << " from "
              << agent_impl::phase_label(from));
  CHECK(t.event == event);
  CHECK(agent_impl::action_name(t.action) == std::string(agent_impl::action_name(action)));
  CHECK(agent_impl::phase_label(t.before) == std::string(agent_impl::phase_label(from)));
  CHECK(row->from.contains(from));
  INFO("after: " << agent_impl::phase_label(t.after));
  CHECK(row->to.allows(t.before, t.after));
  switch (row->answer) {
    case agent_impl::Answer::kNone:
      CHECK(acks.empty());
      if (event < Event::kStartTransfer) CHECK(result == nullptr);
      break;
    case agent_impl::Answer::kAck:
      REQUIRE(acks.size() == 1);
      CHECK(acks[0].error().code() == v1::ERROR_CODE_OK);
      break;
    default:
      REQUIRE(result != nullptr);
      INFO(result->error().message());
      CHECK(result->outcome() == outcome_of(row->answer));
      CHECK(agent_impl::at_rest(result->phase()) == t.after);
  }
  // What the agent reports is what survives a restart.
  CHECK(agent_impl::phase_label(agent_impl::at_rest(rig.disk().phase())) ==
        std::string(agent_impl::phase_label(t.after)));
}

}  // namespace ota::agent_test
