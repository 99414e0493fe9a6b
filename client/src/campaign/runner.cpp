// The campaign from start to report: the public CampaignRunner, the group loop, and what every step
// uses (journal writes, status, parallel ECUs, agent calls).
#include "campaign/runner.hpp"

#include <thread>

#include "campaign/report.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/log.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "campaign";

class SteadyRunnerClock : public RunnerClock {
 public:
  std::chrono::steady_clock::time_point now() override { return std::chrono::steady_clock::now(); }
  void sleep_for(std::chrono::milliseconds duration) override { std::this_thread::sleep_for(duration); }
};

}  // namespace

RunnerClock& steady_runner_clock() {
  static SteadyRunnerClock clock;
  return clock;
}

CampaignRunner::CampaignRunner(AgentDirectory& agents, Transport& transport, VehicleStateSource& vehicle,
                               ConsentProvider& consent, RunnerOptions options)
    : impl_(std::make_unique<Impl>(agents, transport, vehicle, consent, std::move(options))) {}

CampaignRunner::~CampaignRunner() = default;

Result<v1::VehicleReport> CampaignRunner::run(const v1::Campaign& campaign) { return impl_->run(campaign); }

void CampaignRunner::cancel() { impl_->cancel(); }

CampaignRunner::Impl::Impl(AgentDirectory& agents, Transport& transport, VehicleStateSource& vehicle,
                           ConsentProvider& consent, RunnerOptions options)
    : agents_(agents),
      transport_(transport),
      vehicle_(vehicle),
      consent_(consent),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : steady_runner_clock()),
      journal_(options_.journal_path, options_.before_journal_write) {}

Result<v1::VehicleReport> CampaignRunner::Impl::run(const v1::Campaign& campaign) {
  OTA_RETURN_IF_ERROR(validate_campaign(campaign));
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    OTA_RETURN_IF_ERROR(journal_.open(campaign));
  }
  if (!journal_.data().finished()) OTA_RETURN_IF_ERROR(execute());
  return journal_.data().report();
}

Status CampaignRunner::Impl::execute() {
  std::vector<std::string> ids;
  for (const auto& t : journal_.campaign().targets()) ids.push_back(t.ecu_id());
  Status online = agents_.wait_online(ids, options_.agent_timeout);
  if (!journal_.data().started()) {
    if (!online.is_ok()) return finish(v1::CAMPAIGN_FAILED, online.message());
    if (auto refusal = admit()) return finish(refusal->result, refusal->reason);
    journal_.data().set_started(true);
    OTA_RETURN_IF_ERROR(save());
  } else if (!online.is_ok()) {
    OTA_LOGW(kLog, "resuming with %s", online.message().c_str());
  }
  const auto budget = options_.campaign_timeout.count() > 0
                          ? options_.campaign_timeout
                          : derived_campaign_timeout(journal_.campaign(), options_.min_rate);
  deadline_ = std::chrono::steady_clock::now() + budget;
  for (auto& group : *journal_.data().mutable_groups()) OTA_RETURN_IF_ERROR(run_group(&group));
  return finish(campaign_result(journal_.data()), first_failure(journal_.data()));
}

// stage -> decide (journaled) -> carry out; a resumed group starts at the first step not recorded.
Status CampaignRunner::Impl::run_group(v1::GroupJournal* group) {
  if (group->done()) return Status::ok();
  const Members members = journal_.members(group->group());
  OTA_LOGI(kLog, "group %u: %zu ECU(s)%s", group->group(), members.size(),
           journal_.atomic(group->group()) ? ", atomic" : "");
  if (recorded_decision(*group) == v1::GROUP_DECISION_UNDECIDED) {
    OTA_RETURN_IF_ERROR(stage_group(members));
    OTA_RETURN_IF_ERROR(decide_group(group, members));
  }
  Status carried = recorded_decision(*group) == v1::GROUP_DECISION_COMMIT ? commit_group(members)
                                                                          : roll_back_group(*group, members);
  OTA_RETURN_IF_ERROR(carried);
  group->set_done(true);
  return save();
}

