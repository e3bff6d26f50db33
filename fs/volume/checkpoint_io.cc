#include <algorithm>
#include <cstring>

#include "nyads/volume.h"

namespace nyads {

namespace fmt = format;

std::uint32_t checkpoint_zones_needed(const fmt::Superblock& sb, std::size_t body_blocks) {
  const std::uint64_t per_zone = sb.meta_blocks_per_zone();
  return static_cast<std::uint32_t>((body_blocks + 1 + per_zone - 1) / per_zone);
}

Status write_checkpoint(ZonedDevice& device, const fmt::Superblock& sb, std::uint64_t seq, const std::vector<std::uint32_t>& zones,
                        const std::vector<CheckpointBody>& bodies, fmt::CheckpointCommit commit) {
  MetaIo io(device);
  const std::size_t n = bodies.size() + 1;
  const std::uint64_t per_zone = sb.meta_blocks_per_zone();
  const std::uint32_t needed = checkpoint_zones_needed(sb, bodies.size());
  if (needed > zones.size())
    return Status(Code::kNoSpace, "checkpoint of " + std::to_string(n) + " blocks needs " + std::to_string(needed) + " zones of " +
                                      std::to_string(per_zone) + " metadata blocks, " + std::to_string(zones.size()) + " are free");
  AlignedBuffer buf(n * fmt::kMetaBlockSize);
  std::vector<std::uint64_t> sums;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    fmt::CheckpointBlock b{seq, static_cast<std::uint32_t>(i), bodies[i]};
    auto out = buf.span().subspan(i * fmt::kMetaBlockSize, fmt::kMetaBlockSize);
    NYADS_RETURN_IF_ERROR(fmt::encode_checkpoint_block(b, sb.seed(), out));
    sums.push_back(fmt::stored_checksum(out));
  }
  commit.block_count = static_cast<std::uint32_t>(bodies.size());
  commit.chain = fmt::chain_checksums(sums, sb.seed());
  commit.zones.assign(zones.begin(), zones.begin() + needed);
  fmt::CheckpointBlock last{seq, commit.block_count, commit};
  NYADS_RETURN_IF_ERROR(fmt::encode_checkpoint_block(last, sb.seed(), buf.span().subspan(bodies.size() * fmt::kMetaBlockSize)));
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

// Reads and checks the checkpoint whose commit sits at the end of `zone`.
Result<LoadedCheckpoint> load_checkpoint(ZonedDevice& device, const fmt::Superblock& sb, std::uint32_t commit_zone,
                                         std::uint64_t commit_index, const fmt::CheckpointBlock& commit_block, const CheckpointExtentSink& sink) {
  MetaIo io(device);
  LoadedCheckpoint cp;
  cp.seq = commit_block.checkpoint_seq;
  cp.commit = std::get<fmt::CheckpointCommit>(commit_block.body);
  const auto& zones = cp.commit.zones;
  const std::string what = "checkpoint " + std::to_string(cp.seq);
  if (zones.back() != commit_zone)
    return Corruption(what + ": its commit is in zone " + std::to_string(commit_zone) + " but names zone " + std::to_string(zones.back()) + " last");
  for (std::uint32_t z : zones)
    if (!sb.checkpoint_zones.contains(z)) return Corruption(what + ": names zone " + std::to_string(z) + ", not a checkpoint zone");
  std::vector<std::uint64_t> sums;
  int stage = 0;  // namespaces, extents, zones: in that order
  std::uint32_t index = 0;
  constexpr std::uint64_t kReadBlocks = (1 << 20) / fmt::kMetaBlockSize;
  AlignedBuffer buf;
  for (std::size_t zi = 0; zi < zones.size(); ++zi) {
    const std::uint32_t z = zones[zi];
    const std::uint64_t count = zi + 1 == zones.size() ? commit_index : sb.meta_blocks_per_zone();
    for (std::uint64_t i = 0; i < count; ++i, ++index) {
      // Read in pieces of 1 MiB through one buffer, not a zone at a time: a zone can be
      // hundreds of MiB, and fresh memory costs its page faults.
      if (i % kReadBlocks == 0) NYADS_RETURN_IF_ERROR(io.read(z, i, static_cast<std::uint32_t>(std::min(kReadBlocks, count - i)), &buf));
      const std::string where = what + " block " + std::to_string(index) + " at zone " + std::to_string(z) + " block " + std::to_string(i);
      auto bytes = buf.span().subspan(i % kReadBlocks * fmt::kMetaBlockSize, fmt::kMetaBlockSize);
      auto b = fmt::decode_checkpoint_block(bytes, sb.seed(), where);
      if (!b.ok()) return b.status();
      if (b->checkpoint_seq != cp.seq) return Corruption(where + ": belongs to checkpoint " + std::to_string(b->checkpoint_seq));
      if (b->index != index) return Corruption(where + ": says it is block " + std::to_string(b->index));
      // Kinds in order: namespaces (1), extents (2, or packed: 5), zones (3).
      const auto kind = b->kind();
      const int kind_stage = kind == fmt::CheckpointKind::kNamespaces ? 0
                             : kind == fmt::CheckpointKind::kZones    ? 2
                             : kind == fmt::CheckpointKind::kCommit   ? 3
                                                                      : 1;
      if (kind == fmt::CheckpointKind::kPackedExtents && !sb.packs_extents())
        return Corruption(where + ": packed extents on a volume without the packed_extents feature");
      if (kind_stage < stage || kind_stage > 2)
        return Corruption(where + ": a block of kind " + std::to_string(static_cast<int>(kind)) + " out of order");
      stage = kind_stage;
      sums.push_back(fmt::stored_checksum(bytes));
      if (auto* ns = std::get_if<std::vector<fmt::NamespaceEntry>>(&b->body)) cp.namespaces.insert(cp.namespaces.end(), ns->begin(), ns->end());
      std::vector<fmt::record::Extent>* extents = std::get_if<std::vector<fmt::record::Extent>>(&b->body);
      if (auto* px = std::get_if<fmt::PackedExtents>(&b->body)) extents = &px->extents;
      if (extents && sink) {
        for (auto& e : *extents) sink(cp, e);
      } else if (extents) {
        cp.extents.insert(cp.extents.end(), std::make_move_iterator(extents->begin()), std::make_move_iterator(extents->end()));
      }
      if (auto* zs = std::get_if<std::vector<fmt::ZoneEntry>>(&b->body)) cp.zones.insert(cp.zones.end(), zs->begin(), zs->end());
    }
  }
  if (index != cp.commit.block_count)
    return Corruption(what + ": " + std::to_string(index) + " blocks precede the commit, it counts " + std::to_string(cp.commit.block_count));
  if (fmt::chain_checksums(sums, sb.seed()) != cp.commit.chain) return Corruption(what + ": the chain of block checksums does not match the commit");
  return cp;
}

}  // namespace

CheckpointSearch load_newest_checkpoint(ZonedDevice& device, const fmt::Superblock& sb, const CheckpointExtentSink& sink) {
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
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) { return a.block.checkpoint_seq > b.block.checkpoint_seq; });
  for (const Candidate& c : candidates) {
    auto cp = load_checkpoint(device, sb, c.zone, c.index, c.block, sink);
    if (cp.ok()) {
      search.newest = std::move(*cp);
      break;
    }
    search.problems.push_back(cp.status().message());
  }
  return search;
}

}  // namespace nyads
