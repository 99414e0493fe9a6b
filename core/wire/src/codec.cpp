#include "ota/core/codec.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <chrono>
#include <cstring>

namespace ota::codec {

void set_protocol(v1::ProtocolVersion* v) {
  v->set_major(kProtocolMajor);
  v->set_minor(kProtocolMinor);
}

uint64_t now_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

Status check_protocol(const v1::ProtocolVersion& v, std::string_view what) {
  if (v.major() == kProtocolMajor) return Status::ok();
  return Status(Code::kUnsupported, std::string(what) + ": protocol version " + std::to_string(v.major()) +
                                        "." + std::to_string(v.minor()) +
                                        " is not supported (this side speaks " +
                                        std::to_string(kProtocolMajor) + ".x)");
}

Status decode(std::string_view bytes, google::protobuf::MessageLite* msg, size_t cap, std::string_view what) {
  if (bytes.size() > cap) {
    return Status(Code::kCorrupt, std::string(what) + ": " + std::to_string(bytes.size()) +
                                      " bytes exceeds the limit of " + std::to_string(cap));
  }
  if (!msg->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status(Code::kCorrupt,
                  std::string(what) + ": malformed protobuf (" + std::to_string(bytes.size()) + " bytes)");
  }
  return Status::ok();
}

v1::ErrorCode to_wire(Code code) {
  int c = static_cast<int>(code);
  return v1::ErrorCode_IsValid(c) ? static_cast<v1::ErrorCode>(c) : v1::ERROR_CODE_INTERNAL;
}

Code from_wire(v1::ErrorCode code) {
  if (code == v1::ERROR_CODE_UNSUPPORTED_VERSION) return Code::kUnsupported;
  int c = static_cast<int>(code);
  if (c < 0 || c > static_cast<int>(Code::kNoSpace)) return Code::kInternal;
  return static_cast<Code>(c);
}

void to_wire(const Status& st, v1::Phase phase, v1::Error* out) {
  out->set_code(to_wire(st.code()));
  out->set_message(st.message());
  out->set_phase(phase);
}

Status from_wire(const v1::Error& err) {
  if (err.code() == v1::ERROR_CODE_OK) return Status::ok();
  return Status(from_wire(err.code()), err.message());
}

const char* phase_name(v1::Phase phase) {
  switch (phase) {
    case v1::PHASE_IDLE:
      return "idle";
    case v1::PHASE_TRANSFER:
      return "transfer";
    case v1::PHASE_INSTALL:
      return "install";
    case v1::PHASE_STAGED:
      return "staged";
    case v1::PHASE_ACTIVATE:
      return "activate";
    case v1::PHASE_HEALTH:
      return "health";
    case v1::PHASE_TRIAL:
      return "trial";
    case v1::PHASE_COMMIT:
      return "commit";
    case v1::PHASE_ROLLBACK:
      return "rollback";
    case v1::PHASE_DONE:
      return "done";
    default:
      return "unspecified";
  }
}

namespace {

using google::protobuf::internal::WireFormatLite;

constexpr uint32_t tag_of(int field, WireFormatLite::WireType type) {
  return static_cast<uint32_t>(field << 3) | static_cast<uint32_t>(type);
}

// v1::Chunk's field numbers (proto/ota/v1/ota.proto).
constexpr uint32_t kTagTransferId = tag_of(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kTagOffset = tag_of(2, WireFormatLite::WIRETYPE_VARINT);
constexpr uint32_t kTagData = tag_of(3, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
constexpr uint32_t kTagCrc = tag_of(4, WireFormatLite::WIRETYPE_FIXED32);
constexpr uint32_t kTagLast = tag_of(5, WireFormatLite::WIRETYPE_VARINT);

Status corrupt_chunk(size_t size, const char* why) {
  return Status(Code::kCorrupt,
                "chunk: malformed protobuf (" + std::to_string(size) + " bytes: " + why + ")");
}

}  // namespace

Status decode_chunk(std::string_view bytes, ChunkView* out) {
  *out = ChunkView{};
  if (bytes.size() > kMaxDataMessage) {
    return Status(Code::kCorrupt, "chunk: " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                                      std::to_string(kMaxDataMessage));
  }
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  const int size = static_cast<int>(bytes.size());
  google::protobuf::io::CodedInputStream in(base, size);
  // A length-delimited field as a view into `bytes`.
  auto read_view = [&](std::string_view* v) {
    uint32_t len = 0;
    if (!in.ReadVarint32(&len) || len > static_cast<uint32_t>(size - in.CurrentPosition())) return false;
    *v = std::string_view(reinterpret_cast<const char*>(base + in.CurrentPosition()), len);
    return in.Skip(static_cast<int>(len));
  };
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;  // the end, or a malformed tag (told apart below)
    bool ok = true;
    switch (tag) {
      case kTagTransferId:
        ok = read_view(&out->transfer_id);
        break;
      case kTagOffset:
        ok = in.ReadVarint64(&out->offset);
        break;
      case kTagData:
        ok = read_view(&out->data);
        break;
      case kTagCrc:
        ok = in.ReadLittleEndian32(&out->crc32c);
        break;
      case kTagLast: {
        uint64_t v = 0;
        ok = in.ReadVarint64(&v);
        out->last = v != 0;
        break;
      }
      default:
        if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_END_GROUP) {
          return corrupt_chunk(bytes.size(), "unexpected end-group tag");
        }
        ok = WireFormatLite::SkipField(&in, tag);
        break;
    }
    if (!ok) return corrupt_chunk(bytes.size(), "truncated or invalid field");
  }
  if (in.CurrentPosition() != size) return corrupt_chunk(bytes.size(), "invalid tag");
  return Status::ok();
}

size_t chunk_header_bound(size_t transfer_id_size) {
  // Tags are one byte each; varints at most 10 (offset, last) or 5 (lengths) bytes.
  return 1 + 5 + transfer_id_size + 1 + 10 + 1 + 4 + 1 + 1 + 1 + 5;
}

size_t encode_chunk_header(const ChunkView& c, uint8_t* out) {
  uint8_t* p = out;
  p = WireFormatLite::WriteTagToArray(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
  p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(c.transfer_id.size()), p);
  if (!c.transfer_id.empty()) std::memcpy(p, c.transfer_id.data(), c.transfer_id.size());
  p += c.transfer_id.size();
  p = WireFormatLite::WriteUInt64ToArray(2, c.offset, p);
  p = WireFormatLite::WriteFixed32ToArray(4, c.crc32c, p);
  if (c.last) p = WireFormatLite::WriteBoolToArray(5, true, p);
  p = WireFormatLite::WriteTagToArray(3, WireFormatLite::WIRETYPE_LENGTH_DELIMITED, p);
  p = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(c.data.size()), p);
  return static_cast<size_t>(p - out);
}

}  // namespace ota::codec
