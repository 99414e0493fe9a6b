#include "campaign.hpp"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"
#include "ota/core/sha256.hpp"
#include "transfer.hpp"
#include "trust_gate.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "campaign";
// Chunks in flight on the client's one connection, shared by the ECUs of a group (at least one
// each). Small on purpose: Paho stalls when a publish only partly fits the socket buffer, so deep
// windows of 256 KiB chunks are slower; with TCP_NODELAY a chunk per ECU keeps 8 ECUs busy
// (bench/transfer/RESULTS.md).
constexpr uint32_t kInFlightBudget = 4;
using Clock = std::chrono::steady_clock;

uint64_t ms_since(Clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
}

void add_timing(v1::EcuReport* r, v1::Phase phase, uint64_t ms) {
  for (auto& p : *r->mutable_phases()) {
    if (p.phase() == phase) {
      p.set_duration_ms(p.duration_ms() + ms);
      return;
    }
  }
  auto* p = r->add_phases();
  p->set_phase(phase);
  p->set_duration_ms(ms);
}

}  // namespace

Status validate_campaign(const v1::Campaign& c) {
  if (c.campaign_id().empty() || c.campaign_id().size() > 128) {
    return Status(Code::kInvalidArgument, "campaign_id must be 1-128 characters");
  }
  if (c.targets().empty())
    return Status(Code::kInvalidArgument, "campaign " + c.campaign_id() + " has no targets");
  std::set<std::string> seen;
  for (const auto& t : c.targets()) {
    const std::string who = "campaign " + c.campaign_id() + ", ECU " + t.ecu_id();
    if (!seen.insert(t.ecu_id()).second) return Status(Code::kInvalidArgument, who + ": listed twice");
    if (t.sha256().size() != 32) return Status(Code::kInvalidArgument, who + ": sha256 must be 32 bytes");
    if (t.version().empty()) return Status(Code::kInvalidArgument, who + ": no version");
    if (!t.has_full() || t.full().uri().empty())
      return Status(Code::kInvalidArgument, who + ": no full payload");
    if (t.full().sha256().size() != 32)
      return Status(Code::kInvalidArgument, who + ": full payload sha256 must be 32 bytes");
    if (t.has_delta() && (t.delta().sha256().size() != 32 || t.delta().base_sha256().size() != 32)) {
      return Status(Code::kInvalidArgument, who + ": delta sha256 and base_sha256 must be 32 bytes");
    }
  }
  return Status::ok();
}

std::string report_to_json(const v1::VehicleReport& report) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(report, &out, opts);
  return out;
}

class CampaignRunner::Impl {
 public:
  Impl(AgentDirectory& fleet, Transport& transport, VehicleStateSource& vehicle, ConsentProvider& consent,
       RunnerOptions opts, const std::atomic<bool>& cancel)
      : fleet_(fleet),
        transport_(transport),
        vehicle_(vehicle),
        consent_(consent),
        opts_(std::move(opts)),
        cancel_(cancel) {}

  Result<v1::VehicleReport> run(const v1::Campaign& campaign) {
    OTA_RETURN_IF_ERROR(validate_campaign(campaign));
    OTA_RETURN_IF_ERROR(load_or_create(campaign));
    if (!j_.finished()) {
      Status st = execute();
      if (!st.is_ok()) return st;
    }
    return j_.report();
  }

