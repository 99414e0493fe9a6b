// Status and Result: how every module of the project reports an outcome.
//
// A Status is either OK or carries a Code and a message that names what was wrong
// ("chunk 12 of ecu-brake: CRC mismatch"). Codes mirror ota.v1.ErrorCode on the wire.
// Exceptions are reserved for start-up/configuration failures and bugs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace ota {

enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,   // caller passed something malformed
  kNotFound = 2,          // a file, ECU, bank or key does not exist
  kCorrupt = 3,           // bytes from disk or network failed to decode
  kIoError = 4,           // read/write/fsync failed (disk full, device gone)
  kHashMismatch = 5,      // SHA-256 or CRC does not match what was promised
  kSignatureInvalid = 6,  // signature, threshold or key check failed
  kUnsupported = 7,       // protocol version, payload kind or feature not supported
  kTimeout = 8,           // a deadline passed
  kRejected = 9,          // refused by policy (downgrade, expired, wrong VIN...)
  kAborted = 10,          // cancelled by the operator or the campaign
  kUnavailable = 11,      // broker, agent or peer not reachable
  kInternal = 12,         // a bug or an unexpected exception
  kNoSpace = 13,          // not enough space in the bank or staging area
};

const char* code_name(Code code) noexcept;

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() noexcept { return Status(); }

  bool is_ok() const noexcept { return code_ == Code::kOk; }
  explicit operator bool() const noexcept { return is_ok(); }
  Code code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // "HASH_MISMATCH: chunk 12: CRC mismatch", or "OK".
  std::string to_string() const;

  // Prefixes the message with context: "ecu-brake: " + message. No-op on OK.
  Status with_context(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status make_error(Code code, std::string message) { return Status(code, std::move(message)); }

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool is_ok() const noexcept { return std::holds_alternative<T>(v_); }
  explicit operator bool() const noexcept { return is_ok(); }
  // REQUIRES: is_ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  // OK when a value is held.
  Status status() const { return is_ok() ? Status::ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ota

#define OTA_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::ota::Status ota_status_ = (expr);           \
    if (!ota_status_.is_ok()) return ota_status_; \
  } while (0)
