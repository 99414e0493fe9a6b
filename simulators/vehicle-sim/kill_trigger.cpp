#include "kill_trigger.hpp"

#include <algorithm>
#include <set>

#include "ota/core/codec.hpp"
#include "ota/core/file.hpp"
#include "ota/v1/state.pb.h"

namespace ota::sim {
namespace {

const std::set<std::string> kPhases = {"transfer", "install", "staged",   "activate", "health",
                                       "trial",    "commit",  "rollback", "done"};
const std::set<std::string> kDecisions = {"commit", "rollback", "cancel"};

Status bad(const std::string& spec, const std::string& why) {
  return Status(Code::kInvalidArgument, "--kill '" + spec + "': " + why);
}

Status parse_who(const std::string& spec, const std::string& who, KillTrigger* t) {
  if (who == "client") {
    t->who = KillTrigger::Who::kClient;
  } else if (who == "broker") {
    t->who = KillTrigger::Who::kBroker;
  } else if (who.rfind("agent:", 0) == 0 && who.size() > 6) {
    t->who = KillTrigger::Who::kAgent;
    t->agent = who.substr(6);
  } else {
    return bad(spec, "WHO is client, broker or agent:ECU, not '" + who + "'");
  }
  return Status::ok();
}

Status parse_when(const std::string& spec, const std::string& when, KillTrigger* t) {
  const auto colon = when.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == when.size())
    return bad(spec, "WHEN is ECU:PHASE, decision:D or committed:N");
  const std::string head = when.substr(0, colon), tail = when.substr(colon + 1);
  if (head == "decision") {
    if (!kDecisions.count(tail)) return bad(spec, "decision is commit, rollback or cancel");
    t->when = KillTrigger::When::kDecision;
    t->decision = tail;
  } else if (head == "committed") {
    if (tail.size() > 2 || !std::all_of(tail.begin(), tail.end(), ::isdigit))
      return bad(spec, "committed:N takes a number of ECUs (0-99)");
    t->when = KillTrigger::When::kCommitted;
    t->committed = std::stoi(tail);
  } else {
    if (!kPhases.count(tail)) return bad(spec, "unknown phase '" + tail + "'");
    t->when = KillTrigger::When::kPhase;
    t->ecu = head;
    t->phase = tail;
  }
  return Status::ok();
}

}  // namespace

Result<KillTrigger> parse_kill_trigger(const std::string& spec) {
  KillTrigger t;
  t.spec = spec;
  const auto at = spec.find('@');
  if (at == std::string::npos) return bad(spec, "expected WHO@WHEN");
  OTA_RETURN_IF_ERROR(parse_who(spec, spec.substr(0, at), &t));
  OTA_RETURN_IF_ERROR(parse_when(spec, spec.substr(at + 1), &t));
  return t;
}

bool kill_point_reached(const KillTrigger& t, const Observer& observer, const std::string& journal_path) {
  if (t.when == KillTrigger::When::kPhase) return observer.seen_phase(t.ecu, t.phase);
  auto content = read_small_file(journal_path, 16 << 20);
  if (!content) return false;
  v1::CampaignJournal j;
  if (!codec::decode(*content, &j, 16 << 20, "journal").is_ok()) return false;
  if (t.when == KillTrigger::When::kDecision) {
    return std::any_of(j.groups().begin(), j.groups().end(),
                       [&](const v1::GroupJournal& g) { return g.decision() == t.decision; });
  }
  const auto done = std::count_if(j.ecus().begin(), j.ecus().end(),
                                  [](const v1::EcuJournal& e) { return e.phase() == v1::PHASE_DONE; });
  return done >= t.committed;
}

}  // namespace ota::sim