 private:
  // ---------------------------------------------------------------- journal
  Status load_or_create(const v1::Campaign& campaign) {
    auto content = read_small_file(opts_.journal_path, 16 << 20);
    if (content) {
      v1::CampaignJournal old;
      Status st = codec::decode(*content, &old, 16 << 20, "campaign journal " + opts_.journal_path);
      if (st.is_ok() && old.campaign().campaign_id() == campaign.campaign_id() && !old.finished()) {
        j_ = std::move(old);
        j_.set_resumes(j_.resumes() + 1);
        OTA_LOGI(kLog, "resuming campaign %s (resume #%llu)", campaign.campaign_id().c_str(),
                 static_cast<unsigned long long>(j_.resumes()));
        return save();
      }
      if (!st.is_ok()) OTA_LOGW(kLog, "%s; starting afresh", st.to_string().c_str());
    }
    j_.Clear();
    j_.set_format(1);
    *j_.mutable_campaign() = campaign;
    auto* rep = j_.mutable_report();
    codec::set_protocol(rep->mutable_protocol());
    rep->set_vin(campaign.vin());
    rep->set_campaign_id(campaign.campaign_id());
    rep->set_started_ms(codec::now_ms());
    for (const auto& t : campaign.targets()) {
      auto* e = j_.add_ecus();
      e->set_ecu_id(t.ecu_id());
      e->set_transfer_id(campaign.campaign_id() + "/" + t.ecu_id() + "/" + t.version());
      e->mutable_report()->set_ecu_id(t.ecu_id());
      e->mutable_report()->set_image_size(t.size());
    }
    std::set<uint32_t> groups;
    for (const auto& t : campaign.targets()) groups.insert(t.group());
    for (uint32_t g : groups) j_.add_groups()->set_group(g);
    return save();
  }

  Status save() {
    std::lock_guard<std::mutex> lock(mu_);
    return atomic_write_file(opts_.journal_path, j_.SerializeAsString());
  }

  v1::EcuJournal* ecu(const std::string& id) {
    for (auto& e : *j_.mutable_ecus()) {
      if (e.ecu_id() == id) return &e;
    }
    return nullptr;
  }
  const v1::CampaignTarget* target(const std::string& id) const {
    for (const auto& t : j_.campaign().targets()) {
      if (t.ecu_id() == id) return &t;
    }
    return nullptr;
  }
  bool atomic(uint32_t group) const {
    for (const auto& g : j_.campaign().groups()) {
      if (g.group() == group) return g.atomic();
    }
    return false;
  }

  // ---------------------------------------------------------------- the campaign
  Status finish(v1::CampaignResult result, const std::string& reason) {
    auto* rep = j_.mutable_report();
    rep->set_result(result);
    rep->set_reason(reason);
    auto end = vehicle_.read();
    if (end) *rep->mutable_conditions_end() = *end;
    rep->clear_ecus();
    for (auto& e : *j_.mutable_ecus()) {
      auto* r = e.mutable_report();
      if (auto view = fleet_.agent(e.ecu_id())) {
        *r->mutable_dtcs_after() = view->dtcs.dtcs();
        if (r->version_after().empty() || r->result() != v1::SUCCESS) {
          r->set_version_after(active_bank(*view).version());
        }
      }
      if (r->result() == v1::ECU_RESULT_UNSPECIFIED)
        r->set_result(result == v1::CAMPAIGN_CANCELLED ? v1::CANCELLED : v1::REJECTED);
      *rep->add_ecus() = *r;
    }
    rep->set_duration_ms(codec::now_ms() - rep->started_ms());
    j_.set_finished(true);
    publish_status(result == v1::CAMPAIGN_SUCCESS ? "succeeded" : "finished");
    return save();
  }

  Status check_preconditions(std::string* why) {
    const auto& pre = j_.campaign().preconditions();
    auto cond = vehicle_.read();
    if (!cond) {
      *why = "vehicle state unavailable: " + cond.status().message();
      return Status::ok();
    }
    *j_.mutable_report()->mutable_conditions_start() = *cond;
    if (pre.require_parked() && !cond->parked())
      *why = "vehicle is not parked";
    else if (pre.require_ignition_off() && !cond->ignition_off())
      *why = "ignition is on";
    else if (cond->battery_soc_percent() < pre.min_battery_soc_percent()) {
      *why = "battery at " + std::to_string(cond->battery_soc_percent()) + " %, below the required " +
             std::to_string(pre.min_battery_soc_percent()) + " %";
    }
    if (!why->empty()) return Status::ok();
    // Free space: each ECU must hold the payload it will receive (delta staging) and the image.
    for (const auto& t : j_.campaign().targets()) {
      auto view = fleet_.agent(t.ecu_id());
      if (!view) continue;
      const auto& inv = view->hello.inventory();
      if (inv.bank_size() > 0 && t.size() > inv.bank_size()) {
        *why = t.ecu_id() + ": image of " + std::to_string(t.size()) + " bytes exceeds its bank of " +
               std::to_string(inv.bank_size());
        return Status::ok();
      }
      if (t.has_delta() && inv.capabilities().delta() && inv.free_space() < t.delta().size()) {
        *why = t.ecu_id() + ": " + std::to_string(inv.free_space()) + " bytes free, the delta needs " +
               std::to_string(t.delta().size());
        return Status::ok();
      }
    }
    return Status::ok();
  }

