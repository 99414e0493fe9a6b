// validate_campaign (declared in campaign.hpp): the shape checks run before anything else.
#include <set>

#include "campaign.hpp"

namespace ota::client {

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

}  // namespace ota::client
