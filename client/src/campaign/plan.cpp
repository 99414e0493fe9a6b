#include "campaign/plan.hpp"

#include <algorithm>

namespace ota::client {
namespace {

void set_target(const v1::CampaignTarget& t, v1::Target* tg) {
  tg->set_version(t.version());
  tg->set_size(t.size());
  tg->set_sha256(t.sha256());
  tg->set_hardware_id(t.hardware_id());
  tg->set_kind(v1::PAYLOAD_KIND_FIRMWARE_IMAGE);
  tg->set_allow_downgrade(t.allow_downgrade());
  tg->set_signed_target(t.signed_target());
  tg->set_signed_image(t.signed_image());
}

}  // namespace

TransferPlan make_transfer_plan(const v1::Campaign& campaign, const v1::CampaignTarget& t,
                                const std::string& transfer_id, const AgentView& agent, uint32_t group_size,
                                std::chrono::milliseconds stall_timeout) {
  const auto& caps = agent.hello.inventory().capabilities();
  TransferPlan plan;
  plan.ecu_id = t.ecu_id();
  plan.campaign_id = campaign.campaign_id();
  plan.transfer_id = transfer_id;
  plan.chunk_size = campaign.chunk_size() ? campaign.chunk_size() : 256 * 1024;
  if (caps.max_chunk_size() > 0) plan.chunk_size = std::min(plan.chunk_size, caps.max_chunk_size());
  plan.window = campaign.window()
                    ? campaign.window()
                    : std::max<uint32_t>(1, kInFlightBudget / std::max<uint32_t>(1, group_size));
  if (caps.max_window() > 0) plan.window = std::min(plan.window, caps.max_window());
  plan.stall_timeout = stall_timeout;
  v1::Target& tg = plan.target;
  set_target(t, &tg);
  plan.root_updates = campaign.root_updates();
  const bool use_delta =
      t.has_delta() && caps.delta() && active_bank(agent).sha256() == t.delta().base_sha256();
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
    plan.source =
        t.full().encoding() == v1::PAYLOAD_ENCODING_DELTA ? PayloadSource::kCompressed : PayloadSource::kFile;
  }
  return plan;
}

const v1::PayloadRef& planned_payload(const TransferPlan& plan, const v1::CampaignTarget& target) {
  return plan.target.encoding() == v1::PAYLOAD_ENCODING_DELTA ? target.delta() : target.full();
}

}  // namespace ota::client
