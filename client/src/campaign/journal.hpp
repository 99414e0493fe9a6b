// The campaign journal (v1::CampaignJournal, ota/v1/state.proto) behind a small typed API: what a
// restarted client needs to go on where the campaign stood. Every save() rewrites the whole file
// atomically (temporary file, fsync, rename, directory fsync): a kill leaves the old or the new one.
//
// Threads: not thread-safe; the runner guards it with one mutex (ECU entries change on the staging
// and commit threads). Sizes: a journal file over kMaxJournalBytes is refused as corrupt.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "campaign/decision.hpp"
#include "ota/core/status.hpp"
#include "ota/v1/state.pb.h"

namespace ota::client {

inline constexpr size_t kMaxJournalBytes = 16 << 20;

// The furthest step an ECU completed in this campaign, as EcuJournal.phase keeps it. This is not
// the agent's current phase (AgentState.phase), although the file stores it as a v1::Phase.
enum class EcuStep { kNone, kStaged, kTrial, kDone };

EcuStep completed_step(const v1::EcuJournal& ecu);
void set_completed_step(v1::EcuJournal* ecu, EcuStep step);

// A group's recorded decision: group_decision, or the string `decision` of an earlier client's journal.
GroupDecision recorded_decision(const v1::GroupJournal& group);
// Records it in both forms (see state.proto).
void record_decision(v1::GroupJournal* group, GroupDecision decision);

// A journal as read from disk: kCorrupt naming what does not make sense (a decision that is not one
// of the known ones, an ECU or group the campaign does not have).
Status check_journal(const v1::CampaignJournal& journal);

// The campaign of the journal at `path` when it holds one that is not finished: what a client
// starting up resumes before it listens for any offer. nullopt when there is no journal, it is
// finished, or it cannot be read or makes no sense (logged; Journal::open then starts afresh).
std::optional<v1::Campaign> unfinished_campaign(const std::string& path);

class Journal {
 public:
  // Called before every write with what is about to be written; a non-OK Status fails that write
  // and is returned by save(). Null: no hook.
  using WriteHook = std::function<Status(const v1::CampaignJournal& next)>;

  Journal(std::string path, WriteHook before_write);

  // Resumes the journal at the path when it holds this campaign unfinished (resumes + 1); starts a
  // new one otherwise (no file, unreadable, another campaign, a finished one), replacing the file.
  // Saves either way; errors are the write's.
  Status open(const v1::Campaign& campaign);
  Status save();

  v1::CampaignJournal& data() { return data_; }
  const v1::CampaignJournal& data() const { return data_; }
  const v1::Campaign& campaign() const { return data_.campaign(); }

  // Null when the campaign has no such ECU.
  v1::EcuJournal* ecu(const std::string& ecu_id);
  const v1::CampaignTarget* target(const std::string& ecu_id) const;
  // The ECU entries of one ordering group, in campaign order.
  std::vector<v1::EcuJournal*> members(uint32_t group);
  // GroupPolicy.atomic; false when the campaign has no policy for the group.
  bool atomic(uint32_t group) const;

 private:
  std::string path_;
  WriteHook before_write_;
  v1::CampaignJournal data_;
};

}  // namespace ota::client
