#include "vehicle.hpp"

#include <stdexcept>

#include "campaign/journal.hpp"
#include "ota/core/file.hpp"
#include "ota/core/sha256.hpp"
#include "ota/core/topics.hpp"

namespace ota::test {
namespace {

constexpr uint32_t kChunkSize = 1024;
constexpr size_t kImageSize = 2 * kChunkSize + 300;  // three chunks, the last one short

std::string image_of(const std::string& ecu_id, const std::string& version) {
  std::string out;
  while (out.size() < kImageSize) out += ecu_id + " runs " + version + "; ";
  out.resize(kImageSize);
  return out;
}

std::string digest(const std::string& bytes) {
  Digest d = Sha256::of(bytes);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

sim::TempDir make_dir() {
  auto dir = sim::TempDir::create("ota-client-test-");
  if (!dir) throw std::runtime_error(dir.status().to_string());
  return std::move(*dir);
}

class FixedConditions : public client::VehicleStateSource {
 public:
  explicit FixedConditions(v1::VehicleConditions c) : c_(std::move(c)) {}
  Result<v1::VehicleConditions> read() override { return c_; }

 private:
  v1::VehicleConditions c_;
};

class ScriptedConsent : public client::ConsentProvider {
 public:
  explicit ScriptedConsent(std::vector<client::ConsentAnswer> answers) : answers_(std::move(answers)) {}
  client::ConsentAnswer ask(const v1::Campaign&) override {
    if (answers_.empty()) return client::ConsentAnswer{};
    return answers_[std::min(next_++, answers_.size() - 1)];
  }

 private:
  std::vector<client::ConsentAnswer> answers_;
  size_t next_ = 0;
};

v1::GroupDecision decision_for(const v1::Command& cmd) {
  switch (cmd.body_case()) {
    case v1::Command::kCommit:
      return v1::GROUP_DECISION_COMMIT;
    case v1::Command::kRollback:
      return v1::GROUP_DECISION_ROLLBACK;
    case v1::Command::kCancel:
      return v1::GROUP_DECISION_CANCEL;
    default:
      return v1::GROUP_DECISION_UNDECIDED;
  }
}

}  // namespace

std::chrono::steady_clock::time_point InstantClock::now() {
  return std::chrono::steady_clock::time_point() + std::chrono::milliseconds(elapsed_ms_.load());
}

void InstantClock::sleep_for(std::chrono::milliseconds duration) { elapsed_ms_ += duration.count(); }

// The client's connection, which a cut turns into a dead process's: publishes go nowhere.
class ClientProcess::CuttableTransport : public Transport {
 public:
  explicit CuttableTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}
  void cut() {
    std::lock_guard<std::mutex> lock(mu_);
    cut_ = true;
  }
  void on_message(MessageHandler handler) override { inner_->on_message(std::move(handler)); }
  void on_connection(ConnectionHandler handler) override { inner_->on_connection(std::move(handler)); }
  Status connect(std::chrono::milliseconds timeout) override { return inner_->connect(timeout); }
  Status subscribe(const std::string& filter, int qos) override { return inner_->subscribe(filter, qos); }
  Status publish(const std::string& topic, const void* data, size_t n, int qos, bool retain) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (cut_) return Status(Code::kUnavailable, "the client process is gone");
    return inner_->publish(topic, data, n, qos, retain);
  }
  Status flush(std::chrono::milliseconds timeout) override { return inner_->flush(timeout); }
  void disconnect(std::chrono::milliseconds timeout) override { inner_->disconnect(timeout); }
  bool connected() const override { return inner_->connected(); }

 private:
  std::unique_ptr<Transport> inner_;
  std::mutex mu_;  // a publish under way finishes before a cut takes effect
  bool cut_ = false;
};

