// The journal (group commit of pending records) and checkpoints.
#include "fs/store/store_impl.h"

namespace nyads {

Status Store::Impl::commit() {
  if (!journal_failure.ok()) return journal_failure;
  NYADS_RETURN_IF_ERROR(drain());  // the synchronous I/O below must be the device's only I/O
  // Zones emptied with nothing durable in them go first, and their records with them.
  NYADS_RETURN_IF_ERROR(reset_unreferenced());
  MetaIo io(*dev);
  // Little new data: one flush for it and the journal (format.md §2.4). Otherwise the data is
  // flushed first, so no durable record names data the device may not have.
  // (Not after a commit whose flush failed: its blocks must be durable before any block
  // follows them, or replay would take them for proven.)
  std::vector<std::uint32_t> commit_zones;
  const bool one_flush = data_unflushed && !journal_flush_owed && !pending.empty() && options.one_flush_commits &&
                         one_flush_commit(&commit_zones);
  if (data_unflushed && !one_flush) {
    NYADS_RETURN_IF_ERROR(io.flush());
    data_unflushed = false;
    journal_flush_owed = false;
  }
  if (!pending.empty()) {
    // From now on durable records may point into any zone written so far (even if the write
    // fails: some of its blocks may have reached the device).
    for (auto& z : zones)
      if (z.wp != z.start) z.referenced = true;
    Status written = write_journal(io, one_flush ? std::optional<std::uint64_t>(head.seq) : std::nullopt);
    if (!written.ok()) {
      journal_failure =
          written.with_context("the journal lost records (no further commit until the volume is opened again)");
      return journal_failure;
    }
    // The commit before this one is proven now (a later one is written after its flush); this
    // one, if it is a one-flush commit, is what replay would read back.
    set_unproven(one_flush ? std::move(commit_zones) : std::vector<std::uint32_t>{});
    if (Status flushed = io.flush(); !flushed.ok()) {
      // The blocks are written, not known durable: the next commit flushes before it writes
      // more (a retry, as for data: the device keeps what it was given).
      data_unflushed = true;
      journal_flush_owed = true;
      return flushed;
    }
    data_unflushed = false;
    journal_flush_owed = false;
    if (one_flush) ++stats.one_flush_commits;
  }
  ++stats.flushes;
  // The records that emptied these zones are durable now: reset them. (Not before the maps
  // are whole: until then a zone's count is the checkpoint's, which is trusted to hold data
  // back, never to let it go.)
  if (!maps_complete()) return maybe_checkpoint();
  std::vector<std::uint32_t> resets;
  resets.swap(resets_after_commit);
  std::sort(resets.begin(), resets.end());
  resets.erase(std::unique(resets.begin(), resets.end()), resets.end());
  for (std::uint32_t z : resets) {
    DataZone& d = zones[z - sb.data_zones.first];
    if (d.unproven) {  // replay may read its data back: after the next commit
      resets_after_commit.push_back(z);
      continue;
    }
    if (d.valid == 0 && d.stream == kNoStream && d.wp != d.start) NYADS_RETURN_IF_ERROR(reset_zone(z));
  }
  return maybe_checkpoint();
}

bool Store::Impl::one_flush_commit(std::vector<std::uint32_t>* data_zones) const {
  const std::size_t mark = fmt::kUnflushedCommitRecordBytes;
  std::uint64_t blocks = 0;
  data_zones->clear();
  // At most ~520 journal blocks, however the records pack (a reader refuses more than 1024).
  if (pending_bytes > (1u << 20)) return false;
  for (const auto& r : pending) {
    if (std::holds_alternative<fmt::record::Moved>(r) || fmt::encoded_size(r) + mark > fmt::kJournalPayloadBytes)
      return false;
    if (const auto* x = std::get_if<fmt::record::Extent>(&r)) {
      blocks += x->checksums.size();
      if (blocks > fmt::kUnflushedCommitMaxDataBlocks) return false;
      data_zones->push_back(dev->geometry().zone_of(x->lba));
    }
  }
  std::sort(data_zones->begin(), data_zones->end());
  data_zones->erase(std::unique(data_zones->begin(), data_zones->end()), data_zones->end());
  // Not into a zone reset since the last flush: until a flush the reset need not be durable,
  // and a power cut could keep this commit's journal blocks (another zone) yet bring the zone
  // back with its old write pointer and old blocks under some of the new ones. Read back,
  // that is a mismatch below the write pointer, which replay must take for damage. Flushed
  // first, the reset is durable and data that did not land is past the write pointer. (A
  // zone is reset about once per pass over it: a rare second flush.)
  for (const auto& r : pending)
    if (const auto* reset = std::get_if<fmt::record::ZoneReset>(&r))
      if (std::binary_search(data_zones->begin(), data_zones->end(), reset->zone)) return false;
  return true;
}

Status Store::Impl::write_journal(MetaIo& io, std::optional<std::uint64_t> unflushed_from) {
  // Pack records into blocks.
  std::vector<fmt::JournalBlock> blocks;
  std::size_t used = fmt::kJournalPayloadBytes;
  for (auto& r : pending) {
    const std::size_t sz = fmt::encoded_size(r);
    if (used + sz > fmt::kJournalPayloadBytes) {
      blocks.push_back({0, {}});
      used = 0;
      if (unflushed_from) {
        fmt::record::UnflushedCommit mark;
        mark.first_seq = *unflushed_from;
        blocks.back().records.emplace_back(std::in_place_type<fmt::record::UnflushedCommit>, mark);
        used = fmt::kUnflushedCommitRecordBytes;
      }
    }
    blocks.back().records.push_back(std::move(r));
    used += sz;
  }
  pending.clear();
  pending_bytes = 0;
  std::size_t i = 0;
  while (i < blocks.size()) {
    const std::uint64_t per_zone = sb.meta_blocks_per_zone();
    if (head.index >= per_zone) {
      NYADS_RETURN_IF_ERROR(next_journal_zone());
      continue;
    }
    const std::size_t k = std::min<std::size_t>(blocks.size() - i, per_zone - head.index);
    AlignedBuffer buf(k * fmt::kMetaBlockSize);
    for (std::size_t j = 0; j < k; ++j) {
      blocks[i + j].seq = head.seq + j;
      NYADS_RETURN_IF_ERROR(fmt::encode_journal_block(
          blocks[i + j], seed, buf.span().subspan(j * fmt::kMetaBlockSize, fmt::kMetaBlockSize)));
    }
    auto at = io.write(head.zone, buf);
    if (!at.ok()) return at.status().with_context("writing the journal");
    if (*at != head.index)
      return IoError("journal zone " + n(head.zone) + " write pointer at block " + n(*at) + ", expected " +
                     n(head.index));
    head.index += k;
    head.seq += k;
    i += k;
    stats.journal_blocks_written += k;
    stats.metadata_bytes_written += k * fmt::kMetaBlockSize;
    journal_blocks_since_checkpoint += k;
  }
  return Status::Ok();
}

Status Store::Impl::next_journal_zone() {
  const std::uint32_t next = head.zone + 1 == sb.journal_zones.end() ? sb.journal_zones.first : head.zone + 1;
  MetaIo io(*dev);
  auto written = io.written(next);
  if (!written.ok()) return written.status();
  if (*written != 0) {
    // The live journal runs from where the newest checkpoint's replay starts to the head; a
    // zone outside it holds an older pass of the ring (its reset after a checkpoint was lost
    // with the power before a flush): reset it. Only the zone replay starts in means the ring
    // is full.
    if (next == journal_start_zone)
      return IoError("journal zone " + n(next) + " is not empty: the journal ring is full");
    NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kReset, next));
  }
  head = {next, 0, head.seq};
  return Status::Ok();
}

