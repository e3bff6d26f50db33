// Cleaning: choosing victims by cost-benefit, moving their live blocks, resetting zones.
#include "fs/store/store_impl.h"

namespace nyads {

auto Store::Impl::pick_victim() -> DataZone* {
  DataZone* best = nullptr;
  double best_score = 0;
  const double cap = static_cast<double>(capacity_blocks());
  for (auto& z : zones) {
    if (z.stream != kNoStream || z.wp == z.start || z.valid >= capacity_blocks()) continue;
    if (z.valid == 0) continue;  // empty already: the next commit resets it
    if (job && &z == &zones[job->zone_index]) continue;
    const double u = static_cast<double>(z.valid) / cap;
    const double age = static_cast<double>(head.seq - std::min(head.seq, z.last_seq)) + 1;
    const double score = (1 - u) * age / (1 + u);
    if (!best || score > best_score) {
      best = &z;
      best_score = score;
    }
  }
  return best;
}

Result<bool> Store::Impl::clean_slice(std::uint64_t budget) {
  DataZone& victim = zones[job->zone_index];
  const std::uint64_t lo = victim.start, hi = victim.start + sb.zone_size;
  std::uint64_t copied = 0;
  std::array<MoveBatch, 3> batches;  // by target stream: young, cold, frozen
  while (job && job->next_owner < victim.owners.size() && (copied == 0 || copied < budget)) {
    const DataZone::Owner o = victim.owners[job->next_owner++];
    Namespace* s = ns(o.ns);
    if (s == nullptr) continue;
    const std::uint64_t o_vblock = o.vblock(), o_lba = victim.start + o.offset;
    // Still live: the namespace maps these blocks to exactly where this write put them.
    // (Only values: moving a run changes the map, which would leave a Piece's checksum pointer dangling.)
    struct LiveRun {
      std::uint64_t vblock, blocks;
      std::uint32_t born;
    };
    std::vector<LiveRun> live;
    for (const auto& p : s->map.lookup(o_vblock, o.blocks()))
      if (p.mapped && p.lba == o_lba + (p.vblock - o_vblock) * per && p.lba >= lo && p.lba < hi)
        live.push_back({p.vblock, p.blocks, p.born});
    for (const auto& run : live) {
      const std::uint64_t vblock = run.vblock, blocks = run.blocks;
      const Stream target = cleaner_stream_for(run.born);
      MoveBatch& moves = batches[target - kCleanerStream];
      if (moves.ns != o.ns || moves.blocks() + blocks > kMoveBatchBlocks)
        NYADS_RETURN_IF_ERROR(flush_moves(target, moves));
      // read_blocks verifies every block: a damaged one stops the cleaner here, never moves.
      NYADS_RETURN_IF_ERROR(moves.add(*s, vblock, blocks, run.born,
                                      [&](std::uint8_t* out) { return read_blocks(*s, vblock, blocks, out); }));
      copied += blocks;
    }
  }
  for (std::size_t t = 0; t < batches.size(); ++t)
    NYADS_RETURN_IF_ERROR(flush_moves(static_cast<Stream>(kCleanerStream + t), batches[t]));
  if (!job) return true;  // the zone emptied and was reset meanwhile
  if (job->next_owner < victim.owners.size()) return false;
  job.reset();
  ++stats.zones_cleaned;
  if (victim.valid == 0) resets_after_commit.push_back(zone_number(victim));
  // The zone is reset once the copies' records are durable. Measured: deferring that to the
  // next commit (one flush for several zones) made each flush of an emulated file longer by
  // as much, and 4 KiB QD32 writes slower (58k -> 24k IOPS through NBD): commit now.
  NYADS_RETURN_IF_ERROR(commit());
  return true;
}

Status Store::Impl::start_job() {
  NYADS_RETURN_IF_ERROR(drain());
  // The cleaner finds live blocks through the zones' write lists: they need the whole maps.
  if (!maps_complete()) NYADS_RETURN_IF_ERROR(read_all());
  if (job) return Status::Ok();
  DataZone* victim = pick_victim();
  if (victim == nullptr) return Status(Code::kNotFound, "no zone is worth cleaning");
  job = CleanJob{static_cast<std::uint32_t>(victim - zones.data()), 0, victim->valid};
  // Its blocks leave as moved records, which keep the checksums of the records that put them
  // there: those must not be dropped, so the zone is reset only after a commit, like one a
  // durable record names (and clean_slice commits when the zone is done anyway).
  victim->referenced = true;
  live_estimate = 0;  // N afresh for the ages of what it copies (trims and deletes move it too)
  return Status::Ok();
}

Status Store::Impl::clean_some(std::uint64_t budget, std::uint64_t written) {
  if (cleaning) return Status::Ok();
  NYADS_RETURN_IF_ERROR(start_job());
  if (written > 0) {
    const double u = std::min(0.95, static_cast<double>(job->start_valid) / static_cast<double>(capacity_blocks()));
    budget = static_cast<std::uint64_t>(static_cast<double>(written) * std::max(2.0, 1.5 * u / (1 - u))) + 16;
  }
  cleaning = true;
  auto done = clean_slice(budget);
  cleaning = false;
  return done.status();
}

Status Store::Impl::clean_step() {
  if (cleaning) return Status::Ok();
  NYADS_RETURN_IF_ERROR(start_job());
  cleaning = true;
  Result<bool> done = false;
  while (done.ok() && !*done) done = clean_slice(UINT64_MAX);
  cleaning = false;
  return done.ok() ? Status::Ok() : done.status();
}

}  // namespace nyads