Status CampaignRunner::Impl::finish(v1::CampaignResult result, const std::string& reason) {
  auto end = vehicle_.read();
  const auto views = agents_.agents();
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    auto* rep = journal_.data().mutable_report();
    rep->set_result(result);
    rep->set_reason(reason);
    if (end) *rep->mutable_conditions_end() = *end;
    rep->clear_ecus();
    for (auto& e : *journal_.data().mutable_ecus()) {
      auto* r = e.mutable_report();
      auto view = views.find(e.ecu_id());
      if (view != views.end()) {
        *r->mutable_dtcs_after() = view->second.dtcs.dtcs();
        if (r->version_after().empty() || r->result() != v1::SUCCESS) {
          r->set_version_after(active_bank(view->second).version());
        }
      }
      if (r->result() == v1::ECU_RESULT_UNSPECIFIED)
        r->set_result(result == v1::CAMPAIGN_CANCELLED ? v1::CANCELLED : v1::REJECTED);
      *rep->add_ecus() = *r;
    }
    rep->set_duration_ms(codec::now_ms() - rep->started_ms());
    journal_.data().set_finished(true);
  }
  publish_status(result == v1::CAMPAIGN_SUCCESS ? v1::CampaignStatus::CAMPAIGN_STATE_SUCCEEDED
                                                : v1::CampaignStatus::CAMPAIGN_STATE_FINISHED);
  return save();
}

Status CampaignRunner::Impl::save() {
  std::lock_guard<std::mutex> lock(journal_mu_);
  return journal_.save();
}

void CampaignRunner::Impl::publish_status(CampaignState state) {
  if (!options_.on_status) return;
  v1::CampaignStatus s;
  codec::set_protocol(s.mutable_protocol());
  s.set_campaign_id(journal_.campaign().campaign_id());
  s.set_state(campaign_state_text(state));
  s.set_campaign_state(state);
  s.set_timestamp_ms(codec::now_ms());
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    for (const auto& e : journal_.data().ecus()) {
      auto* p = s.add_ecus();
      p->set_ecu_id(e.ecu_id());
      p->set_phase(e.phase());
      auto total = totals_.find(e.ecu_id());
      p->set_bytes_total(total != totals_.end() ? total->second : e.report().image_size());
      auto it = progress_.find(e.ecu_id());
      if (it != progress_.end()) p->set_bytes_done(it->second);
    }
  }
  options_.on_status(s);
}

void CampaignRunner::Impl::parallel(const std::vector<std::string>& ecus,
                                    const std::function<void(const std::string&)>& fn) {
  std::vector<std::thread> threads;
  threads.reserve(ecus.size());
  for (const auto& e : ecus) threads.emplace_back([&fn, e] { fn(e); });
  for (auto& t : threads) t.join();
}

void CampaignRunner::Impl::mark_failed(v1::EcuJournal* e, const Status& st, v1::Phase phase,
                                       v1::EcuResult result) {
  std::lock_guard<std::mutex> lock(journal_mu_);
  e->mutable_report()->set_result(result);
  codec::to_wire(st, phase, e->mutable_report()->mutable_error());
  e->set_finished(true);
}

void CampaignRunner::Impl::add_time(v1::EcuJournal* e, v1::Phase phase,
                                    std::chrono::steady_clock::time_point since) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - since).count();
  std::lock_guard<std::mutex> lock(journal_mu_);
  add_phase_time(e->mutable_report(), phase, static_cast<uint64_t>(ms));
}

// Every command after StartTransfer is idempotent on the agent, so an unanswered one is sent again:
// the agent may have restarted or the broker dropped the connection. An agent that comes back (a new
// boot, a reconnect) is asked again at once, not after the timeout.
Result<v1::Result> CampaignRunner::Impl::call_with_retry(const std::string& ecu, const v1::Command& cmd,
                                                         std::chrono::milliseconds timeout, int attempts) {
  for (int i = 1;; ++i) {
    auto r = agents_.call(ecu, cmd, timeout);
    const bool unanswered =
        !r && (r.status().code() == Code::kTimeout || r.status().code() == Code::kUnavailable);
    if (!unanswered || i >= attempts || cancel_) return r;
    OTA_LOGW(kLog, "%s; sending it again (%d/%d)", r.status().message().c_str(), i + 1, attempts);
  }
}

// Sends `cmd` for this campaign (call_with_retry) and adds the time it took to the ECU's report under
// `timed_as`. An answer FAILED or REFUSED becomes its error; OK and ROLLED_BACK come back as Results.
Result<v1::Result> CampaignRunner::Impl::call_timed(v1::EcuJournal* e, v1::Command cmd, v1::Phase timed_as) {
  const auto t0 = clock_.now();
  cmd.set_campaign_id(journal_.campaign().campaign_id());
  auto r = call_with_retry(e->ecu_id(), cmd, options_.agent_timeout);
  add_time(e, timed_as, t0);
  if (!r) return r.status();
  if (r->outcome() == v1::OUTCOME_FAILED || r->outcome() == v1::OUTCOME_REFUSED)
    return codec::from_wire(r->error());
  return r;
}

}  // namespace ota::client
