// Writing a checkpoint into checkpoint zones, and reading one back: whole (fsck), or, for an
// indexed checkpoint, everything but its extent blocks, which are read later by position.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

std::uint32_t checkpoint_zones_needed(const fmt::Superblock& sb, std::size_t body_blocks) {
  const std::uint64_t per_zone = sb.meta_blocks_per_zone();
  return static_cast<std::uint32_t>((body_blocks + 1 + per_zone - 1) / per_zone);
}

namespace {

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

bool is_extent_body(const CheckpointBody& b) {
  return std::holds_alternative<std::vector<fmt::record::Extent>>(b) || std::holds_alternative<fmt::PackedExtents>(b);
}

}  // namespace

Status write_checkpoint(ZonedDevice& device, const fmt::Superblock& sb, std::uint64_t seq,
                        const std::vector<std::uint32_t>& zones, const std::vector<CheckpointBody>& bodies,
                        fmt::CheckpointCommit commit) {
  MetaIo io(device);
  const std::size_t n = bodies.size() + 1;
  const std::uint64_t per_zone = sb.meta_blocks_per_zone();
  const std::uint32_t needed = checkpoint_zones_needed(sb, bodies.size());
  if (needed > zones.size())
    return Status(Code::kNoSpace, "checkpoint of " + std::to_string(n) + " blocks needs " + std::to_string(needed) +
                                      " zones of " + std::to_string(per_zone) + " metadata blocks, " +
                                      std::to_string(zones.size()) + " are free");
  AlignedBuffer buf(n * fmt::kMetaBlockSize);
  std::vector<std::uint64_t> sums(bodies.size());
  auto encode = [&](std::size_t i, const CheckpointBody& body) -> Status {
    auto out = buf.span().subspan(i * fmt::kMetaBlockSize, fmt::kMetaBlockSize);
    NYADS_RETURN_IF_ERROR(fmt::encode_checkpoint_block({seq, static_cast<std::uint32_t>(i), body}, sb.seed(), out));
    sums[i] = fmt::stored_checksum(out);
    return Status::Ok();
  };
  // Every block but the index first: the index holds the extent blocks' checksums.
  std::vector<std::uint64_t> extent_sums;
  std::size_t index_entries = 0;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    if (const auto* x = std::get_if<fmt::ExtentIndex>(&bodies[i])) {
      index_entries += x->entries.size();
      continue;
    }
    NYADS_RETURN_IF_ERROR(encode(i, bodies[i]));
    if (is_extent_body(bodies[i])) extent_sums.push_back(sums[i]);
  }
  if (index_entries != 0 && index_entries != extent_sums.size())
    return InvalidArgument("an extent index of " + std::to_string(index_entries) + " entries for " +
                           std::to_string(extent_sums.size()) + " extent blocks");
  std::size_t next = 0;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    const auto* x = std::get_if<fmt::ExtentIndex>(&bodies[i]);
    if (x == nullptr) continue;
    fmt::ExtentIndex filled = *x;
    for (auto& e : filled.entries) e.checksum = extent_sums[next++];
    NYADS_RETURN_IF_ERROR(encode(i, filled));
  }
  commit.block_count = static_cast<std::uint32_t>(bodies.size());
  commit.chain = fmt::chain_checksums(sums, sb.seed());
  commit.zones.assign(zones.begin(), zones.begin() + needed);
  fmt::CheckpointBlock last{seq, commit.block_count, commit};
  NYADS_RETURN_IF_ERROR(
      fmt::encode_checkpoint_block(last, sb.seed(), buf.span().subspan(bodies.size() * fmt::kMetaBlockSize)));
  for (std::uint32_t i = 0; i < needed; ++i) {
    const std::size_t first = i * per_zone, count = std::min<std::size_t>(per_zone, n - first);
    AlignedBuffer part(count * fmt::kMetaBlockSize);
    std::memcpy(part.data(), buf.data() + first * fmt::kMetaBlockSize, part.size());
    auto at = io.write(zones[i], part);
    if (!at.ok()) return at.status();
    if (*at != 0) return InvalidArgument("checkpoint zone " + std::to_string(zones[i]) + " was not empty");
  }
  return io.flush();
}

