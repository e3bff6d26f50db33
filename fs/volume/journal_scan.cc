#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

JournalScan scan_journal(ZonedDevice& device, const fmt::Superblock& sb, JournalPosition pos,
                         const std::function<void(const fmt::JournalBlock&, std::uint32_t, std::uint64_t)>& visit) {
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
        scan.corruption = "journal zone " + std::to_string(pos.zone) + " block " + std::to_string(pos.index) + ": " + st.message();
        return scan;
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::string where = "journal zone " + std::to_string(pos.zone) + " block " + std::to_string(pos.index);
        auto b = fmt::decode_journal_block(buf.span().subspan(std::size_t{i} * fmt::kMetaBlockSize, fmt::kMetaBlockSize), sb.seed(), where);
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
          problem = Corruption(where + ": sequence " + std::to_string(b->seq) + ", expected " + std::to_string(pos.seq));
        if (!problem.ok()) {
          // The last written block of the journal may be torn by a crash; anything after it is not.
          // A block of a version this build does not read is never taken for a torn one: what
          // it says would be lost without a word.
          const bool last = pos.index + 1 == *written && *written < per_zone && problem.code() != Code::kNotSupported;
          if (last) scan.torn_tail = problem.message();
          else scan.corruption = problem.message() + " (" + std::to_string(*written - pos.index - 1) + " written blocks follow it in the zone)";
          scan.end = pos;
          return scan;
        }
        visit(*b, pos.zone, pos.index);
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

}  // namespace nyads
