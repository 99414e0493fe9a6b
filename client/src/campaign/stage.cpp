// Staging a group: every member not yet staged gets its payload (transfer) and installs it, in
// parallel; a member already on the target is skipped.
#include <condition_variable>
#include <thread>

#include "campaign/plan.hpp"
#include "campaign/runner.hpp"
#include "ota/core/codec.hpp"
#include "ota/core/log.hpp"
#include "trust_gate.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "campaign";

// Calls `tick` every `interval` on its own thread until destroyed; a zero interval never ticks.
// Destruction does not wait for the rest of an interval.
class Ticker {
 public:
  Ticker(std::chrono::milliseconds interval, std::function<void()> tick) {
    if (interval.count() <= 0) return;
    thread_ = std::thread([this, interval, tick = std::move(tick)] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, interval, [this] { return stop_; })) {
        lock.unlock();
        tick();
        lock.lock();
      }
    });
  }
  ~Ticker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// What Install's answer means for the staging of one ECU.
enum class InstallAnswer {
  kInstalled,          // OK: the ECU is STAGED
  kPayloadIncomplete,  // NOT_FOUND: the agent does not hold every byte durably (it restarted between
                       // an acknowledgement and its checkpoint): resume the transfer, install again
  kFailed,             // any other error
};

InstallAnswer install_answer(const v1::Result& r) {
  if (r.outcome() == v1::OUTCOME_OK) return InstallAnswer::kInstalled;
  return codec::from_wire(r.error()).code() == Code::kNotFound ? InstallAnswer::kPayloadIncomplete
                                                               : InstallAnswer::kFailed;
}

}  // namespace

Status CampaignRunner::Impl::stage_group(const Members& members) {
  const std::vector<std::string> todo = skip_or_list_unstaged(members);
  publish_status(v1::CampaignStatus::CAMPAIGN_STATE_TRANSFERRING);
  // Progress for displays while the transfers run, and the bytes sent so far in the journal.
  Ticker ticker(options_.progress_interval, [this] {
    publish_status(v1::CampaignStatus::CAMPAIGN_STATE_TRANSFERRING);
    (void)save();  // a failed write here is not fatal: the next step's write reports it
  });
  // Every payload is checked before any transfer starts (and the hashing does not compete with
  // the transfers for the CPU).
  std::map<std::string, TransferPlan> plans;
  std::mutex plans_mu;
  parallel(todo, [&](const std::string& id) {
    v1::EcuJournal* e = journal_.ecu(id);
    auto plan = prepare(e);
    if (!plan) return mark_failed(e, plan.status(), v1::PHASE_TRANSFER);
    std::lock_guard<std::mutex> lock(plans_mu);
    plans.emplace(id, std::move(*plan));
  });
  std::vector<std::string> ready;
  for (const auto& [id, plan] : plans) ready.push_back(id);
  parallel(ready, [&](const std::string& id) {
    v1::EcuJournal* e = journal_.ecu(id);
    v1::Phase phase = v1::PHASE_TRANSFER;
    Status st = stage(e, plans.at(id), &phase);
    if (!st.is_ok())
      mark_failed(e, st, phase, st.code() == Code::kAborted && cancel_ ? v1::CANCELLED : v1::FAILED);
  });
  return save();
}

// Marks SKIPPED the members that have not started and already run the target; returns the members
// still to stage.
std::vector<std::string> CampaignRunner::Impl::skip_or_list_unstaged(const Members& members) {
  std::vector<std::string> todo;
  for (auto* e : members) {
    if (e->finished() || completed_step(*e) != EcuStep::kNone) continue;
    auto view = agents_.agent(e->ecu_id());
    const auto* t = journal_.target(e->ecu_id());
    if (view && active_bank(*view).sha256() == t->sha256() && active_bank(*view).version() == t->version()) {
      std::lock_guard<std::mutex> lock(journal_mu_);
      e->mutable_report()->set_result(v1::SKIPPED);
      e->mutable_report()->set_version_after(t->version());
      e->set_finished(true);
      continue;
    }
    todo.push_back(e->ecu_id());
  }
  return todo;
}

