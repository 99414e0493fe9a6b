// The trust decision on a received campaign (docs/SECURITY.md): with [trust] root it must be a
// SignedCampaign for this vehicle, verified by the trust store; with [trust] allow_unsigned
// (development only) a plain Campaign runs unchecked but for its VIN; with neither nothing runs.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent_directory.hpp"
#include "campaign_intake.hpp"
#include "config.hpp"
#include "ota/core/status.hpp"
#include "ota/core/trust.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::client {

struct Admission {
  v1::Campaign campaign;                     // what the runner executes (empty when refused)
  std::unique_ptr<trust::TrustStore> store;  // set for a signed campaign
  uint64_t director_version = 0;             // of the verified director metadata
  Status refusal;  // not OK: the campaign was refused; a CAMPAIGN_REJECTED report is due
};

// Decides on `input` with the configuration's [trust] and [vehicle] vin, against the agents online.
// A refused signed campaign (unparsable, or failing verification) is an Admission with `refusal`
// set. Errors, which are configuration or usage errors: the trust store cannot be opened, an
// unsigned campaign does not parse or is for another VIN, neither root nor allow_unsigned is set.
Result<Admission> admit_campaign(const ClientConfig& config, const CampaignInput& input,
                                 const std::map<std::string, AgentView>& agents);

// A campaign resumed from the journal after a restart runs without being verified again (it was,
// before it was journaled); its end must still be recorded, or its metadata would stay resumable
// and a replay of it would run again. With [trust] root this opens the trust store and finds the
// counter of the journaled campaign by its signed director metadata (the targets' signed_target,
// persisted with the journal before the first command); the counter was made durable by
// verify_campaign before that. Never refuses: when there is nothing to record (unsigned, no match,
// a store that does not open) `store` stays null and a warning says why.
Admission readmit_journaled(const ClientConfig& config, const v1::Campaign& campaign);

// Once the run ended in any way but postponed, a signed campaign can no longer be resumed, only
// replaced: records that in the trust store (a failure is logged).
void record_campaign_end(Admission& admission, const v1::VehicleReport& report);

}  // namespace ota::client
