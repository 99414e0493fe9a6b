// Wire codec: decoding untrusted bytes into protocol messages with size caps and version checks,
// and the mapping between ota::Status and the wire's Error. Internal to the project (exposes
// protobuf types); the SDK's public headers never include it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ota/core/status.hpp"
#include "ota/v1/ota.pb.h"

namespace ota::codec {

inline constexpr uint32_t kProtocolMajor = 1;
inline constexpr uint32_t kProtocolMinor = 0;
// No control message is larger; a Chunk carries at most kMaxChunkSize bytes of payload, so that a
// whole Chunk message stays under the broker's 1 MiB message_size_limit (broker-config).
inline constexpr size_t kMaxControlMessage = 64 * 1024;
inline constexpr uint32_t kMaxChunkSize = 512 * 1024;
inline constexpr size_t kMaxDataMessage = kMaxChunkSize + 1024;

void set_protocol(v1::ProtocolVersion* v);
uint64_t now_ms();

// kUnsupported with a readable message when major differs (or is missing).
Status check_protocol(const v1::ProtocolVersion& v, std::string_view what);

// Parses bytes into msg. kCorrupt when larger than cap or not a valid encoding; what names the message.
Status decode(std::string_view bytes, google::protobuf::MessageLite* msg, size_t cap, std::string_view what);

v1::ErrorCode to_wire(Code code);
Code from_wire(v1::ErrorCode code);
void to_wire(const Status& st, v1::Phase phase, v1::Error* out);
Status from_wire(const v1::Error& err);

const char* phase_name(v1::Phase phase);  // "transfer", "install", ...

}  // namespace ota::codec

namespace ota::codec {

// The data path, decoded and encoded without copying the payload (256 KiB per message): the same
// wire format as v1::Chunk, so either side may use the generated class instead.
struct ChunkView {
  std::string_view transfer_id;
  uint64_t offset = 0;
  std::string_view data;  // points into the buffer given to decode_chunk
  uint32_t crc32c = 0;
  bool last = false;
};

// Parses a Chunk in place: fields in any order, unknown fields skipped (a newer minor version may add
// some), the last occurrence of a field wins, as protobuf does. kCorrupt when larger than
// kMaxDataMessage or not a valid encoding.
Status decode_chunk(std::string_view bytes, ChunkView* out);

// Largest header encode_chunk_header writes for a transfer id of this length.
size_t chunk_header_bound(size_t transfer_id_size);
// Writes every field of `c` but the data bytes themselves: transfer_id, offset, crc32c, last, then
// the tag and length of data. The data bytes (c.data.size() of them) must follow the header
// directly. `out` holds at least chunk_header_bound(c.transfer_id.size()) bytes; returns the count.
size_t encode_chunk_header(const ChunkView& c, uint8_t* out);

}  // namespace ota::codec