namespace {

// The blocks of one checkpoint by position (block i sits in zone zones[i / per_zone]),
// read in pieces of up to 1 MiB through one buffer: a zone can be hundreds of MiB, and fresh
// memory costs its page faults.
class CheckpointReader {
 public:
  CheckpointReader(ZonedDevice& device, const fmt::Superblock& sb, std::uint64_t seq,
                   const std::vector<std::uint32_t>& zones)
      : io_(device), sb_(sb), seq_(seq), zones_(zones), per_zone_(sb.meta_blocks_per_zone()) {}

  std::string where(std::uint64_t position) const {
    return "checkpoint " + std::to_string(seq_) + " block " + std::to_string(position) + " at zone " +
           std::to_string(zone_of(position)) + " block " + std::to_string(position % per_zone_);
  }

  // Block `position`, decoded and checked to belong here; `last` (> position) bounds how far
  // a read may run ahead. Its stored checksum goes to *stored.
  Result<fmt::CheckpointBlock> block(std::uint64_t position, std::uint64_t last, std::uint64_t* stored) {
    if (position < first_ || position >= first_ + count_) {
      const std::uint64_t in_zone = position % per_zone_;
      const std::uint64_t count = std::min({kReadBlocks, per_zone_ - in_zone, last - position});
      NYADS_RETURN_IF_ERROR(
          io_.read(zone_of(position), in_zone, static_cast<std::uint32_t>(count), &buf_).with_context(where(position)));
      first_ = position;
      count_ = count;
    }
    const auto bytes = buf_.span().subspan((position - first_) * fmt::kMetaBlockSize, fmt::kMetaBlockSize);
    const std::string at = where(position);
    auto b = fmt::decode_checkpoint_block(bytes, sb_.seed(), at);
    if (!b.ok()) return b.status();
    if (b->checkpoint_seq != seq_)
      return Corruption(at + ": belongs to checkpoint " + std::to_string(b->checkpoint_seq));
    if (b->index != position) return Corruption(at + ": says it is block " + std::to_string(b->index));
    if (b->kind() == fmt::CheckpointKind::kPackedExtents && !sb_.packs_extents())
      return Corruption(at + ": packed extents on a volume without the packed_extents feature");
    if (b->kind() == fmt::CheckpointKind::kExtentIndex && !sb_.indexes_extents())
      return Corruption(at + ": an extent index on a volume without the extent_index feature");
    *stored = fmt::stored_checksum(bytes);
    return b;
  }

 private:
  static constexpr std::uint64_t kReadBlocks = (1 << 20) / fmt::kMetaBlockSize;
  std::uint32_t zone_of(std::uint64_t position) const { return zones_[position / per_zone_]; }

