// Status and Result<T>: how nyads reports errors on the I/O path, without exceptions.
//
// A Status is a code (what kind of failure, for programs) and a message (what exactly went
// wrong, for people). The OK status carries no message and allocates nothing.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace nyads {

enum class Code : unsigned char {
  kOk = 0,
  kInvalidArgument,        // a malformed request or option: the caller's mistake
  kOutOfRange,             // an LBA or zone number beyond the device
  kZoneBoundary,           // an I/O crosses a zone boundary or the zone capacity
  kZoneInvalidWrite,       // a write not at the write pointer
  kZoneFull,               // a write to a full zone
  kZoneReadOnly,           // a write to a read-only zone
  kZoneOffline,            // any I/O to an offline zone
  kTooManyOpenZones,       // the device's open-zone limit would be exceeded
  kTooManyActiveZones,     // the device's active-zone limit would be exceeded
  kInvalidZoneTransition,  // a zone action not allowed in the zone's state
  kIoError,                // the device failed the I/O
  kNotSupported,           // the device or file is not one nyads can use
  kBusy,                   // the submission queue is full: reap completions first
  kCorruption,             // on-disk bytes that fail validation
  kNotFound,
  kAlreadyExists,
  kNoSpace,
};

// A short stable name for a code, e.g. "zone full".
std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "zone full: write to zone 7 ..." — the code's name, then the message.
  std::string to_string() const;

  // The closest errno, for callers that speak POSIX (e.g. the NBD export).
  int to_errno() const;

  // Prefixes the message with context, keeping the code: "mkfs: " + message.
  Status with_context(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {Code::kOutOfRange, std::move(m)}; }
inline Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
inline Status NotSupported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
inline Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }

// Status from errno: "what: strerror(err)". Maps the errnos the kernel's zoned block layer
// uses for zone resource errors (ETOOMANYREFS, EOVERFLOW) to their zone codes.
Status ErrnoStatus(int err, std::string_view what);

// Either a value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}                                  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace nyads

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define NYADS_RETURN_IF_ERROR(expr)      \
  do {                                   \
    ::nyads::Status _nyads_s = (expr);   \
    if (!_nyads_s.ok()) return _nyads_s; \
  } while (0)
