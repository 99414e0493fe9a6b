#include "ota/core/status.hpp"

namespace ota {

const char* code_name(Code code) noexcept {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kCorrupt:
      return "CORRUPT";
    case Code::kIoError:
      return "IO_ERROR";
    case Code::kHashMismatch:
      return "HASH_MISMATCH";
    case Code::kSignatureInvalid:
      return "SIGNATURE_INVALID";
    case Code::kUnsupported:
      return "UNSUPPORTED";
    case Code::kTimeout:
      return "TIMEOUT";
    case Code::kRejected:
      return "REJECTED";
    case Code::kAborted:
      return "ABORTED";
    case Code::kUnavailable:
      return "UNAVAILABLE";
    case Code::kInternal:
      return "INTERNAL";
    case Code::kNoSpace:
      return "NO_SPACE";
  }
  return "UNKNOWN";
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return std::string(code_name(code_)) + ": " + message_;
}

Status Status::with_context(const std::string& context) const {
  if (is_ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace ota
