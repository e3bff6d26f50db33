#include "nyads/status.h"

#include <cerrno>
#include <cstring>

namespace nyads {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kOutOfRange: return "out of range";
    case Code::kZoneBoundary: return "zone boundary error";
    case Code::kZoneInvalidWrite: return "zone invalid write";
    case Code::kZoneFull: return "zone is full";
    case Code::kZoneReadOnly: return "zone is read-only";
    case Code::kZoneOffline: return "zone is offline";
    case Code::kTooManyOpenZones: return "too many open zones";
    case Code::kTooManyActiveZones: return "too many active zones";
    case Code::kInvalidZoneTransition: return "invalid zone state transition";
    case Code::kIoError: return "I/O error";
    case Code::kNotSupported: return "not supported";
    case Code::kBusy: return "busy";
    case Code::kCorruption: return "corruption";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kNoSpace: return "no space";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string s(code_name(code_));
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

int Status::to_errno() const {
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument:
    case Code::kZoneBoundary:
    case Code::kZoneInvalidWrite:
    case Code::kInvalidZoneTransition: return EINVAL;
    case Code::kOutOfRange: return ERANGE;
    case Code::kZoneFull:
    case Code::kNoSpace: return ENOSPC;
    case Code::kZoneReadOnly: return EROFS;
    case Code::kTooManyOpenZones: return ETOOMANYREFS;
    case Code::kTooManyActiveZones: return EOVERFLOW;
    case Code::kNotSupported: return ENOTSUP;
    case Code::kBusy: return EBUSY;
    case Code::kNotFound: return ENOENT;
    case Code::kAlreadyExists: return EEXIST;
    case Code::kZoneOffline:
    case Code::kIoError:
    case Code::kCorruption: return EIO;
  }
  return EIO;
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

Status ErrnoStatus(int err, std::string_view what) {
  std::string msg = std::string(what) + ": " + std::strerror(err);
  switch (err) {
    case ETOOMANYREFS: return {Code::kTooManyOpenZones, msg};
    case EOVERFLOW: return {Code::kTooManyActiveZones, msg};
    case EINVAL: return {Code::kInvalidArgument, msg};
    case ENOSPC: return {Code::kNoSpace, msg};
    case ENOENT: return {Code::kNotFound, msg};
    case EEXIST: return {Code::kAlreadyExists, msg};
    case EBUSY: return {Code::kBusy, msg};
    case EOPNOTSUPP: return {Code::kNotSupported, msg};
    case EROFS: return {Code::kZoneReadOnly, msg};
    default: return {Code::kIoError, msg};
  }
}

}  // namespace nyads
