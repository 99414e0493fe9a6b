#include "ota/core/codec.hpp"

#include <chrono>

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
  return Status(Code::kUnsupported, std::string(what) + ": protocol version " + std::to_string(v.major()) + "." +
                                        std::to_string(v.minor()) + " is not supported (this side speaks " +
                                        std::to_string(kProtocolMajor) + ".x)");
}

Status decode(std::string_view bytes, google::protobuf::MessageLite* msg, size_t cap, std::string_view what) {
  if (bytes.size() > cap) {
    return Status(Code::kCorrupt, std::string(what) + ": " + std::to_string(bytes.size()) +
                                      " bytes exceeds the limit of " + std::to_string(cap));
  }
  if (!msg->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status(Code::kCorrupt, std::string(what) + ": malformed protobuf (" + std::to_string(bytes.size()) +
                                      " bytes)");
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
    case v1::PHASE_IDLE: return "idle";
    case v1::PHASE_TRANSFER: return "transfer";
    case v1::PHASE_INSTALL: return "install";
    case v1::PHASE_STAGED: return "staged";
    case v1::PHASE_ACTIVATE: return "activate";
    case v1::PHASE_HEALTH: return "health";
    case v1::PHASE_TRIAL: return "trial";
    case v1::PHASE_COMMIT: return "commit";
    case v1::PHASE_ROLLBACK: return "rollback";
    case v1::PHASE_DONE: return "done";
    default: return "unspecified";
  }
}

}  // namespace ota::codec