  MetaIo io_;
  const fmt::Superblock& sb_;
  std::uint64_t seq_;
  const std::vector<std::uint32_t>& zones_;
  std::uint64_t per_zone_;
  AlignedBuffer buf_;
  std::uint64_t first_ = 0, count_ = 0;
};

std::vector<fmt::record::Extent>* extents_of(fmt::CheckpointBlock& b) {
  if (auto* px = std::get_if<fmt::PackedExtents>(&b.body)) return &px->extents;
  return std::get_if<std::vector<fmt::record::Extent>>(&b.body);
}

// An extent block of an indexed checkpoint against its index entry.
Status check_against_index(const IndexedExtentBlock& ib, fmt::CheckpointBlock& b, std::uint64_t stored,
                           const std::string& where) {
  auto* extents = extents_of(b);
  if (extents == nullptr)
    return Corruption(where + ": the index names an extent block here, it is of kind " +
                      std::to_string(static_cast<int>(b.kind())));
  if (stored != ib.entry.checksum)
    return Corruption(where + ": its checksum " + hex(stored) + " is not the " + hex(ib.entry.checksum) +
                      " its index entry holds");
  return fmt::check_indexed_extents(*extents, ib.entry).with_context(where);
}

// Reads and checks the checkpoint whose commit sits at the end of `zone`.
Result<LoadedCheckpoint> load_checkpoint(ZonedDevice& device, const fmt::Superblock& sb, std::uint32_t commit_zone,
                                         std::uint64_t commit_index, const fmt::CheckpointBlock& commit_block,
                                         const CheckpointExtentSink& sink, ExtentLoading loading) {
  LoadedCheckpoint cp;
  cp.seq = commit_block.checkpoint_seq;
  cp.commit = std::get<fmt::CheckpointCommit>(commit_block.body);
  const auto& zones = cp.commit.zones;
  const std::string what = "checkpoint " + std::to_string(cp.seq);
  if (zones.back() != commit_zone)
    return Corruption(what + ": its commit is in zone " + std::to_string(commit_zone) + " but names zone " +
                      std::to_string(zones.back()) + " last");
  for (std::uint32_t z : zones)
    if (!sb.checkpoint_zones.contains(z))
      return Corruption(what + ": names zone " + std::to_string(z) + ", not a checkpoint zone");
  const std::uint64_t per_zone = sb.meta_blocks_per_zone();
  const std::uint64_t block_count = (zones.size() - 1) * per_zone + commit_index;
  if (cp.commit.block_count != block_count)
    return Corruption(what + ": " + std::to_string(block_count) + " blocks precede the commit, it counts " +
                      std::to_string(cp.commit.block_count));
  CheckpointReader reader(device, sb, cp.seq, zones);
  std::vector<std::uint64_t> sums(block_count);
  // Kinds in order: namespaces (1), the extent index (6), extents (2, or packed: 5), zones (3).
  auto stage_of = [](fmt::CheckpointKind kind) {
    switch (kind) {
      case fmt::CheckpointKind::kNamespaces: return 0;
      case fmt::CheckpointKind::kExtentIndex: return 1;
      case fmt::CheckpointKind::kExtents:
      case fmt::CheckpointKind::kPackedExtents: return 2;
      case fmt::CheckpointKind::kZones: return 3;
      default: return 4;
    }
  };
  int stage = 0;
  std::uint64_t extent_blocks = 0;  // extent blocks read (or skipped) so far
  for (std::uint64_t position = 0; position < block_count; ++position) {
    const std::string where = reader.where(position);
    std::uint64_t stored = 0;
    auto b = reader.block(position, block_count, &stored);
    if (!b.ok()) return b.status();
    const int kind_stage = stage_of(b->kind());
    if (kind_stage < stage || kind_stage > 3)
      return Corruption(where + ": a block of kind " + std::to_string(static_cast<int>(b->kind())) + " out of order");
    if (stage == 1 && kind_stage != 1) {
      // The index is whole: the extent blocks follow it, one per entry. Skip them all, if so
      // asked (this first one is checked against its entry, having been read); the chain
      // takes their checksums from the index.
      for (std::size_t k = 0; k < cp.index.size(); ++k) cp.index[k].position = static_cast<std::uint32_t>(position + k);
      if (loading == ExtentLoading::kDeferIndexed && !cp.index.empty()) {
        if (cp.index.size() > block_count - position)
          return Corruption(where + ": the index names " + std::to_string(cp.index.size()) + " extent blocks, " +
                            std::to_string(block_count - position) + " blocks are left");
        NYADS_RETURN_IF_ERROR(check_against_index(cp.index.front(), *b, stored, where));
        for (const auto& ib : cp.index) sums[ib.position] = ib.entry.checksum;
        position += cp.index.size() - 1;
        extent_blocks = cp.index.size();
        cp.extents_deferred = true;
        stage = 2;
        continue;
      }
    }
    stage = kind_stage;
    sums[position] = stored;
    if (auto* ns = std::get_if<std::vector<fmt::NamespaceEntry>>(&b->body))
      cp.namespaces.insert(cp.namespaces.end(), ns->begin(), ns->end());
    if (auto* x = std::get_if<fmt::ExtentIndex>(&b->body)) {
      for (const auto& e : x->entries) {
        if (!cp.index.empty()) {
          const auto& p = cp.index.back().entry;
          if (e.ns_id < p.ns_id || (e.ns_id == p.ns_id && e.first_vblock < p.end_vblock))
            return Corruption(where + ": index entry " + std::to_string(cp.index.size()) + " (namespace " +
                              std::to_string(e.ns_id) + " block " + std::to_string(e.first_vblock) +
                              ") does not follow the one before it (namespace " + std::to_string(p.ns_id) +
                              ", to block " + std::to_string(p.end_vblock) + ")");
        }
        cp.index.push_back({e, 0});
      }
    }
    if (std::vector<fmt::record::Extent>* extents = extents_of(*b)) {
      if (!cp.index.empty()) {
        if (extent_blocks >= cp.index.size())
          return Corruption(where + ": an extent block beyond the " + std::to_string(cp.index.size()) +
                            " the index names");
        NYADS_RETURN_IF_ERROR(check_against_index(cp.index[extent_blocks], *b, stored, where));
      } else if (sb.indexes_extents()) {
        return Corruption(where +
                          ": an extent block without an extent index, on a volume with the extent_index feature");
      }
      ++extent_blocks;
      if (sink) {
        for (auto& e : *extents) sink(cp, e);
      } else {
        cp.extents.insert(cp.extents.end(), std::make_move_iterator(extents->begin()),
                          std::make_move_iterator(extents->end()));
      }
    }
    if (auto* zs = std::get_if<std::vector<fmt::ZoneEntry>>(&b->body))
      cp.zones.insert(cp.zones.end(), zs->begin(), zs->end());
  }
  if (extent_blocks != cp.index.size() && !cp.index.empty())
    return Corruption(what + ": the index names " + std::to_string(cp.index.size()) +
                      " extent blocks, the checkpoint holds " + std::to_string(extent_blocks));
  if (fmt::chain_checksums(sums, sb.seed()) != cp.commit.chain)
    return Corruption(what + ": the chain of block checksums does not match the commit");
  return cp;
}

}  // namespace