Status Store::Impl::maybe_checkpoint() {
  const std::uint64_t per_zone = sb.meta_blocks_per_zone();
  // Keep one journal zone empty: checkpoint when the blocks since the last checkpoint would
  // fill all but one of the ring's zones, or after the configured amount.
  // A checkpoint costs as many blocks as the maps take, so wait for at least four times
  // that much journal: checkpoints then add at most a quarter to the metadata written.
  const std::uint64_t ring_limit = (sb.journal_zones.count - 1) * per_zone - per_zone / 2;
  const std::uint64_t wanted = std::max(options.checkpoint_after_journal_blocks, 4 * last_checkpoint_blocks);
  // With maps that cannot be read whole, no checkpoint can be written: the journal goes on
  // while the ring has room (so the volume keeps working until fsck.nyads is run).
  if (!maps_failure.ok() && journal_blocks_since_checkpoint < ring_limit) return Status::Ok();
  if (journal_blocks_since_checkpoint >= std::min(wanted, ring_limit)) return checkpoint();
  return Status::Ok();
}

Status Store::Impl::checkpoint() {
  const bool nested = in_checkpoint;
  if (nested) return Status::Ok();
  in_checkpoint = true;
  Status st = write_new_checkpoint();
  in_checkpoint = false;
  return st;
}

