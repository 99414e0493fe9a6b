// The Agent: one ECU's side of the OTA protocol (docs/PROTOCOL.md), over a Device the supplier
// writes. This file is the facade and the wiring: configuration, start and stop, the transport.
// The pieces and their threads are laid out in agent_impl.hpp.
#include "ota/agent.hpp"

#include <algorithm>
#include <thread>

#include "agent_impl.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/topics.hpp"
#include "ota/core/version.hpp"

namespace ota::agent {

const char* bank_name(Bank b) { return b == Bank::kA ? "A" : "B"; }
const char* sdk_version() { return ota::kVersion; }
uint32_t protocol_major() { return codec::kProtocolMajor; }

class Agent::Impl : public agent_impl::AgentCore {
 public:
  using AgentCore::AgentCore;
};

Agent::Agent(AgentConfig config, Device& device)
    : impl_(std::make_unique<Impl>(std::move(config), device, agent_impl::AgentSeams{})) {}
Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() = default;
Status Agent::start() { return impl_->start(); }
void Agent::wait() { impl_->wait(); }
void Agent::stop() { impl_->stop(); }
Bank Agent::active_bank() const { return impl_->active_bank(); }
std::string Agent::active_version() const { return impl_->active_version(); }

}  // namespace ota::agent

namespace ota::agent_impl {

namespace {
constexpr const char* kLog = "agent";
}

std::unique_ptr<agent::Agent> AgentFactory::make(agent::AgentConfig config, agent::Device& device,
                                                 AgentSeams seams) {
  return std::unique_ptr<agent::Agent>(
      new agent::Agent(std::make_unique<agent::Agent::Impl>(std::move(config), device, std::move(seams))));
}

AgentCore::AgentCore(agent::AgentConfig cfg, agent::Device& dev, AgentSeams seams)
    : cfg_(std::move(cfg)),
      dev_(dev),
      clock_(seams.clock ? std::move(seams.clock) : std::make_shared<SystemAgentClock>()),
      make_transport_(seams.make_transport ? std::move(seams.make_transport)
                                           : [](const TransportOptions& o) { return make_transport(o); }),
      on_transition_(std::move(seams.on_transition)),
      disk_(cfg_.state_dir + "/agent-state.pb"),
      checks_(cfg_, dev_, *clock_),
      out_(cfg_, dev_, disk_, *clock_),
      receiver_(cfg_, dev_, disk_, out_, cfg_.state_dir + "/payload.part"),
      installer_(cfg_.ecu_id, dev_, disk_, receiver_),
      inbox_([this](const Inbound& m) { handle(m); }) {}

AgentCore::~AgentCore() { stop(); }

Status AgentCore::start() {
  OTA_RETURN_IF_ERROR(check_config());
  OTA_RETURN_IF_ERROR(disk_.claim_directory(cfg_.state_dir));
  OTA_RETURN_IF_ERROR(recover_at_start());
  OTA_RETURN_IF_ERROR(checks_.load_trust_root(cfg_.state_dir));
  OTA_RETURN_IF_ERROR(load_ecu_key());
  OTA_RETURN_IF_ERROR(connect());
  OTA_LOGI(kLog, "%s: serving on %s, active bank %s (%s)", cfg_.ecu_id.c_str(), cfg_.broker_uri.c_str(),
           agent::bank_name(active_bank()), active_version().c_str());
  return Status::ok();
}

void AgentCore::wait() { inbox_.wait_for_stop(); }

void AgentCore::stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  inbox_.stop();
  receiver_.stop_checkpoint_thread();
  if (transport_ && transport_->connected()) {
    out_.publish_hello(false);
    (void)transport_->flush(std::chrono::seconds(2));
    transport_->disconnect(std::chrono::seconds(2));
  }
  transport_.reset();
  disk_.release_directory();
}

Bank AgentCore::active_bank() const {
  return disk_.read([](const v1::AgentDiskState& s) { return active_bank_of(s); });
}

std::string AgentCore::active_version() const {
  return disk_.read([](const v1::AgentDiskState& s) {
    return s.banks_size() == 2 ? active_record(s).version() : std::string();  // empty before start()
  });
}

Status AgentCore::check_config() {
  if (!topics::valid_ecu_id(cfg_.ecu_id)) {
    return Status(Code::kInvalidArgument,
                  "ecu_id '" + cfg_.ecu_id + "' must be 1-64 characters of [A-Za-z0-9_.-]");
  }
  if (cfg_.state_dir.empty()) return Status(Code::kInvalidArgument, "state_dir is required");
  if (cfg_.broker_uri.empty()) return Status(Code::kInvalidArgument, "broker_uri is required");
  if (cfg_.max_chunk_size == 0 || cfg_.max_chunk_size > codec::kMaxChunkSize)
    cfg_.max_chunk_size = codec::kMaxChunkSize;
  return Status::ok();
}

// The start event of the table: the state on disk (or its absence) picks the row.
Status AgentCore::recover_at_start() {
  Status loaded = disk_.load();
  if (!loaded.is_ok() && loaded.code() != Code::kNotFound) return loaded;
  Facts f;
  f.state_file = loaded.is_ok();
  f.phase = at_rest(disk_.view().phase());
  f.trial = disk_.view().trial();
  return run(Event::kStart, f, Input{});
}

