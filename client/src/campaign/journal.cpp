#include "campaign/journal.hpp"

#include <set>

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/core/log.hpp"

namespace ota::client {
namespace {

constexpr const char* kLog = "campaign";

v1::CampaignJournal new_journal(const v1::Campaign& campaign) {
  v1::CampaignJournal j;
  j.set_format(1);
  *j.mutable_campaign() = campaign;
  auto* rep = j.mutable_report();
  codec::set_protocol(rep->mutable_protocol());
  rep->set_vin(campaign.vin());
  rep->set_campaign_id(campaign.campaign_id());
  rep->set_started_ms(codec::now_ms());
  for (const auto& t : campaign.targets()) {
    auto* e = j.add_ecus();
    e->set_ecu_id(t.ecu_id());
    e->set_transfer_id(campaign.campaign_id() + "/" + t.ecu_id() + "/" + t.version());
    e->mutable_report()->set_ecu_id(t.ecu_id());
    e->mutable_report()->set_image_size(t.size());
  }
  std::set<uint32_t> groups;
  for (const auto& t : campaign.targets()) groups.insert(t.group());
  for (uint32_t g : groups) j.add_groups()->set_group(g);
  return j;
}

// The earlier string form of a decision; false for a string that is none of them.
bool parse_legacy_decision(const std::string& text, GroupDecision* out) {
  if (text.empty())
    *out = v1::GROUP_DECISION_UNDECIDED;
  else if (text == "commit")
    *out = v1::GROUP_DECISION_COMMIT;
  else if (text == "rollback")
    *out = v1::GROUP_DECISION_ROLLBACK;
  else if (text == "cancel")
    *out = v1::GROUP_DECISION_CANCEL;
  else
    return false;
  return true;
}

}  // namespace

EcuStep completed_step(const v1::EcuJournal& ecu) {
  switch (ecu.phase()) {
    case v1::PHASE_STAGED:
      return EcuStep::kStaged;
    case v1::PHASE_TRIAL:
      return EcuStep::kTrial;
    case v1::PHASE_DONE:
      return EcuStep::kDone;
    default:  // UNSPECIFIED, and TRANSFER in journals of earlier clients: nothing completed
      return EcuStep::kNone;
  }
}

void set_completed_step(v1::EcuJournal* ecu, EcuStep step) {
  switch (step) {
    case EcuStep::kNone:
      ecu->set_phase(v1::PHASE_UNSPECIFIED);
      break;
    case EcuStep::kStaged:
      ecu->set_phase(v1::PHASE_STAGED);
      break;
    case EcuStep::kTrial:
      ecu->set_phase(v1::PHASE_TRIAL);
      break;
    case EcuStep::kDone:
      ecu->set_phase(v1::PHASE_DONE);
      break;
  }
}

GroupDecision recorded_decision(const v1::GroupJournal& group) {
  if (group.group_decision() != v1::GROUP_DECISION_UNDECIDED) return group.group_decision();
  GroupDecision legacy = v1::GROUP_DECISION_UNDECIDED;
  (void)parse_legacy_decision(group.decision(), &legacy);  // check_journal refused anything else
  return legacy;
}

void record_decision(v1::GroupJournal* group, GroupDecision decision) {
  group->set_group_decision(decision);
  group->set_decision(decision == v1::GROUP_DECISION_UNDECIDED ? "" : decision_name(decision));
}

Status check_journal(const v1::CampaignJournal& journal) {
  std::set<std::string> ecus;
  std::set<uint32_t> groups;
  for (const auto& t : journal.campaign().targets()) {
    ecus.insert(t.ecu_id());
    groups.insert(t.group());
  }
  for (const auto& e : journal.ecus()) {
    if (!ecus.count(e.ecu_id()))
      return Status(Code::kCorrupt, "ECU '" + e.ecu_id() + "' is not a target of the campaign");
  }
  if (journal.ecus_size() != static_cast<int>(ecus.size()))
    return Status(Code::kCorrupt, "the ECU entries do not match the campaign's targets");
  for (const auto& g : journal.groups()) {
    const std::string which = "group " + std::to_string(g.group());
    if (!groups.count(g.group())) return Status(Code::kCorrupt, which + " is not in the campaign");
    GroupDecision legacy;
    if (!parse_legacy_decision(g.decision(), &legacy))
      return Status(Code::kCorrupt, which + " has an unknown decision '" + g.decision() + "'");
    if (!v1::GroupDecision_IsValid(g.group_decision()))
      return Status(Code::kCorrupt, which + " has an unknown decision " + std::to_string(g.group_decision()));
  }
  return Status::ok();
}

std::optional<v1::Campaign> unfinished_campaign(const std::string& path) {
  auto content = read_small_file(path, kMaxJournalBytes);
  if (!content) return std::nullopt;
  v1::CampaignJournal j;
  Status st = codec::decode(*content, &j, kMaxJournalBytes, "campaign journal " + path);
  if (st.is_ok()) st = check_journal(j).with_context("campaign journal " + path);
  if (!st.is_ok()) {
    OTA_LOGW(kLog, "%s; nothing to resume", st.to_string().c_str());
    return std::nullopt;
  }
  if (j.finished() || j.campaign().campaign_id().empty()) return std::nullopt;
  return j.campaign();
}

Journal::Journal(std::string path, WriteHook before_write)
    : path_(std::move(path)), before_write_(std::move(before_write)) {}

Status Journal::open(const v1::Campaign& campaign) {
  auto content = read_state_file(path_, kMaxJournalBytes);
  if (content) {
    v1::CampaignJournal old;
    Status st = codec::decode(*content, &old, kMaxJournalBytes, "campaign journal " + path_);
    if (st.is_ok()) st = check_journal(old).with_context("campaign journal " + path_);
    if (st.is_ok() && old.campaign().campaign_id() == campaign.campaign_id() && !old.finished()) {
      data_ = std::move(old);
      data_.set_resumes(data_.resumes() + 1);
      OTA_LOGI(kLog, "resuming campaign %s (resume #%llu)", campaign.campaign_id().c_str(),
               static_cast<unsigned long long>(data_.resumes()));
      return save();
    }
    if (!st.is_ok()) OTA_LOGW(kLog, "%s; starting afresh", st.to_string().c_str());
  }
  data_ = new_journal(campaign);
  return save();
}

Status Journal::save() {
  if (before_write_) OTA_RETURN_IF_ERROR(before_write_(data_));
  return atomic_write_file(path_, data_.SerializeAsString());
}

v1::EcuJournal* Journal::ecu(const std::string& ecu_id) {
  for (auto& e : *data_.mutable_ecus()) {
    if (e.ecu_id() == ecu_id) return &e;
  }
  return nullptr;
}

const v1::CampaignTarget* Journal::target(const std::string& ecu_id) const {
  for (const auto& t : data_.campaign().targets()) {
    if (t.ecu_id() == ecu_id) return &t;
  }
  return nullptr;
}

std::vector<v1::EcuJournal*> Journal::members(uint32_t group) {
  std::vector<v1::EcuJournal*> out;
  for (auto& e : *data_.mutable_ecus()) {
    const auto* t = target(e.ecu_id());
    if (t && t->group() == group) out.push_back(&e);
  }
  return out;
}

bool Journal::atomic(uint32_t group) const {
  for (const auto& g : data_.campaign().groups()) {
    if (g.group() == group) return g.atomic();
  }
  return false;
}

}  // namespace ota::client
