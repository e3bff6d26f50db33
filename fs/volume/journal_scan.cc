#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

namespace {

// The blocks of an unflushed commit, held back from the visitor until the commit is known to
// be whole: nothing is written after a commit until its flush completes, so a block of a later
// commit proves it; at the journal's end, its data read back does.
class HeldCommit {
 public:
  explicit HeldCommit(const std::function<void(const fmt::JournalBlock&, std::uint32_t, std::uint64_t)>& visit)
      : visit_(visit) {}

  bool empty() const { return blocks_.empty(); }
  std::uint64_t first_seq() const { return blocks_.front().seq; }
  // Takes b if it belongs to an unflushed commit (releasing a held one it is not part of);
  // false: the caller visits b. A block that names a commit start replay did not see is an error.
  Result<bool> take(fmt::JournalBlock& b, std::uint32_t zone, std::uint64_t index) {
    const std::optional<std::uint64_t> first = b.unflushed_commit();
    if (!empty() && (!first || *first != first_seq())) release();
    if (!first) return false;
    if (blocks_.size() >= fmt::kUnflushedCommitMaxJournalBlocks)
      return Corruption("journal block " + std::to_string(b.seq) + ": an unflushed commit of more than " +
                        std::to_string(fmt::kUnflushedCommitMaxJournalBlocks) + " journal blocks");
    if (empty() && *first != b.seq)
      return Corruption("journal block " + std::to_string(b.seq) + ": its unflushed commit began at sequence " +
                        std::to_string(*first) + ", which is not in the journal");
    blocks_.push_back(std::move(b));
    where_.push_back({zone, index});
    return true;
  }
  void release() {
    for (std::size_t i = 0; i < blocks_.size(); ++i) visit_(blocks_[i], where_[i].first, where_[i].second);
    drop();
  }
  void drop() {
    blocks_.clear();
    where_.clear();
  }
  const std::vector<fmt::JournalBlock>& blocks() const { return blocks_; }
  JournalPosition start() const { return {where_.front().first, where_.front().second, first_seq()}; }

 private:
  const std::function<void(const fmt::JournalBlock&, std::uint32_t, std::uint64_t)>& visit_;
  std::vector<fmt::JournalBlock> blocks_;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> where_;
};

}  // namespace

namespace {

JournalScan scan_blocks(ZonedDevice& device, const fmt::Superblock& sb, JournalPosition pos,
                        const std::function<void(const fmt::JournalBlock&, std::uint32_t, std::uint64_t)>& visit,
                        HeldCommit& held) {
  MetaIo io(device);
  JournalScan scan;
  const std::uint64_t per_zone = sb.meta_blocks_per_zone();
  for (std::uint32_t zones_seen = 0; zones_seen <= sb.journal_zones.count; ++zones_seen) {
    auto written = io.written(pos.zone);
    if (!written.ok()) {
      scan.corruption = "journal zone " + std::to_string(pos.zone) + ": " + written.status().message();
      break;
    }
    // Read what the zone holds from the position on, in bounded batches.
    bool stop = false;
    while (pos.index < *written && !stop) {
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(*written - pos.index, 64));
      AlignedBuffer buf;
      Status st = io.read(pos.zone, pos.index, n, &buf);
      if (!st.ok()) {
        scan.corruption =
            "journal zone " + std::to_string(pos.zone) + " block " + std::to_string(pos.index) + ": " + st.message();
        return scan;
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::string where = "journal zone " + std::to_string(pos.zone) + " block " + std::to_string(pos.index);
        auto b = fmt::decode_journal_block(
            buf.span().subspan(std::size_t{i} * fmt::kMetaBlockSize, fmt::kMetaBlockSize), sb.seed(), where);
        Status problem = b.ok() ? Status::Ok() : b.status();
        // A valid block of an older pass of the ring where the next was expected: the zone's
        // reset was lost with the power before a flush (and of the blocks written after it, only
        // those before this one, if any, reached the device). Nothing later was flushed: the
        // journal ends here.
        if (b.ok() && b->seq < pos.seq) {
          scan.stale_zone = true;
          scan.end = pos;
          return scan;
        }
        if (b.ok() && b->seq != pos.seq)
          problem =
              Corruption(where + ": sequence " + std::to_string(b->seq) + ", expected " + std::to_string(pos.seq));
        if (!problem.ok()) {
          // The last written block of the journal may be torn by a crash; anything after it is not.
          // A block of a version this build does not read is never taken for a torn one: what
          // it says would be lost without a word.
          const bool last = pos.index + 1 == *written && *written < per_zone && problem.code() != Code::kNotSupported;
          if (last)
            scan.torn_tail = problem.message();
          else
            scan.corruption = problem.message() + " (" + std::to_string(*written - pos.index - 1) +
                              " written blocks follow it in the zone)";
          scan.end = pos;
          return scan;
        }
        auto taken = held.take(*b, pos.zone, pos.index);
        if (!taken.ok()) {
          scan.corruption = taken.status().message();
          scan.end = pos;
          return scan;
        }
        if (!*taken) visit(*b, pos.zone, pos.index);
        ++scan.blocks;
        ++pos.index;
        ++pos.seq;
      }
    }
    if (*written < per_zone) break;  // the journal ends in this zone
    // A full zone: the journal goes on at the start of the next zone of the ring.
    pos.zone = pos.zone + 1 == sb.journal_zones.end() ? sb.journal_zones.first : pos.zone + 1;
    pos.index = 0;
  }
  scan.end = pos;
  return scan;
}

}  // namespace

JournalScan scan_journal(ZonedDevice& device, const fmt::Superblock& sb, JournalPosition pos,
                         const std::function<void(const fmt::JournalBlock&, std::uint32_t, std::uint64_t)>& visit) {
  HeldCommit held(visit);
  JournalScan scan = scan_blocks(device, sb, pos, visit, held);
  if (held.empty()) return scan;
  // The last valid commit is an unflushed one (and whatever ended the scan, damage included,
  // proves nothing about it): trust it only if its data is there.
  const std::string what = "the last commit (" + std::to_string(held.blocks().size()) +
                           " journal blocks from sequence " + std::to_string(held.first_seq()) +
                           ", made durable with its data by one flush)";
  auto check = check_unflushed_commit(device, sb, held.blocks());
  if (check.ok() && check->landed) {
    held.release();
    scan.checked_last_commit = true;
    scan.unproven_zones = std::move(check->data_zones);
    return scan;
  }
  scan.blocks -= held.blocks().size();
  scan.dropped_through_seq = held.blocks().back().seq;
  if (!scan.corruption) {
    if (!check.ok())
      scan.corruption = what + ": " + check.status().message();
    else
      scan.torn_tail = what + " names data that did not all reach the device: " + check->why;
    scan.end = held.start();
  }
  held.drop();
  return scan;
}

}  // namespace nyads
