// Batches: many requests' device I/O in flight at once (writes, reads, the cleaner's
// moves), admission of growth, and execute().
#include "fs/store/store_impl.h"

namespace nyads {

void Store::Impl::reap_some(std::size_t min_count) {
  IoCompletion done[64];
  const std::size_t got = dev->reap(done, min_count);
  for (std::size_t i = 0; i < got; ++i) {
    Chunk& c = batch->chunks[done[i].tag];
    c.done = true;
    c.status = std::move(done[i].status);
    if (c.is_write) c.lba = done[i].lba;
  }
}

void Store::Impl::submit_chunk(std::size_t index) {
  Chunk& c = batch->chunks[index];
  IoRequest io;
  io.op = c.is_write ? IoOp::kAppend : IoOp::kRead;
  io.lba = c.is_write ? zones[c.zone_index].start : c.lba;
  io.blocks = static_cast<std::uint32_t>(c.blocks * per);
  io.buffer = c.bounce.size() ? c.bounce.data() : c.target;
  io.tag = index;
  io.prepare = c.checksum;
  io.caller_goes_on = c.is_write && batch->caller_goes_on;
  for (;;) {
    Status st = dev->submit(io);
    if (st.code() == Code::kBusy) {
      reap_some(1);
      continue;
    }
    if (!st.ok()) {
      c.done = true;
      c.status = st;
    }
    return;
  }
}

Status Store::Impl::drain() {
  if (batch == nullptr) return Status::Ok();
  while (dev->in_flight() > 0) reap_some(dev->in_flight());
  std::vector<std::uint32_t> broken_zones;
  for (; batch->applied < batch->chunks.size(); ++batch->applied) {
    Chunk& c = batch->chunks[batch->applied];
    StoreRequest& r = batch->requests[c.request];
    if (!c.done) c.status = IoError("the device lost a request");
    if (!c.status.ok()) {
      if (r.result.ok()) r.result = c.status.with_context(c.is_write ? "writing" : "reading");
      if (c.is_write) broken_zones.push_back(c.zone_index);
      continue;
    }
    if (c.is_write) {
      map_appended(c.ns, c.vblock, c.lba, c.zone_index, c.sums, c.streak);
      continue;
    }
    const std::uint8_t* got = c.bounce.size() ? c.bounce.data() : c.target;
    Namespace* s = ns(c.ns);
    for (std::uint64_t i = 0; i < c.blocks && s != nullptr; ++i) {
      if (fmt::data_checksum(seed, c.ns, c.vblock + i, {got + i * kBlock, kBlock}) == c.sums[i]) continue;
      ++stats.checksum_errors;
      if (r.result.ok())
        r.result =
            IoError("checksum mismatch in namespace '" + s->name + "' block " + n(c.vblock + i) + " (device block " +
                    n(c.lba + i * per) + ", zone " + n(dev->geometry().zone_of(c.lba + i * per)) + ")");
      break;
    }
    if (c.bounce.size() && r.result.ok()) std::memcpy(c.target, c.bounce.data(), c.blocks * kBlock);
  }
  // A failed append leaves the zone's write pointer unknown: finish the zone, so nothing
  // more goes there and it holds no active resource; the cleaner reclaims what it holds.
  for (std::uint32_t i : broken_zones) {
    DataZone& z = zones[i];
    if (z.stream != kNoStream) streams.erase(z.stream_key);
    z.stream = kNoStream;
    z.stream_key = 0;
    (void)dev->manage_zone(ZoneAction::kFinish, zone_number(z));
    z.wp = z.start + sb.zone_capacity;
    if (z.valid == 0) resets_after_commit.push_back(zone_number(z));
  }
  // Everything admitted so far is in the maps now (or failed): admission counts from them.
  batch->growth = 0;
  batch->thin_growth.clear();
  return Status::Ok();
}

Status Store::Impl::flush_moves(Stream target, MoveBatch& b) {
  const Geometry& g = dev->geometry();
  const std::uint64_t max_blocks = std::max<std::uint64_t>(1, std::min(g.max_append_blocks, g.max_io_blocks) / per);
  std::size_t run = 0;
  std::uint64_t into_run = 0, done = 0;
  while (done < b.blocks()) {
    auto placed = place(target, b.ns, std::min(b.blocks() - done, max_blocks));
    if (!placed.ok()) return placed.status();
    auto [zone, k] = *placed;
    AlignedBuffer buf(k * kBlock);
    std::memcpy(buf.data(), b.data.data() + done * kBlock, k * kBlock);
    auto lba = SyncDevice(*dev).append(zone->start, static_cast<std::uint32_t>(k * per), buf.data());
    if (!lba.ok()) return lba.status().with_context("appending to zone " + n(zone_number(*zone)));
    const std::uint32_t zone_index = static_cast<std::uint32_t>(zone - zones.data());
    fmt::record::Moved moved{b.ns, *lba, {}};
    for (std::uint64_t at = 0; at < k;) {
      const fmt::record::Moved::Run& r = b.runs[run];
      const std::uint64_t take = std::min<std::uint64_t>(r.blocks - into_run, k - at);
      const std::uint64_t vblock = r.vblock + into_run;
      account_appended(target, b.ns, vblock, *lba + at * per, zone_index, take);
      if (Namespace* s = ns(b.ns))
        release(s->map.map(vblock, *lba + at * per, std::span(b.sums).subspan(done + at, take), b.borns[run],
                           join_within(), kClockMask));
      else
        release({{*lba + at * per, take}});  // deleted meanwhile: dead at once
      if (moved.runs.size() == fmt::kMaxMovedRunsPerRecord) {
        const std::uint64_t next_lba = *lba + at * per;
        add(std::exchange(moved, fmt::record::Moved{b.ns, next_lba, {}}));
      }
      moved.runs.push_back({vblock, static_cast<std::uint32_t>(take)});
      at += take;
      into_run += take;
      if (into_run == r.blocks) {
        ++run;
        into_run = 0;
      }
    }
    add(std::move(moved));
    done += k;
  }
  b = MoveBatch{};
  return Status::Ok();
}

void Store::Impl::account_appended(Stream stream, std::uint32_t ns_id, std::uint64_t vblock, std::uint64_t lba,
                                   std::uint32_t zone_index, std::uint64_t k) {
  DataZone& zone = zones[zone_index];
  zone.wp = std::max(zone.wp, lba + k * per);
  zone.valid += k;
  // A zone's age is that of its newest write, the cleaner's copies included: carrying the
  // copied data's own age over (LFS) measured worse here under uniform traffic (3.86 vs 3.34).
  zone.last_seq = head.seq;
  zone.add_owner(ns_id, vblock, lba, k, per);
  data_unflushed = true;
  (is_user(stream) ? stats.data_bytes_written : stats.cleaner_bytes_written) += k * kBlock;
}

Status Store::Impl::queue_write(std::size_t request, Namespace& s, std::uint64_t vblock, const std::uint8_t* data,
                                std::uint64_t blocks) {
  const Geometry& g = dev->geometry();
  const std::uint64_t max_blocks = std::max<std::uint64_t>(1, std::min(g.max_append_blocks, g.max_io_blocks) / per);
  const UserPlacement to = user_placement(s, vblock);
  while (blocks > 0) {
    auto placed = place(to.stream, s.id, std::min(blocks, max_blocks));
    if (!placed.ok()) return placed.status();
    auto [zone, k] = *placed;
    Chunk c;
    c.request = request;
    c.is_write = true;
    c.ns = s.id;
    c.vblock = vblock;
    c.blocks = k;
    c.zone_index = static_cast<std::uint32_t>(zone - zones.data());
    c.streak = to.streak;
    if (dma_aligned(data)) {
      c.target = const_cast<std::uint8_t*>(data);  // only read from: the device writes it out
    } else {
      c.bounce = AlignedBuffer::uninitialized(k * kBlock);
      std::memcpy(c.bounce.data(), data, k * kBlock);
    }
    zone->wp += k * per;  // reserve the room: appends in flight land somewhere below here
    // Only the drain needs the sums. A device that runs IoRequest::prepare computes them on
    // its writing thread (the emulated one's: the loop goes on receiving meanwhile, see
    // doc/design.md); for another they are computed here, after the submission, while the
    // device reads the bytes. (The vector's storage stays put when the chunk moves.)
    c.sums.resize(k);
    const std::uint64_t batch_seed = seed;
    const std::uint32_t ns_id = s.id;
    // (count, not k: clang before 16 cannot capture a structured binding.)
    auto checksum = [batch_seed, ns_id, vblock, data, count = std::uint64_t{k}, sums = c.sums.data()] {
      for (std::uint64_t i = 0; i < count; ++i)
        sums[i] = fmt::data_checksum(batch_seed, ns_id, vblock + i, {data + i * kBlock, kBlock});
    };
    const bool beside = dev->runs_prepare();
    if (beside) c.checksum = checksum;
    batch->chunks.push_back(std::move(c));
    submit_chunk(batch->chunks.size() - 1);
    if (!beside) checksum();
    data += k * kBlock;
    vblock += k;
    blocks -= k;
  }
  return Status::Ok();
}

void Store::Impl::queue_read(std::size_t request, Namespace& s, std::uint64_t vblock, std::uint64_t blocks,
                             std::uint8_t* out) {
  const Geometry& g = dev->geometry();
  const std::uint64_t max_blocks = std::max<std::uint64_t>(1, g.max_io_blocks / per);
  for (const auto& p : s.map.lookup(vblock, blocks)) {
    std::uint8_t* dst = out + (p.vblock - vblock) * kBlock;
    if (!p.mapped) {
      std::memset(dst, 0, p.blocks * kBlock);
      continue;
    }
    for (std::uint64_t i = 0; i < p.blocks; i += max_blocks) {
      Chunk c;
      c.request = request;
      c.ns = s.id;
      c.vblock = p.vblock + i;
      c.blocks = std::min(max_blocks, p.blocks - i);
      c.lba = p.lba + i * per;
      c.sums.assign(p.checksums + i, p.checksums + i + c.blocks);
      c.target = dst + i * kBlock;
      if (!dma_aligned(c.target)) c.bounce = AlignedBuffer::uninitialized(c.blocks * kBlock);
      batch->chunks.push_back(std::move(c));
      submit_chunk(batch->chunks.size() - 1);
    }
  }
}

Status Store::Impl::admit_growth_once(const Namespace& x, std::uint64_t offset, std::uint64_t length) {
  const std::uint64_t first = offset / kBlock, end = (offset + length + kBlock - 1) / kBlock;
  std::uint64_t added = 0;
  for (const auto& p : x.map.lookup(first, end - first))
    if (!p.mapped) added += p.blocks;
  if (added == 0) return Status::Ok();
  const std::uint64_t live = live_blocks() + (batch ? batch->growth : 0), limit = live_limit_blocks();
  if (live + added > limit)
    return Status(Code::kNoSpace, "the volume's live data would exceed its " + size_of(limit) + " (" + size_of(live) +
                                      " live); overwrites still work; trim or delete to free space");
  if (is_thin(x) && any_promised()) {
    const std::uint64_t claimed = claimed_total(), promise_limit = promise_limit_blocks(namespaces.size());
    if (claimed + added > promise_limit)
      return Status(Code::kNoSpace, "thin namespace '" + x.name + "' has no more room: of the volume's " +
                                        size_of(promise_limit) + ", " + size_of(claimed) +
                                        " are promised to namespaces or written by thin ones; overwrites still work; "
                                        "trim or delete to free space");
    if (batch) batch->thin_growth[x.id] += added;
  }
  if (batch) batch->growth += added;
  return Status::Ok();
}

void Store::Impl::start_request(std::size_t i, bool& commit_wanted) {
  StoreRequest& r = batch->requests[i];
  using Op = StoreRequest::Op;
  if (r.op == Op::kFlush) {
    commit_wanted = true;
    return;
  }
  static constexpr const char* kWhat[] = {"read", "write", "trim", "write-zeroes", "flush"};
  const std::uint64_t length = r.op == Op::kRead ? r.out.size() : r.op == Op::kWrite ? r.data.size() : r.length;
  Namespace* x = ns(r.ns);
  r.result = check_range(x, r.offset, length, kWhat[static_cast<int>(r.op)]);
  if (!r.result.ok()) return;
  const bool aligned = r.offset % kBlock == 0 && length % kBlock == 0;
  commit_wanted = commit_wanted || r.fua;
  switch (r.op) {
    case Op::kRead:
      if (aligned) return queue_read(i, *x, r.offset / kBlock, length / kBlock, r.out.data());
      r.result = drain();
      if (r.result.ok()) r.result = read_unaligned(*x, r.offset, r.out);
      return;
    case Op::kWrite:
      r.result = admit_growth(*x, r.offset, length);
      if (!r.result.ok()) return;
      if (aligned) {
        r.result = queue_write(i, *x, r.offset / kBlock, r.data.data(), length / kBlock);
      } else {
        r.result = drain();
        if (r.result.ok()) r.result = write_range(*x, r.offset, r.data.data(), length);
      }
      if (r.result.ok()) stats.user_bytes_written += length;
      return;
    case Op::kTrim:
      r.result = drain();
      if (r.result.ok()) r.result = trim_range(*x, r.offset, length);
      return;
    case Op::kWriteZeroes:
      if (r.no_hole) r.result = admit_growth(*x, r.offset, length);
      if (r.result.ok()) r.result = drain();
      if (r.result.ok()) r.result = write_zeroes_range(*x, r.offset, length, r.no_hole);
      return;
    case Op::kFlush: return;
  }
}

Status Store::Impl::execute(std::span<StoreRequest> requests, const std::function<void()>& meanwhile) {
  Batch b;
  b.requests = requests;
  b.caller_goes_on = static_cast<bool>(meanwhile);
  batch = &b;
  bool commit_wanted = false;
  for (auto& r : requests) r.result = Status::Ok();
  // The parts of an indexed checkpoint the batch needs are read before any of its I/O is
  // queued (the reads are synchronous); a request whose part cannot be read fails alone.
  if (!maps_complete()) {
    for (auto& r : requests) {
      Namespace* x = r.op == StoreRequest::Op::kFlush ? nullptr : ns(r.ns);
      if (x == nullptr || x->index_unread == 0) continue;
      const std::uint64_t length = r.op == StoreRequest::Op::kRead    ? r.out.size()
                                   : r.op == StoreRequest::Op::kWrite ? r.data.size()
                                                                      : r.length;
      const std::uint64_t size_blocks = x->size / kBlock, first = std::min(r.offset / kBlock, size_blocks);
      const std::uint64_t end = std::min((r.offset + length + kBlock - 1) / kBlock, size_blocks);
      if (end > first) r.result = read_range(*x, first, end - first);
    }
  }
  for (std::size_t i = 0; i < requests.size(); ++i)
    if (requests[i].result.ok()) start_request(i, commit_wanted);
  if (meanwhile && dev->in_flight() > 0) meanwhile();
  Status st = drain();
  batch = nullptr;
  if (st.ok()) st = reset_unreferenced();
  // Zones emptied by overwrites of durable data are reset only after a commit makes the
  // overwrites durable, and a commit is a device flush: once free zones run short, one commit
  // frees every zone waiting, before the cleaner would copy anything. Not sooner: a client
  // streaming without flushes then goes on emptying zones it wrote since the last commit,
  // which need no commit (zone_emptied), where a commit's flush would write out all it
  // streamed. (Not while the maps are being read: a commit resets nothing until they are
  // whole.)
  if (st.ok() && maps_complete() && !resets_after_commit.empty() &&
      free_zones() <= soft_watermark() + reset_batch_zones())
    commit_wanted = true;
  if (st.ok() && pending_bytes >= commit_due_bytes()) commit_wanted = true;
  // Few free zones: clean a slice sized to keep pace with what this batch wrote, in small
  // steps, instead of stopping one write for whole zones later.
  if (st.ok() && free_zones() <= soft_watermark()) {
    std::uint64_t written = 0;
    for (const auto& r : requests)
      if (r.op == StoreRequest::Op::kWrite) written += r.data.size() / kBlock;
    if (written > 0 && maps_failure.ok()) {
      Status cleaned = clean_some(0, written);
      if (!cleaned.ok() && cleaned.code() != Code::kNotFound && maps_failure.ok()) st = cleaned;
    }
  }
  if (st.ok() && commit_wanted) st = commit();
  if (!st.ok()) {
    for (auto& r : requests)
      if (r.result.ok() && (r.fua || r.op == StoreRequest::Op::kFlush)) r.result = st;
  }
  return st;
}

Result<std::uint32_t> Store::Impl::idle_work() {
  using namespace std::chrono;
  const auto interval = seconds(options.checkpoint_interval_seconds);
  const auto since = steady_clock::now() - last_checkpoint_time;
  // Writes not yet flushed by a client are committed too: a quiet moment costs nothing.
  if (data_unflushed || !pending.empty()) NYADS_RETURN_IF_ERROR(commit());
  // The rest of the maps an indexed checkpoint left unread, a little at a time (1 MiB of
  // checkpoint a call), soon again: until they are whole the cleaner cannot run.
  // (A block that cannot be read stops it, and what needs every map: the volume keeps
  // serving what it can, and waits for fsck.nyads.)
  if (!maps_complete() && maps_failure.ok()) {
    if (read_some(256).ok()) return 1u;
  }
  if (!maps_failure.ok()) return static_cast<std::uint32_t>(duration_cast<milliseconds>(interval).count());
  if (journal_blocks_since_checkpoint > 0 && since >= interval) NYADS_RETURN_IF_ERROR(checkpoint());
  // Clean ahead of need, so a burst of writes finds free zones ready.
  if (free_zones() <= soft_watermark()) {
    Status cleaned = clean_some(capacity_blocks() / 8);
    // An eighth of a zone per call, then a pause: cleaning ahead takes a bounded share.
    if (cleaned.ok()) return 20u;
    if (cleaned.code() != Code::kNotFound) return cleaned;
  }
  if (journal_blocks_since_checkpoint == 0)
    return static_cast<std::uint32_t>(duration_cast<milliseconds>(interval).count());
  return static_cast<std::uint32_t>(std::max<std::int64_t>(0, duration_cast<milliseconds>(interval - since).count()));
}

}  // namespace nyads