CheckpointSearch load_newest_checkpoint(ZonedDevice& device, const fmt::Superblock& sb,
                                        const CheckpointExtentSink& sink, ExtentLoading loading) {
  CheckpointSearch search;
  MetaIo io(device);
  struct Candidate {
    std::uint32_t zone;
    std::uint64_t index;
    fmt::CheckpointBlock block;
  };
  std::vector<Candidate> candidates;
  for (std::uint32_t z = sb.checkpoint_zones.first; z < sb.checkpoint_zones.end(); ++z) {
    auto written = io.written(z);
    if (!written.ok()) {
      search.problems.push_back("checkpoint zone " + std::to_string(z) + ": " + written.status().message());
      continue;
    }
    if (*written == 0) continue;
    AlignedBuffer buf;
    const std::string where = "checkpoint zone " + std::to_string(z) + " block " + std::to_string(*written - 1);
    Status st = io.read(z, *written - 1, 1, &buf);
    if (!st.ok()) {
      search.problems.push_back(where + ": " + st.message());
      continue;
    }
    auto b = fmt::decode_checkpoint_block(buf.span(), sb.seed(), where);
    if (!b.ok()) {
      search.notes.push_back(b.status().message() + " (a torn checkpoint, ignored)");
      continue;
    }
    if (b->kind() != fmt::CheckpointKind::kCommit) {
      search.notes.push_back(where + ": not a commit (the first zone of a longer checkpoint, or an unfinished one)");
      continue;
    }
    candidates.push_back({z, *written - 1, std::move(*b)});
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.block.checkpoint_seq > b.block.checkpoint_seq; });
  for (const Candidate& c : candidates) {
    auto cp = load_checkpoint(device, sb, c.zone, c.index, c.block, sink, loading);
    if (cp.ok()) {
      search.newest = std::move(*cp);
      break;
    }
    search.problems.push_back(cp.status().message());
  }
  return search;
}

Status read_indexed_extent_blocks(ZonedDevice& device, const fmt::Superblock& sb, std::uint64_t seq,
                                  const std::vector<std::uint32_t>& zones, std::span<const IndexedExtentBlock> blocks,
                                  const IndexedExtentSink& sink) {
  CheckpointReader reader(device, sb, seq, zones);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const IndexedExtentBlock& ib = blocks[i];
    // Read ahead as far as the next blocks asked for run on one after the other.
    std::size_t run = i + 1;
    while (run < blocks.size() && blocks[run].position == blocks[run - 1].position + 1) ++run;
    std::uint64_t stored = 0;
    auto b = reader.block(ib.position, blocks[run - 1].position + 1, &stored);
    if (!b.ok()) return b.status();
    NYADS_RETURN_IF_ERROR(check_against_index(ib, *b, stored, reader.where(ib.position)));
    NYADS_RETURN_IF_ERROR(sink(ib, *extents_of(*b)));
  }
  return Status::Ok();
}

}  // namespace nyads
