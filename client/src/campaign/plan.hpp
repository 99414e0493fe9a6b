// What the runner sends one ECU (a TransferPlan): the delta when the campaign has one, the agent
// can rebuild it (capabilities.delta) and runs exactly its base image; the full image otherwise.
// Chunk size and window come from the campaign, bounded by the agent's capabilities.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "agent_directory.hpp"
#include "transfer.hpp"

namespace ota::client {

// Chunks in flight on the client's one connection, shared by the ECUs of a group (at least one
// each) when the campaign sets no window. Small on purpose: measured with Paho, which stalls when a
// publish only partly fits the socket buffer, deep windows of 256 KiB chunks were slower, and with
// TCP_NODELAY a chunk per ECU kept 8 ECUs busy (bench/transfer/RESULTS.md).
inline constexpr uint32_t kInFlightBudget = 4;

// The plan for `target`, without its progress callbacks (on_sent). `group_size` is the number of
// ECUs in the target's group. Pure: the payload file is not looked at.
TransferPlan make_transfer_plan(const v1::Campaign& campaign, const v1::CampaignTarget& target,
                                const std::string& transfer_id, const AgentView& agent, uint32_t group_size,
                                std::chrono::milliseconds stall_timeout);

// The payload reference the plan sends (the delta or the full image), for check_payload_file.
const v1::PayloadRef& planned_payload(const TransferPlan& plan, const v1::CampaignTarget& target);

}  // namespace ota::client
