// Misbehaviours of an agent on the vehicle bus, for the tests that the client ends a transfer with
// a misbehaving ECU in bounded time. The SDK's agent stays correct: what it hears or says is changed
// on the way, in a Transport wrapped around the one it would use (AgentSeams::make_transport).
//
//   slowloris     every ChunkAck is held back `delay` before it goes out (the agent's thread waits),
//                 so acks trickle in just under the client's stall timeout
//   corrupt-acks  every Chunk arrives with its last byte flipped: the agent refuses each one with a
//                 CORRUPT ack (CRC-32C mismatch), for ever
//   tiny-chunks   declares max_chunk_size 1 (set in the agent's configuration, not here)
//   silent        hello, state and DTCs go out; no Result and no ChunkAck ever does
//   absurd-ack    right after its TransferReady, a ChunkAck with next_offset 2^64-1, before any chunk
//
// Threads: as the wrapped transport; the wrapper keeps the transfer id of the last StartTransfer
// under its own lock.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ota/core/status.hpp"
#include "ota/core/transport.hpp"

namespace ota::sim {

enum class Misbehaviour { kNone, kSlowloris, kCorruptAcks, kTinyChunks, kSilent, kAbsurdAck };

// The names of the command line, in the order of the enum (kNone is "none").
const std::vector<std::string>& misbehaviour_names();
// kInvalidArgument for a name not in misbehaviour_names().
Result<Misbehaviour> parse_misbehaviour(const std::string& name);

// `inner` wrapped to play `m` for agent `ecu_id`; `inner` itself for kNone and kTinyChunks.
// `delay` is the slowloris hold-back per ack.
std::unique_ptr<Transport> misbehaving_transport(std::unique_ptr<Transport> inner, Misbehaviour m,
                                                 const std::string& ecu_id, std::chrono::milliseconds delay);

}  // namespace ota::sim