// What to send one ECU, and the check that the payload file is exactly what was signed. Every
// member of a group is prepared before any of them is sent a byte.
Result<TransferPlan> CampaignRunner::Impl::prepare(v1::EcuJournal* e) {
  const v1::CampaignTarget& t = *journal_.target(e->ecu_id());
  auto view = agents_.agent(e->ecu_id());
  if (!view) return Status(Code::kUnavailable, e->ecu_id() + " is not known");
  uint32_t group_size = 0;
  for (const auto& other : journal_.campaign().targets()) group_size += other.group() == t.group() ? 1 : 0;
  TransferPlan plan =
      make_transfer_plan(journal_.campaign(), t, e->transfer_id(), *view, group_size, options_.stall_timeout);
  plan.min_rate = options_.min_rate;
  plan.rate_window = options_.rate_window;
  plan.deadline = deadline_;
  plan.command_timeout = options_.agent_timeout;
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    e->mutable_report()->set_encoding(plan.target.encoding());
  }
  // The payload file must be exactly what was promised (signed) before a byte of it is sent.
  OTA_RETURN_IF_ERROR(check_payload_file(plan.payload_path, planned_payload(plan, t)));
  // Bytes are counted as they are sent, and journaled with the progress ticks, so a report after
  // a client restart still counts what the killed client had sent.
  plan.on_sent = [this, e](uint64_t n) {
    std::lock_guard<std::mutex> lock(journal_mu_);
    e->mutable_report()->set_bytes_transferred(e->report().bytes_transferred() + n);
  };
  return plan;
}

// Transfer and install one ECU. On success the ECU is STAGED; on failure *phase says where.
Status CampaignRunner::Impl::stage(v1::EcuJournal* e, const TransferPlan& plan, v1::Phase* phase) {
  const v1::Target& tg = plan.target;
  OTA_LOGI(kLog, "%s: sending %s payload of %llu bytes for %s", e->ecu_id().c_str(),
           tg.encoding() == v1::PAYLOAD_ENCODING_DELTA ? "delta" : "full",
           static_cast<unsigned long long>(tg.payload_size()), tg.version().c_str());
  {
    std::lock_guard<std::mutex> lock(journal_mu_);
    totals_[e->ecu_id()] = tg.payload_size();
  }
  for (int round = 0;; ++round) {
    *phase = v1::PHASE_TRANSFER;
    auto t0 = clock_.now();
    TransferStats stats;
    Status st = run_transfer(agents_, transport_, plan, cancel_, &stats, [this, e](uint64_t acked) {
      std::lock_guard<std::mutex> lock(journal_mu_);
      progress_[e->ecu_id()] = acked;
    });
    if (stats.first_resume_offset > 0) {
      OTA_LOGI(kLog, "%s: resumed at byte %llu of %llu", e->ecu_id().c_str(),
               static_cast<unsigned long long>(stats.first_resume_offset),
               static_cast<unsigned long long>(tg.payload_size()));
    }
    add_time(e, v1::PHASE_TRANSFER, t0);
    OTA_RETURN_IF_ERROR(st);
    publish_status(v1::CampaignStatus::CAMPAIGN_STATE_TRANSFERRING);

    *phase = v1::PHASE_INSTALL;
    t0 = clock_.now();
    v1::Command cmd;
    cmd.set_campaign_id(plan.campaign_id);
    cmd.mutable_install()->set_transfer_id(plan.transfer_id);
    auto r = call_with_retry(e->ecu_id(), cmd, install_timeout());
    add_time(e, v1::PHASE_INSTALL, t0);
    if (!r) return r.status();
    switch (install_answer(*r)) {
      case InstallAnswer::kInstalled: {
        std::lock_guard<std::mutex> lock(journal_mu_);
        set_completed_step(e, EcuStep::kStaged);
        return Status::ok();
      }
      case InstallAnswer::kPayloadIncomplete:
        if (round < 2) {
          OTA_LOGW(kLog, "%s: %s; resuming the transfer", e->ecu_id().c_str(), r->error().message().c_str());
          continue;
        }
        return codec::from_wire(r->error());
      case InstallAnswer::kFailed:
        return codec::from_wire(r->error());
    }
  }
}

}  // namespace ota::client
