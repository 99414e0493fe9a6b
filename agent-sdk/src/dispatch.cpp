// From an event to its row of the transition table (state_machine.hpp), and the answers the
// actions share.
#include "agent_impl.hpp"
#include "device_calls.hpp"
#include "ota/core/log.hpp"

namespace ota::agent_impl {

namespace {

constexpr const char* kLog = "agent";

Event event_of(const v1::Command& cmd) {
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

// The transfer a command names, for the guards that compare it with the one held.
const std::string* named_transfer(const v1::Command& cmd) {
  switch (cmd.body_case()) {
    case v1::Command::kInstall:
      return &cmd.install().transfer_id();
    case v1::Command::kActivate:
      return &cmd.activate().transfer_id();
    case v1::Command::kCommit:
      return &cmd.commit().transfer_id();
    default:
      return nullptr;
  }
}

}  // namespace

// The Inbox's handler, on the protocol thread. Nothing escapes into the transport's thread or ends
// the worker.
void AgentCore::handle(const Inbound& m) {
  try {
    if (m.kind == Inbound::Kind::kConnected) {
      (void)run(Event::kConnected, facts(), Input{});
    } else if (m.kind == Inbound::Kind::kData) {
      codec::ChunkView chunk;
      Status st = codec::decode_chunk(m.payload, &chunk);
      if (!st.is_ok()) {
        OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
        return;
      }
      Facts f = facts();
      f.held_transfer = chunk.transfer_id == disk_.view().transfer_id();
      Input in;
      in.chunk = &chunk;
      (void)run(Event::kChunk, f, in);
    } else {
      v1::Command cmd;
      Status st = codec::decode(m.payload, &cmd, codec::kMaxControlMessage, "command");
      if (!st.is_ok()) {
        OTA_LOGW(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.to_string().c_str());
        return;
      }
      handle_command(cmd);
    }
  } catch (const std::exception& e) {
    OTA_LOGE(kLog, "%s: internal error handling a message: %s", cfg_.ecu_id.c_str(), e.what());
  } catch (...) {
    OTA_LOGE(kLog, "%s: internal error handling a message: unknown exception", cfg_.ecu_id.c_str());
  }
}

void AgentCore::handle_command(const v1::Command& cmd) {
  Input in;
  in.cmd = &cmd;
  if (!codec::check_protocol(cmd.protocol(), "command").is_ok()) {
    (void)run(Event::kOtherMajor, facts(), in);
    return;
  }
  out_.set_correlation(cmd.correlation_id());
  (void)run(event_of(cmd), command_facts(cmd), in);
}

Facts AgentCore::facts() const {
  Facts f;
  f.phase = at_rest(disk_.view().phase());
  f.trial = disk_.view().trial();
  f.transfer_open = receiver_.is_open();
  return f;
}

Facts AgentCore::command_facts(const v1::Command& cmd) const {
  Facts f = facts();
  const v1::AgentDiskState& s = disk_.view();
  if (cmd.has_start_transfer()) {
    const v1::StartTransfer& req = cmd.start_transfer();
    f.same_transfer = !s.transfer_id().empty() && s.transfer_id() == req.transfer_id() &&
                      s.target().sha256() == req.target().sha256() &&
                      s.target().payload_sha256() == req.target().payload_sha256() &&
                      s.chunk_size() == req.chunk_size();
  }
  const std::string* named = named_transfer(cmd);
  f.held_transfer = named && !s.transfer_id().empty() && *named == s.transfer_id();
  return f;
}

// Finds the row, performs its action, and checks that the agent ends in a phase the row allows.
Status AgentCore::run(Event event, const Facts& f, const Input& in) {
  const Rule* rule = find_rule(event, f);
  if (!rule) {  // only in a phase that is never at rest: a bug
    Status st(Code::kInternal,
              std::string("no transition for ") + event_name(event) + " in phase " + phase_label(f.phase));
    OTA_LOGE(kLog, "%s: %s", cfg_.ecu_id.c_str(), st.message().c_str());
    if (in.cmd) out_.reply(*in.cmd, v1::OUTCOME_REFUSED, st);
    return st;
  }
  Status st = perform(rule->action, in);
  const v1::Phase after = at_rest(disk_.view().phase());
  if (!rule->to.allows(f.phase, after) && !rule->to_on_failure.allows(f.phase, after)) {
    OTA_LOGE(kLog, "%s: %s in %s by %s ended in %s, which the transition table does not allow",
             cfg_.ecu_id.c_str(), event_name(event), phase_label(f.phase), action_name(rule->action),
             phase_label(after));
  }
  if (on_transition_) on_transition_(*rule, f.phase, after);
  return st;
}

Status AgentCore::perform(Action action, const Input& in) {
  switch (action) {
    case Action::kCreateState:
      return create_state();
    case Action::kResumeTrial:
      return resume_trial();
    case Action::kRollBackUnconfirmedTrial:
      return roll_back_unconfirmed_trial();
    case Action::kReturnToTransfer:
      return return_to_transfer();
    case Action::kKeepState:
      return Status::ok();
    case Action::kPublishPresence:
      publish_presence();
      return Status::ok();
    case Action::kReceiveChunk:
      receiver_.on_chunk(*in.chunk);
      return Status::ok();
    case Action::kDropChunk:  // stale: from a finished transfer, or before the StartTransfer after a restart
      return Status::ok();
    default:
      perform_command(action, in.cmd ? *in.cmd : v1::Command::default_instance());
      return Status::ok();
  }
}

void AgentCore::perform_command(Action action, const v1::Command& cmd) {
  switch (action) {
    case Action::kAnswerReceived:  // already staged, or further: nothing to receive
      return answer_ready(cmd, disk_.view().target().payload_size());
    case Action::kRefuseDuringTrial:
      return refuse_during_trial(cmd);
    case Action::kSettleOpenTransfer:
      return settle_open_transfer(cmd);
    case Action::kResumeTransfer:
      return open_transfer(cmd, true);
    case Action::kBeginTransfer:
      return open_transfer(cmd, false);
    case Action::kAnswerOk:  // idempotent: already done
      return answer(cmd, v1::OUTCOME_OK);
    case Action::kInstall:
      return install(cmd);
    case Action::kActivate:
      return activate(cmd);
    case Action::kCommit:
      return commit(cmd);
    case Action::kRollBackTrial:
      return roll_back_trial(cmd);
    case Action::kAbandonTransfer:
      return abandon_transfer(cmd);
    case Action::kKeepDone:
      return keep_done(cmd);
    case Action::kAnswerInventory:
      return answer_inventory(cmd);
    case Action::kAnswerDtcs:
      return answer_dtcs(cmd);
    case Action::kClearDtcs:
      return clear_dtcs(cmd);
    case Action::kRefuseVersion:
      return refuse_version(cmd);
    default:
      return answer(cmd, v1::OUTCOME_REFUSED, refusal(action, cmd));
  }
}

// A refusal that follows from an earlier failure of this transfer (a rollback after a failed health
// check, or after a restart) names that failure: a client that asks again after its own restart gets
// the cause, not only its consequence.
Status AgentCore::with_last_error(const Status& refusal) const {
  const v1::Error& last = disk_.view().last_error();
  if (last.message().empty()) return refusal;
  return Status(refusal.code(), refusal.message() + " (after: " + last.message() + ")");
}

// Why a refusing row refuses.
Status AgentCore::refusal(Action action, const v1::Command& cmd) const {
  switch (action) {
    case Action::kRefuseUnknownTransfer:
      return Status(Code::kNotFound, "no transfer '" + cmd.install().transfer_id() + "' to install");
    case Action::kRefuseNothingStaged:
      return with_last_error(
          Status(Code::kRejected, "nothing staged for '" + cmd.activate().transfer_id() + "'"));
    case Action::kRefuseNoTrial:
      return with_last_error(Status(Code::kRejected, "no activated update to commit"));
    case Action::kRefuseCancelInTrial:
      return Status(Code::kRejected, "update already activated: cancel no longer applies, roll back instead");
    case Action::kRefuseUnknownCommand:
      return Status(Code::kUnsupported, "command " + cmd.correlation_id() + " has no body this agent knows");
    default:
      return Status(Code::kInternal, std::string("action ") + action_name(action) + " is not a command's");
  }
}

void AgentCore::publish_state(bool force) { out_.publish_state(force, receiver_.next_offset()); }

void AgentCore::set_phase(v1::Phase phase) {
  disk_.change([&](v1::AgentDiskState& s) { s.set_phase(phase); });
  publish_state(true);
}

void AgentCore::fail(const v1::Command& cmd, const Status& st, v1::Phase phase, v1::Outcome outcome) {
  disk_.change([&](v1::AgentDiskState& s) { codec::to_wire(st, phase, s.mutable_last_error()); });
  (void)disk_.save();
  out_.reply(cmd, outcome, st, phase);
  publish_state(true);
}

void AgentCore::answer(const v1::Command& cmd, v1::Outcome outcome, const Status& st) {
  out_.reply(cmd, outcome, st);
}

void AgentCore::answer_ready(const v1::Command& cmd, uint64_t resume_offset) {
  v1::Result r = out_.result(cmd, v1::OUTCOME_OK, Status::ok());
  r.mutable_transfer_ready()->set_resume_offset(resume_offset);
  out_.publish(Leaf::kResult, r, false);
}

void AgentCore::answer_inventory(const v1::Command& cmd) {
  v1::Result r = out_.result(cmd, v1::OUTCOME_OK, Status::ok());
  *r.mutable_inventory() = out_.hello(true).inventory();
  out_.publish(Leaf::kResult, r, false);
}

void AgentCore::answer_dtcs(const v1::Command& cmd) {
  v1::Result r = out_.result(cmd, v1::OUTCOME_OK, Status::ok());
  out_.publish_dtcs(r.mutable_dtcs());
  out_.publish(Leaf::kResult, r, false);
}

void AgentCore::clear_dtcs(const v1::Command& cmd) {
  std::vector<uint32_t> codes(cmd.clear_dtcs().codes().begin(), cmd.clear_dtcs().codes().end());
  Status st = guarded("clear_dtcs", [&] { return dev_.clear_dtcs(codes); });
  v1::Result r = out_.result(cmd, st.is_ok() ? v1::OUTCOME_OK : v1::OUTCOME_FAILED, st);
  out_.publish_dtcs(r.mutable_dtcs());
  out_.publish(Leaf::kResult, r, false);
}

void AgentCore::refuse_version(const v1::Command& cmd) {
  Status version = codec::check_protocol(cmd.protocol(), "command " + cmd.correlation_id());
  v1::Result r = out_.result(cmd, v1::OUTCOME_REFUSED, version);
  r.mutable_error()->set_code(v1::ERROR_CODE_UNSUPPORTED_VERSION);
  OTA_LOGW(kLog, "%s: refused: %s", cfg_.ecu_id.c_str(), version.message().c_str());
  out_.publish(Leaf::kResult, r, false);
}

void AgentCore::publish_presence() {
  out_.publish_hello(true);
  publish_state(true);
  out_.publish_dtcs(nullptr);
}

}  // namespace ota::agent_impl
