// fsck's report, for people (text) and for programs (JSON).
#include <sstream>

#include "fsck/fsck.h"
#include "nyads/json_text.h"

namespace nyads::fsck {

namespace {

std::string json_string(const std::string& s) { return json_quote(s); }

std::string location(const Problem& p) {
  std::string s;
  if (p.zone >= 0) s += "zone " + std::to_string(p.zone);
  if (p.offset >= 0) s += (s.empty() ? "" : " ") + std::string("offset ") + std::to_string(p.offset);
  return s;
}

}  // namespace

std::string to_text(const Report& r, bool verbose) {
  std::ostringstream s;
  if (r.operational_error) {
    s << "fsck.nyads: " << r.device << ": " << *r.operational_error << "\n";
    return s.str();
  }
  if (verbose)
    for (const auto& n : r.notes) s << "  " << n << "\n";
  for (const auto& p : r.problems) {
    s << (p.severity == Severity::kError ? "ERROR" : "WARNING") << " [" << p.structure;
    const std::string loc = location(p);
    if (!loc.empty()) s << ", " << loc;
    s << "] " << p.message << "; expected " << p.expected;
    if (p.fixed)
      s << " -- FIXED";
    else if (p.fixable)
      s << " -- fixable with -y";
    s << "\n";
  }
  const int code = r.exit_code();
  s << r.device << ": "
    << (code == 0   ? "clean"
        : code == 1 ? "errors corrected"
                    : "errors left uncorrected")
    << ", " << r.namespaces << " namespaces, " << r.live_blocks << " live blocks, checkpoint " << r.checkpoint_seq
    << ", " << r.journal_blocks << " journal blocks"
    << (r.scrubbed_blocks ? ", " + std::to_string(r.scrubbed_blocks) + " blocks scrubbed" : std::string()) << "\n";
  return s.str();
}

std::string to_json(const Report& r) {
  std::ostringstream s;
  s << "{\n  \"device\": " << json_string(r.device) << ",\n  \"exit_code\": " << r.exit_code() << ",\n";
  if (r.operational_error) s << "  \"operational_error\": " << json_string(*r.operational_error) << ",\n";
  if (r.superblock) {
    s << "  \"uuid\": " << json_string(format::uuid_to_string(r.superblock->uuid))
      << ",\n  \"label\": " << json_string(r.superblock->label)
      << ",\n  \"superblock_generation\": " << r.superblock->generation << ",\n";
  }
  s << "  \"checkpoint\": " << r.checkpoint_seq << ",\n  \"journal_blocks\": " << r.journal_blocks
    << ",\n  \"journal_records\": " << r.journal_records << ",\n  \"namespaces\": " << r.namespaces
    << ",\n  \"extents\": " << r.extents << ",\n  \"live_blocks\": " << r.live_blocks
    << ",\n  \"scrubbed_blocks\": " << r.scrubbed_blocks << ",\n  \"problems\": [";
  for (std::size_t i = 0; i < r.problems.size(); ++i) {
    const Problem& p = r.problems[i];
    s << (i ? "," : "") << "\n    {\"severity\": " << (p.severity == Severity::kError ? "\"error\"" : "\"warning\"")
      << ", \"structure\": " << json_string(p.structure) << ", \"zone\": " << p.zone << ", \"offset\": " << p.offset
      << ", \"message\": " << json_string(p.message) << ", \"expected\": " << json_string(p.expected)
      << ", \"fixable\": " << (p.fixable ? "true" : "false") << ", \"fixed\": " << (p.fixed ? "true" : "false") << "}";
  }
  s << (r.problems.empty() ? "]" : "\n  ]") << ",\n  \"notes\": [";
  for (std::size_t i = 0; i < r.notes.size(); ++i) s << (i ? ", " : "") << json_string(r.notes[i]);
  s << "]\n}\n";
  return s.str();
}

}  // namespace nyads::fsck