Status Store::Impl::write_new_checkpoint() {
  // A checkpoint holds every extent: the ones not read yet are read first (they live in the
  // newest checkpoint's zones, which this one does not touch).
  if (!maps_complete()) NYADS_RETURN_IF_ERROR(read_all());
  NYADS_RETURN_IF_ERROR(commit());
  // Nothing is in flight now: zones that take no more writes drop their lists' growth room
  // (closing a zone cannot: appends to it may still be completing).
  for (auto& z : zones)
    if (z.stream == kNoStream) z.owners.shrink_to_fit();
  MetaIo io(*dev);
  // Replay will start at the journal's head; if its zone is full, at the next zone.
  auto written = io.written(head.zone);
  if (!written.ok()) return written.status();
  head.index = *written;  // past a torn block recovery left behind
  if (head.index >= sb.meta_blocks_per_zone()) NYADS_RETURN_IF_ERROR(next_journal_zone());
  CheckpointContent content;
  for (const auto& [id, x] : namespaces)
    content.namespaces.push_back({x.id, x.flags, x.block_size, x.size, mapped_blocks(x), x.name});
  content.extents_of = [&](const ExtentVisitor& visit) {
    for (const auto& entry : namespaces) {
      const std::uint32_t id = entry.first;
      entry.second.map.for_each([&](std::uint64_t vblock, std::uint64_t lba, std::span<const std::uint32_t> sums) {
        visit(id, vblock, lba, sums);
      });
    }
  };
  for (const auto& z : zones) {
    // The format knows hot and cold streams: the users' own are hot, the rest cold.
    const std::uint8_t stream_flag = z.stream == kNoStream ? 0 : z.stream == kUserStream ? 1 : 2;
    content.zones.push_back({zone_number(z), stream_flag, static_cast<std::uint32_t>(z.valid * per), z.last_seq});
  }
  const std::vector<CheckpointBody> bodies = pack_checkpoint(content, per, CheckpointLayout::of(sb));
  fmt::CheckpointCommit commit_fields;
  commit_fields.next_ns_id = next_ns_id;
  commit_fields.journal_seq = head.seq;
  commit_fields.journal_zone = head.zone;
  commit_fields.journal_block = static_cast<std::uint32_t>(head.index);
  commit_fields.created = static_cast<std::uint64_t>(std::time(nullptr));
  auto used = write_checkpoint_beside(*dev, sb, checkpoint_seq + 1, bodies, commit_fields, newest_checkpoint_zones);
  if (!used.ok()) return used.status();
  ++checkpoint_seq;
  newest_checkpoint_zones = std::move(*used);
  set_unproven({});  // replay starts after the journal's last commit now: it is never read back
  ++stats.checkpoints;
  stats.metadata_bytes_written += (bodies.size() + 1) * fmt::kMetaBlockSize;
  last_checkpoint_blocks = bodies.size() + 1;
  journal_blocks_since_checkpoint = 0;
  last_checkpoint_time = std::chrono::steady_clock::now();
  // The journal before the new replay start is obsolete: reset its other zones, and flush, so
  // the resets last (a device may keep a reset only once a flush follows it).
  journal_start_zone = head.zone;
  bool reset = false;
  for (std::uint32_t z = sb.journal_zones.first; z < sb.journal_zones.end(); ++z) {
    if (z == head.zone) continue;
    auto w = io.written(z);
    if (w.ok() && *w > 0) {
      NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kReset, z));
      reset = true;
    }
  }
  return reset ? io.flush() : Status::Ok();
}

}  // namespace nyads