  Status execute() {
    std::vector<std::string> ids;
    for (const auto& t : j_.campaign().targets()) ids.push_back(t.ecu_id());
    Status online = fleet_.wait_online(ids, opts_.agent_timeout);
    if (!j_.started()) {
      if (!online.is_ok()) return finish(v1::CAMPAIGN_FAILED, online.message());
      for (auto& e : *j_.mutable_ecus()) {
        auto view = fleet_.agent(e.ecu_id());
        e.mutable_report()->set_version_before(active_bank(*view).version());
        *e.mutable_report()->mutable_dtcs_before() = view->dtcs.dtcs();
      }
      std::string why;
      OTA_RETURN_IF_ERROR(check_preconditions(&why));
      if (!why.empty()) {
        OTA_LOGW(kLog, "campaign %s refused: %s", j_.campaign().campaign_id().c_str(), why.c_str());
        return finish(v1::CAMPAIGN_REJECTED, "pre-condition not met: " + why);
      }
      if (j_.campaign().require_consent()) {
        publish_status("awaiting consent");
        for (int asked = 0;; ++asked) {
          ConsentAnswer a = consent_.ask(j_.campaign());
          if (a.kind == ConsentAnswer::kAccept) break;
          if (a.kind == ConsentAnswer::kDecline) {
            return finish(v1::CAMPAIGN_REJECTED,
                          "owner declined" + (a.reason.empty() ? "" : ": " + a.reason));
          }
          if (asked >= opts_.max_postpones) return finish(v1::CAMPAIGN_POSTPONED, "postponed too often");
          OTA_LOGI(kLog, "owner postponed the update by %lld ms",
                   static_cast<long long>(a.postpone_for.count()));
          publish_status("postponed");
          auto until = Clock::now() + a.postpone_for;
          while (Clock::now() < until && !cancel_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
          if (cancel_) return finish(v1::CAMPAIGN_CANCELLED, "cancelled while postponed");
          std::string again;
          OTA_RETURN_IF_ERROR(check_preconditions(&again));
          if (!again.empty())
            return finish(v1::CAMPAIGN_REJECTED, "pre-condition not met after postponement: " + again);
        }
      }
      j_.set_started(true);
      OTA_RETURN_IF_ERROR(save());
    } else if (!online.is_ok()) {
      OTA_LOGW(kLog, "resuming with %s", online.message().c_str());
    }

    bool all_ok = true;
    bool cancelled = false;
    for (int gi = 0; gi < j_.groups_size(); ++gi) {
      Status st = run_group(gi, &all_ok, &cancelled);
      if (!st.is_ok()) return st;
    }
    v1::CampaignResult result = cancelled ? v1::CAMPAIGN_CANCELLED
                                : all_ok  ? v1::CAMPAIGN_SUCCESS
                                          : v1::CAMPAIGN_FAILED;
    std::string reason;
    for (const auto& e : j_.ecus()) {
      if (e.report().result() == v1::FAILED) {
        reason = e.ecu_id() + " failed in " + codec::phase_name(e.report().error().phase()) + ": " +
                 e.report().error().message();
        break;
      }
    }
    return finish(result, reason);
  }

  // Runs fn(ecu) for each ECU in parallel and waits for all.
  void parallel(const std::vector<std::string>& ecus, const std::function<void(const std::string&)>& fn) {
    std::vector<std::thread> threads;
    threads.reserve(ecus.size());
    for (const auto& e : ecus) threads.emplace_back([&fn, e] { fn(e); });
    for (auto& t : threads) t.join();
  }

  void mark_failed(v1::EcuJournal* e, const Status& st, v1::Phase phase, v1::EcuResult result = v1::FAILED) {
    std::lock_guard<std::mutex> lock(mu_);
    e->mutable_report()->set_result(result);
    codec::to_wire(st, phase, e->mutable_report()->mutable_error());
    e->set_finished(true);
  }

  // What to send one ECU, and the check that the payload file is exactly what was signed. Every
  // member of a group is prepared before any of them is sent a byte.
  Result<TransferPlan> prepare(v1::EcuJournal* e) {
    const v1::CampaignTarget& t = *target(e->ecu_id());
    auto view = fleet_.agent(e->ecu_id());
    if (!view) return Status(Code::kUnavailable, e->ecu_id() + " is not known");
    const auto& caps = view->hello.inventory().capabilities();

    TransferPlan plan;
    plan.ecu_id = e->ecu_id();
    plan.campaign_id = j_.campaign().campaign_id();
    plan.transfer_id = e->transfer_id();
    plan.chunk_size = j_.campaign().chunk_size() ? j_.campaign().chunk_size() : 256 * 1024;
    if (caps.max_chunk_size() > 0) plan.chunk_size = std::min(plan.chunk_size, caps.max_chunk_size());
    uint32_t group_size = 0;
    for (const auto& other : j_.campaign().targets()) group_size += other.group() == t.group() ? 1 : 0;
    plan.window =
        j_.campaign().window() ? j_.campaign().window() : std::max<uint32_t>(1, kInFlightBudget / group_size);
    if (caps.max_window() > 0) plan.window = std::min(plan.window, caps.max_window());
    plan.stall_timeout = opts_.stall_timeout;
    v1::Target& tg = plan.target;
    tg.set_version(t.version());
    tg.set_size(t.size());
    tg.set_sha256(t.sha256());
    tg.set_hardware_id(t.hardware_id());
    tg.set_kind(v1::PAYLOAD_KIND_FIRMWARE_IMAGE);
    tg.set_allow_downgrade(t.allow_downgrade());
    tg.set_signed_target(t.signed_target());
    tg.set_signed_image(t.signed_image());
    plan.root_updates = j_.campaign().root_updates();
    // Delta when the agent can rebuild it and runs exactly the delta's base; the full image otherwise.
    const bool use_delta =
        t.has_delta() && caps.delta() && active_bank(*view).sha256() == t.delta().base_sha256();
    if (use_delta) {
      tg.set_encoding(v1::PAYLOAD_ENCODING_DELTA);
      tg.set_payload_size(t.delta().size());
      tg.set_payload_sha256(t.delta().sha256());
      tg.set_base_version(t.delta().base_version());
      tg.set_base_sha256(t.delta().base_sha256());
      plan.payload_path = t.delta().uri();
    } else {
      tg.set_encoding(v1::PAYLOAD_ENCODING_RAW);
      tg.set_payload_size(t.size());
      tg.set_payload_sha256(t.sha256());
      plan.payload_path = t.full().uri();
      plan.source = t.full().encoding() == v1::PAYLOAD_ENCODING_DELTA ? PayloadSource::kCompressed
                                                                      : PayloadSource::kFile;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      e->mutable_report()->set_encoding(tg.encoding());
    }
    // The payload file must be exactly what was promised (signed) before a byte of it is sent.
    OTA_RETURN_IF_ERROR(check_payload_file(plan.payload_path, use_delta ? t.delta() : t.full()));
    // Bytes are counted as they are sent, and journaled with the progress ticks, so a report after
    // a client restart still counts what the killed client had sent.
    plan.on_sent = [this, e](uint64_t n) {
      std::lock_guard<std::mutex> lock(mu_);
      e->mutable_report()->set_bytes_transferred(e->report().bytes_transferred() + n);
    };
    return plan;
  }

  // Transfer and install one ECU. On success the ECU is STAGED; on failure *phase says where.
  Status stage(v1::EcuJournal* e, const TransferPlan& plan, v1::Phase* phase) {
    const v1::Target& tg = plan.target;
    OTA_LOGI(kLog, "%s: sending %s payload of %llu bytes for %s", e->ecu_id().c_str(),
             tg.encoding() == v1::PAYLOAD_ENCODING_DELTA ? "delta" : "full",
             static_cast<unsigned long long>(tg.payload_size()), tg.version().c_str());

    {
      std::lock_guard<std::mutex> lock(mu_);
      totals_[e->ecu_id()] = tg.payload_size();
    }
    // An agent that restarted between its last acknowledgement and the durable checkpoint of the
    // whole payload answers Install with NOT_FOUND: resume the transfer (only the missing part is
    // sent) and install again.
    for (int round = 0;; ++round) {
      *phase = v1::PHASE_TRANSFER;
      auto t0 = Clock::now();
      TransferStats stats;
      Status st = run_transfer(fleet_, transport_, plan, cancel_, &stats, [this, e](uint64_t acked) {
        std::lock_guard<std::mutex> lock(mu_);
        progress_[e->ecu_id()] = acked;
      });
      if (stats.first_resume_offset > 0) {
        OTA_LOGI(kLog, "%s: resumed at byte %llu of %llu", e->ecu_id().c_str(),
                 static_cast<unsigned long long>(stats.first_resume_offset),
                 static_cast<unsigned long long>(tg.payload_size()));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        add_timing(e->mutable_report(), v1::PHASE_TRANSFER, ms_since(t0));
      }
      if (!st.is_ok()) return st;
      publish_status("transferring");

      *phase = v1::PHASE_INSTALL;
      t0 = Clock::now();
      v1::Command cmd;
      cmd.set_campaign_id(plan.campaign_id);
      cmd.mutable_install()->set_transfer_id(plan.transfer_id);
      auto r = call_with_retry(e->ecu_id(), cmd, opts_.agent_timeout * 4);
      {
        std::lock_guard<std::mutex> lock(mu_);
        add_timing(e->mutable_report(), v1::PHASE_INSTALL, ms_since(t0));
      }
      if (!r) return r.status();
      if (r->outcome() != v1::OUTCOME_OK) {
        Status err = codec::from_wire(r->error());
        if (err.code() == Code::kNotFound && round < 2) {
          OTA_LOGW(kLog, "%s: %s; resuming the transfer", e->ecu_id().c_str(), err.message().c_str());
          continue;
        }
        return err;
      }
      std::lock_guard<std::mutex> lock(mu_);
      e->set_phase(v1::PHASE_STAGED);
      return Status::ok();
    }
  }

  // Activation and health check; on failure *phase says which of the two failed.
  Status activate(v1::EcuJournal* e, v1::Phase* phase) {
    auto t0 = Clock::now();
    v1::Command cmd;
    cmd.set_campaign_id(j_.campaign().campaign_id());
    cmd.mutable_activate()->set_transfer_id(e->transfer_id());
    uint32_t health = j_.campaign().health_timeout_ms() ? j_.campaign().health_timeout_ms() : 10000;
    cmd.mutable_activate()->set_health_timeout_ms(health);
    auto r = call_with_retry(e->ecu_id(), cmd, opts_.agent_timeout + std::chrono::milliseconds(health));
    std::lock_guard<std::mutex> lock(mu_);
    add_timing(e->mutable_report(), v1::PHASE_ACTIVATE, ms_since(t0));
    *phase = v1::PHASE_ACTIVATE;
    if (!r) return r.status();
    if (r->outcome() != v1::OUTCOME_OK) {
      if (r->error().phase() != v1::PHASE_UNSPECIFIED) *phase = r->error().phase();
      return codec::from_wire(r->error());
    }
    e->set_phase(v1::PHASE_TRIAL);
    return Status::ok();
  }

  // Every command after StartTransfer is idempotent on the agent, so an unanswered one is sent again:
  // the agent may have restarted or the broker dropped the connection.
  Result<v1::Result> call_with_retry(const std::string& ecu, const v1::Command& cmd,
                                     std::chrono::milliseconds timeout, int attempts = 3) {
    for (int i = 1;; ++i) {
      auto r = fleet_.call(ecu, cmd, timeout);
      if (r || r.status().code() != Code::kTimeout || i >= attempts || cancel_) return r;
      OTA_LOGW(kLog, "%s; sending it again (%d/%d)", r.status().message().c_str(), i + 1, attempts);
    }
  }

  Status simple(v1::EcuJournal* e, v1::Command cmd, v1::Phase phase, v1::Result* out) {
    auto t0 = Clock::now();
    cmd.set_campaign_id(j_.campaign().campaign_id());
    auto r = call_with_retry(e->ecu_id(), cmd, opts_.agent_timeout);
    {
      std::lock_guard<std::mutex> lock(mu_);
      add_timing(e->mutable_report(), phase, ms_since(t0));
    }
    if (!r) return r.status();
    *out = *r;
    if (r->outcome() == v1::OUTCOME_FAILED || r->outcome() == v1::OUTCOME_REFUSED)
      return codec::from_wire(r->error());
    return Status::ok();
  }

  Status run_group(int gi, bool* all_ok, bool* cancelled) {
    v1::GroupJournal* g = j_.mutable_groups(gi);
    if (g->done()) {
      for (const auto& e : j_.ecus()) {
        if (target(e.ecu_id())->group() == g->group() && e.report().result() != v1::SUCCESS &&
            e.report().result() != v1::SKIPPED) {
          *all_ok = false;
        }
      }
      if (g->decision() == "cancel") *cancelled = true;
      return Status::ok();
    }
    const bool is_atomic = atomic(g->group());
    std::vector<v1::EcuJournal*> members;
    for (auto& e : *j_.mutable_ecus()) {
      if (target(e.ecu_id())->group() == g->group()) members.push_back(&e);
    }
    OTA_LOGI(kLog, "group %u: %zu ECU(s)%s", g->group(), members.size(), is_atomic ? ", atomic" : "");

    if (g->decision().empty()) {
      // Stage every ECU not yet staged.
      std::vector<std::string> todo;
      for (auto* e : members) {
        if (e->finished()) continue;
        auto view = fleet_.agent(e->ecu_id());
        const auto* t = target(e->ecu_id());
        if (e->phase() == v1::PHASE_UNSPECIFIED && view && active_bank(*view).sha256() == t->sha256() &&
            active_bank(*view).version() == t->version()) {
          std::lock_guard<std::mutex> lock(mu_);
          e->mutable_report()->set_result(v1::SKIPPED);
          e->mutable_report()->set_version_after(t->version());
          e->set_finished(true);
          continue;
        }
        if (e->phase() == v1::PHASE_UNSPECIFIED || e->phase() == v1::PHASE_TRANSFER)
          todo.push_back(e->ecu_id());
      }
      publish_status("transferring");
      // Progress for displays while the transfers run.
      std::atomic<bool> staging{true};
      std::thread ticker([&] {
        while (staging) {
          std::this_thread::sleep_for(std::chrono::milliseconds(250));
          if (!staging) break;
          publish_status("transferring");
          (void)save();  // bytes sent so far
        }
      });
      // Every payload is checked before any transfer starts (and the hashing does not compete with
      // the transfers for the CPU).
      std::map<std::string, TransferPlan> plans;
      std::mutex plans_mu;
      parallel(todo, [&](const std::string& id) {
        v1::EcuJournal* e = ecu(id);
        auto plan = prepare(e);
        if (!plan) return mark_failed(e, plan.status(), v1::PHASE_TRANSFER);
        std::lock_guard<std::mutex> lock(plans_mu);
        plans.emplace(id, std::move(*plan));
      });
      std::vector<std::string> ready;
      for (const auto& [id, plan] : plans) ready.push_back(id);
      parallel(ready, [&](const std::string& id) {
        v1::EcuJournal* e = ecu(id);
        v1::Phase phase = v1::PHASE_TRANSFER;
        Status st = stage(e, plans.at(id), &phase);
        if (!st.is_ok()) {
          if (st.code() == Code::kAborted && cancel_) {
            mark_failed(e, st, phase, v1::CANCELLED);
          } else {
            mark_failed(e, st, phase);
          }
        }
      });
      staging = false;
      ticker.join();
      OTA_RETURN_IF_ERROR(save());

      // Barrier: the group goes on only if every member is staged (atomic) or with those that are.
      bool failed = false;
      for (auto* e : members) failed |= e->finished() && e->report().result() != v1::SKIPPED;
      if (cancel_) {
        g->set_decision("cancel");
      } else if (failed && is_atomic) {
        g->set_decision("rollback");
      } else {
        std::vector<std::string> staged;
        for (auto* e : members) {
          if (!e->finished() && (e->phase() == v1::PHASE_STAGED || e->phase() == v1::PHASE_TRIAL)) {
            staged.push_back(e->ecu_id());
          }
        }
        publish_status("activating");
        parallel(staged, [&](const std::string& id) {
          v1::EcuJournal* e = ecu(id);
          v1::Phase phase = v1::PHASE_ACTIVATE;
          Status st = activate(e, &phase);
          if (!st.is_ok()) mark_failed(e, st, phase);
        });
        failed = false;
        for (auto* e : members) failed |= e->finished() && e->report().result() == v1::FAILED;
        g->set_decision(failed && is_atomic ? "rollback" : "commit");
      }
      // The decision is durable before any ECU acts on it.
      OTA_RETURN_IF_ERROR(save());
      OTA_LOGI(kLog, "group %u: decision %s", g->group(), g->decision().c_str());
    }

    if (g->decision() == "commit") {
      std::vector<std::string> trial;
      for (auto* e : members) {
        if (!e->finished()) trial.push_back(e->ecu_id());
      }
      publish_status("committing");
      parallel(trial, [&](const std::string& id) {
        v1::EcuJournal* e = ecu(id);
        v1::Command cmd;
        cmd.mutable_commit()->set_transfer_id(e->transfer_id());
        // The group decided to commit: a failing commit is retried, never turned into a rollback
        // of this ECU alone (the others may have committed already).
        v1::Result r;
        Status st;
        for (int attempt = 1; attempt <= 5; ++attempt) {
          st = simple(e, cmd, v1::PHASE_COMMIT, &r);
          if (st.is_ok() && r.outcome() == v1::OUTCOME_OK) break;
          if (st.is_ok()) st = codec::from_wire(r.error());
          OTA_LOGW(kLog, "%s: commit attempt %d failed: %s", id.c_str(), attempt, st.to_string().c_str());
          std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));  // backoff before retrying
        }
        if (!st.is_ok()) {
          mark_failed(e, st.with_context("commit failed after retries; the ECU stays on trial"),
                      v1::PHASE_COMMIT);
          return;
        }
        // The ECU's own word that it committed, when it has a key: kept in the report as received.
        const std::string signed_result = r.SerializeAsString();
        auto key = opts_.ecu_keys.find(id);
        if (key != opts_.ecu_keys.end()) {
          Status sig = trust::verify_result_signature(signed_result, key->second);
          if (!sig.is_ok()) {
            mark_failed(e, sig, v1::PHASE_COMMIT);
            return;
          }
        }
        if (!r.ecu_signature().empty()) {
          std::lock_guard<std::mutex> lock(mu_);
          e->mutable_report()->set_ecu_signed_result(signed_result);
        }
        clear_resolved_dtcs(e);
        std::lock_guard<std::mutex> lock(mu_);
        e->set_phase(v1::PHASE_DONE);
        e->mutable_report()->set_result(v1::SUCCESS);
        e->mutable_report()->set_version_after(target(id)->version());
        e->set_finished(true);
      });
    } else {
      // Roll back (or cancel) every member that did not fail by itself.
      const bool cancel = g->decision() == "cancel";
      std::vector<std::string> back;
      // Failed ECUs are told too (idempotent): one whose activation timed out may still be on trial.
      for (auto* e : members) {
        if (e->report().result() != v1::SKIPPED) back.push_back(e->ecu_id());
      }
      publish_status(cancel ? "cancelling" : "rolling back");
      parallel(back, [&](const std::string& id) {
        v1::EcuJournal* e = ecu(id);
        v1::Command cmd;
        if (cancel) {
          cmd.mutable_cancel()->set_transfer_id(e->transfer_id());
        } else {
          cmd.mutable_rollback()->set_transfer_id(e->transfer_id());
          cmd.mutable_rollback()->set_reason("atomic group " + std::to_string(g->group()) + " failed");
        }
        v1::Result r;
        Status st = simple(e, cmd, v1::PHASE_ROLLBACK, &r);
        std::lock_guard<std::mutex> lock(mu_);
        if (e->report().result() == v1::FAILED) return;  // keeps its own failure in the report
        e->mutable_report()->set_result(cancel ? v1::CANCELLED : v1::ROLLED_BACK);
        if (!st.is_ok()) codec::to_wire(st, v1::PHASE_ROLLBACK, e->mutable_report()->mutable_error());
        e->set_finished(true);
      });
      if (cancel) *cancelled = true;
    }
    for (auto* e : members) {
      if (e->report().result() != v1::SUCCESS && e->report().result() != v1::SKIPPED) *all_ok = false;
    }
    g->set_done(true);
    return save();
  }

  void clear_resolved_dtcs(v1::EcuJournal* e) {
    const auto* t = target(e->ecu_id());
    if (t->resolves_dtcs().empty()) return;
    v1::Command cmd;
    for (uint32_t code : t->resolves_dtcs()) cmd.mutable_clear_dtcs()->add_codes(code);
    v1::Result r;
    Status st = simple(e, cmd, v1::PHASE_DONE, &r);
    if (!st.is_ok())
      OTA_LOGW(kLog, "%s: clearing resolved DTCs: %s", e->ecu_id().c_str(), st.to_string().c_str());
  }

  // Never called with mu_ held: publishing may wait for the transport's callback thread, which may
  // itself be waiting for mu_ (progress updates).
  void publish_status(const std::string& state) {
    if (!opts_.on_status) return;
    v1::CampaignStatus s;
    codec::set_protocol(s.mutable_protocol());
    s.set_campaign_id(j_.campaign().campaign_id());
    s.set_state(state);
    s.set_timestamp_ms(codec::now_ms());
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& e : j_.ecus()) {
        auto* p = s.add_ecus();
        p->set_ecu_id(e.ecu_id());
        p->set_phase(e.phase());
        auto total = totals_.find(e.ecu_id());
        p->set_bytes_total(total != totals_.end() ? total->second : e.report().image_size());
        auto it = progress_.find(e.ecu_id());
        if (it != progress_.end()) p->set_bytes_done(it->second);
      }
    }
    opts_.on_status(s);
  }

  AgentDirectory& fleet_;
  Transport& transport_;
  VehicleStateSource& vehicle_;
  ConsentProvider& consent_;
  RunnerOptions opts_;
  const std::atomic<bool>& cancel_;
  std::mutex mu_;  // guards j_'s ECU entries while transfers run in parallel
  v1::CampaignJournal j_;
  std::map<std::string, uint64_t> progress_;  // acknowledged payload bytes per ECU
  std::map<std::string, uint64_t> totals_;    // payload size per ECU
};

CampaignRunner::CampaignRunner(AgentDirectory& fleet, Transport& transport, VehicleStateSource& vehicle,
                               ConsentProvider& consent, RunnerOptions options)
    : impl_(std::make_shared<Impl>(fleet, transport, vehicle, consent, std::move(options), cancel_)) {}

Result<v1::VehicleReport> CampaignRunner::run(const v1::Campaign& campaign) { return impl_->run(campaign); }

}  // namespace ota::client