ClientProcess::ClientProcess(TestVehicle& vehicle, const std::string& client_id,
                             client::RunnerOptions options)
    : vehicle_(vehicle) {
  TransportOptions topts;
  topts.client_id = client_id;
  transport_ = std::make_unique<CuttableTransport>(make_loopback_transport(vehicle.broker_, topts));
  directory_ = std::make_unique<client::AgentDirectory>(*transport_);
  transport_->on_message([this](TransportMessage&& m) { directory_->on_message(m); });
  Status st = transport_->connect(std::chrono::seconds(5));
  if (st.is_ok()) st = transport_->subscribe(topics::kAllAgentsUp, 1);
  if (!st.is_ok()) throw std::runtime_error(st.to_string());
  options.before_journal_write = [this](const v1::CampaignJournal& next) { return before_write(next); };
  conditions_ = std::make_unique<FixedConditions>(vehicle.conditions);
  consent_ = std::make_unique<ScriptedConsent>(vehicle.consent_answers);
  runner_ = std::make_unique<client::CampaignRunner>(*directory_, *transport_, *conditions_, *consent_,
                                                     std::move(options));
}

ClientProcess::~ClientProcess() {
  runner_.reset();
  transport_->disconnect(std::chrono::seconds(1));  // no callback into the directory after this
}

void ClientProcess::cut_at_write(int n, bool lands) {
  cut_at_ = n;
  cut_lands_ = lands;
}

Result<v1::VehicleReport> ClientProcess::run(const v1::Campaign& campaign) { return runner_->run(campaign); }

// Runs with the journal's lock held, on whichever runner thread writes.
Status ClientProcess::before_write(const v1::CampaignJournal& next) {
  if (cut_) return Status(Code::kAborted, "the client process is gone");
  const int n = ++writes_;
  if (n == cut_at_) {
    transport_->cut();
    cut_ = true;
    runner_->cancel();  // only to end the dead runner sooner: nothing it does is seen any more
    if (!cut_lands_) return Status(Code::kAborted, "the client process died before this write");
  }
  return vehicle_.check_landing(next);
}

TestVehicle::TestVehicle(std::vector<EcuSpec> ecus, std::vector<uint32_t> atomic_groups)
    : dir_(make_dir()), journal_path_(dir_.file("campaign-journal.pb")) {
  conditions.set_parked(true);
  conditions.set_ignition_off(true);
  conditions.set_battery_soc_percent(90);
  campaign_.set_campaign_id("test-campaign");
  campaign_.set_vin("TESTVIN");
  campaign_.set_chunk_size(kChunkSize);
  for (uint32_t g : atomic_groups) {
    auto* policy = campaign_.add_groups();
    policy->set_group(g);
    policy->set_atomic(true);
  }
  for (const auto& spec : ecus) {
    const std::string old_version = "1.0", new_version = spec.on_target_already ? "1.0" : "2.0";
    old_versions_[spec.id] = old_version;
    new_versions_[spec.id] = new_version;
    const std::string image = image_of(spec.id, new_version);
    const std::string path = dir_.file(spec.id + "-" + new_version + ".bin");
    Status st = atomic_write_file(path, image);
    if (!st.is_ok()) throw std::runtime_error(st.to_string());
    auto* t = campaign_.add_targets();
    t->set_ecu_id(spec.id);
    t->set_version(new_version);
    t->set_size(image.size());
    t->set_sha256(digest(image));
    t->set_group(spec.group);
    t->add_resolves_dtcs(0xC14187);
    t->mutable_full()->set_uri(path);
    t->mutable_full()->set_size(image.size());
    t->mutable_full()->set_sha256(digest(image));

    TransportOptions topts;
    topts.client_id = "agent-" + spec.id;
    auto agent = std::make_unique<FakeAgent>(make_loopback_transport(broker_, topts), spec.id, old_version,
                                             image_of(spec.id, old_version), spec.script);
    agent->observe_commands(
        [this](const std::string& ecu, const v1::Command& cmd) { check_command(ecu, cmd); });
    st = agent->start();
    if (!st.is_ok()) throw std::runtime_error(st.to_string());
    agents_[spec.id] = std::move(agent);
  }
}

TestVehicle::~TestVehicle() = default;

FakeAgent& TestVehicle::agent(const std::string& ecu_id) { return *agents_.at(ecu_id); }

