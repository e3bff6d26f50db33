// fsck: checks a nyads volume and repairs what it can. The CLI (main.cc) wraps this; tests
// call it directly too.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "nyads/format.h"
#include "nyads/zoned_device.h"

namespace nyads::fsck {

enum class Severity { kError, kWarning };

// One finding. Every problem names where it is and what was expected there.
struct Problem {
  Severity severity = Severity::kError;
  std::string structure;     // "superblock", "geometry", "zone", "checkpoint", "journal", "map", "data"
  std::int64_t zone = -1;    // -1: not tied to one zone
  std::int64_t offset = -1;  // byte offset in the zone, -1: the whole zone or structure
  std::string message;       // what is wrong
  std::string expected;      // what should be there
  bool fixable = false;
  bool fixed = false;
};

struct Options {
  bool repair = false;  // -y: fix what can be fixed
  bool scrub = false;   // --scrub: read every live data block and check its checksum
  // Asked before each fix when repair is off; none (or false) leaves the problem alone. Fixes
  // that only work together (those a rebuilt checkpoint makes) are asked as one question.
  std::function<bool(const Problem&)> confirm;
};

struct Report {
  std::string device;
  std::optional<format::Superblock> superblock;
  std::vector<Problem> problems;
  std::optional<std::string> operational_error;  // could not check at all (exit 8)
  std::uint64_t checkpoint_seq = 0;
  std::uint64_t journal_blocks = 0;
  std::uint64_t journal_records = 0;
  std::uint32_t namespaces = 0;
  std::uint64_t extents = 0;
  std::uint64_t live_blocks = 0;      // 4 KiB blocks mapped after replay
  std::uint64_t scrubbed_blocks = 0;  // with --scrub
  std::vector<std::string> notes;     // what -v shows: what was read and found in order

  // fsck(8): 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error.
  int exit_code() const;
};

Report check_volume(ZonedDevice& device, const Options& options);

std::string to_text(const Report& report, bool verbose);
std::string to_json(const Report& report);

}  // namespace nyads::fsck