Status AgentCore::load_ecu_key() {
  if (cfg_.ecu_key_file.empty()) return Status::ok();
  auto key = trust::PrivateKey::load(cfg_.ecu_key_file);
  if (!key) return key.status().with_context("ECU key");
  out_.set_ecu_key(std::make_unique<trust::PrivateKey>(std::move(*key)));
  return Status::ok();
}

TransportOptions AgentCore::transport_options() const {
  TransportOptions o;
  o.uri = cfg_.broker_uri;
  o.client_id = "agent-" + cfg_.ecu_id;
  o.username = cfg_.ecu_id;
  o.password = cfg_.password;
  if (!cfg_.tls_ca_file.empty()) o.tls = TlsOptions{cfg_.tls_ca_file, cfg_.tls_cert_file, cfg_.tls_key_file};
  o.will =
      WillMessage{topics::ecu(cfg_.ecu_id, Leaf::kHello), out_.hello(false).SerializeAsString(), 1, true};
  return o;
}

Status AgentCore::connect() {
  inbox_.start();
  receiver_.start_checkpoint_thread();
  Status st = connect_with_backoff();
  if (st.is_ok()) st = transport_->subscribe(topics::ecu_down_filter(cfg_.ecu_id), 1);
  if (!st.is_ok()) {
    stop();
    return st;
  }
  subscribed_ = true;
  inbox_.deliver(Inbound{Inbound::Kind::kConnected, {}});
  return Status::ok();
}

// A new transport per attempt: a failed connect leaves no half-open session behind to reuse.
Status AgentCore::connect_once(std::chrono::milliseconds timeout) {
  transport_ = make_transport_(transport_options());
  if (!transport_) return Status(Code::kInternal, "no transport for " + cfg_.broker_uri);
  out_.set_transport(transport_.get());
  transport_->on_message([this](TransportMessage&& m) { on_transport_message(std::move(m)); });
  // The hello says "send me commands": it goes out only once the command topic is subscribed (on
  // a reconnect the transport restores the subscription before it calls back), or a client that
  // answers a new hello at once would lose its command.
  transport_->on_connection([this](bool up) {
    if (up && subscribed_) inbox_.deliver(Inbound{Inbound::Kind::kConnected, {}});
  });
  return transport_->connect(timeout);
}

// The broker may come up after the agent (both started at boot): retry with a backoff doubling
// from kRetryMin to kRetryMax until cfg_.connect_timeout (0: forever). Refused credentials are
// not a matter of time and fail at once.
Status AgentCore::connect_with_backoff() {
  using std::chrono::milliseconds;
  constexpr milliseconds kRetryMin{100}, kRetryMax{5000}, kAttemptMax{10000};
  const auto limit = cfg_.connect_timeout;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  milliseconds backoff = kRetryMin;
  for (int attempt = 1;; ++attempt) {
    milliseconds budget = kAttemptMax;
    if (limit.count() > 0) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      budget = std::clamp(left, milliseconds(1), kAttemptMax);
    }
    OTA_LOGD(kLog, "%s: connecting to %s (attempt %d)", cfg_.ecu_id.c_str(), cfg_.broker_uri.c_str(),
             attempt);
    Status st = connect_once(budget);
    if (st.is_ok()) {
      if (attempt > 1)
        OTA_LOGI(kLog, "%s: connected to %s after %d attempts", cfg_.ecu_id.c_str(), cfg_.broker_uri.c_str(),
                 attempt);
      return st;
    }
    transport_.reset();
    out_.set_transport(nullptr);
    if (st.code() == Code::kRejected || st.code() == Code::kInvalidArgument) {
      return Status(st.code(),
                    st.message() + " (not retried: check ecu_id, password, certificate, broker_uri)");
    }
    milliseconds pause = backoff;
    if (limit.count() > 0) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return Status(Code::kUnavailable, "broker not reachable within " + std::to_string(limit.count()) +
                                              " ms (" + std::to_string(attempt) +
                                              " attempts): " + st.message());
      }
      pause = std::min(pause, left);
    }
    OTA_LOGI(kLog, "%s: broker not reachable (%s); retrying in %lld ms", cfg_.ecu_id.c_str(),
             st.message().c_str(), static_cast<long long>(pause.count()));
    std::this_thread::sleep_for(pause);
    backoff = std::min(backoff * 2, kRetryMax);
  }
}

// The transport's thread: only this ECU's commands and chunks go on.
void AgentCore::on_transport_message(TransportMessage&& m) {
  std::string ecu;
  Leaf leaf = Leaf::kUnknown;
  if (!topics::parse_ecu_topic(m.topic, &ecu, &leaf) || ecu != cfg_.ecu_id) return;
  if (leaf == Leaf::kData) {
    inbox_.deliver(Inbound{Inbound::Kind::kData, std::move(m.payload)});
  } else if (leaf == Leaf::kCmd) {
    inbox_.deliver(Inbound{Inbound::Kind::kCommand, std::move(m.payload)});
  }
}

}  // namespace ota::agent_impl