client::RunnerOptions TestVehicle::options() {
  client::RunnerOptions o;
  o.journal_path = journal_path_;
  o.agent_timeout = std::chrono::seconds(5);
  o.stall_timeout = std::chrono::seconds(5);
  o.progress_interval = std::chrono::milliseconds(0);
  o.clock = &clock_;
  o.on_status = [this](const v1::CampaignStatus& s) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_.push_back(s);
  };
  return o;
}

std::unique_ptr<ClientProcess> TestVehicle::client() { return client(options()); }

std::unique_ptr<ClientProcess> TestVehicle::client(client::RunnerOptions options) {
  return std::make_unique<ClientProcess>(*this, "ota-client-" + std::to_string(++clients_),
                                         std::move(options));
}

v1::CampaignJournal TestVehicle::journal() const {
  v1::CampaignJournal j;
  auto bytes = read_small_file(journal_path_, client::kMaxJournalBytes);
  if (bytes) (void)j.ParseFromString(*bytes);
  return j;
}

std::vector<std::string> TestVehicle::violations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return violations_;
}

std::vector<v1::CampaignStatus> TestVehicle::statuses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return statuses_;
}

void TestVehicle::violation(const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  violations_.push_back(what);
}

// On an agent's thread: a Commit, Rollback or Cancel must find its group's decision on disk.
void TestVehicle::check_command(const std::string& ecu_id, const v1::Command& cmd) {
  const v1::GroupDecision wanted = decision_for(cmd);
  if (wanted == v1::GROUP_DECISION_UNDECIDED) return;
  const v1::CampaignJournal j = journal();
  uint32_t group = 0;
  for (const auto& t : j.campaign().targets()) {
    if (t.ecu_id() == ecu_id) group = t.group();
  }
  for (const auto& g : j.groups()) {
    if (g.group() == group && client::recorded_decision(g) == wanted) return;
  }
  violation(ecu_id + " received " + client::decision_name(wanted) + " before the journal held that decision");
}

// With the journal's lock held: a decision that landed never changes in a later write that lands.
Status TestVehicle::check_landing(const v1::CampaignJournal& next) {
  for (const auto& g : next.groups()) {
    const v1::GroupDecision d = client::recorded_decision(g);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = landed_decisions_.find(g.group());
    if (it == landed_decisions_.end()) {
      if (d != v1::GROUP_DECISION_UNDECIDED) landed_decisions_[g.group()] = d;
    } else if (d != it->second) {
      violations_.push_back("group " + std::to_string(g.group()) + ": decision " +
                            client::decision_name(it->second) + " journaled, then " +
                            client::decision_name(d));
    }
  }
  return Status::ok();
}

std::vector<std::string> TestVehicle::inconsistencies() const {
  std::vector<std::string> out;
  const v1::CampaignJournal j = journal();
  std::map<uint32_t, v1::GroupDecision> decisions;
  for (const auto& g : j.groups()) decisions[g.group()] = client::recorded_decision(g);
  for (const auto& t : j.campaign().targets()) {
    const auto s = agents_.at(t.ecu_id())->snapshot();
    const std::string who = t.ecu_id() + " (group " + std::to_string(t.group()) + ", decision " +
                            client::decision_name(decisions[t.group()]) + "): ";
    if (s.trial) out.push_back(who + "left on trial");
    const std::string& old = old_versions_.at(t.ecu_id());
    switch (decisions[t.group()]) {
      case v1::GROUP_DECISION_COMMIT:
        for (const auto& e : j.ecus()) {
          if (e.ecu_id() == t.ecu_id() && e.report().result() == v1::SUCCESS &&
              s.active_version != t.version())
            out.push_back(who + "reported SUCCESS but runs " + s.active_version);
        }
        break;
      case v1::GROUP_DECISION_ROLLBACK:
      case v1::GROUP_DECISION_CANCEL:
        if (s.active_version != old) out.push_back(who + "runs " + s.active_version + ", not its old " + old);
        if (s.phase != v1::PHASE_IDLE) out.push_back(who + "not idle");
        break;
      default:
        out.push_back(who + "no decision");
    }
  }
  return out;
}

}  // namespace ota::test
