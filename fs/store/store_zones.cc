// Data zones and streams: resetting and closing zones, lifetimes (which stream data goes
// to), placing appends, and the synchronous data path (append_blocks, read_blocks).
#include "fs/store/store_impl.h"

namespace nyads {

Status Store::Impl::reset_zone(std::uint32_t zone) {
  NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kReset, zone));
  DataZone& z = zones[zone - sb.data_zones.first];
  if (z.stream != kNoStream) streams.erase(z.stream_key);
  if (job && job->zone_index == zone - sb.data_zones.first) job.reset();  // emptied by overwrites: nothing left to copy
  z.wp = z.start;
  z.valid = 0;
  z.stream = kNoStream;
  z.last_seq = 0;
  z.stream_key = 0;
  z.referenced = false;
  std::vector<DataZone::Owner>().swap(z.owners);  // free: an empty zone holds no list
  ++stats.zones_reset;
  add(fmt::record::ZoneReset{zone});
  return Status::Ok();
}

Status Store::Impl::close_stream_zone(DataZone& z, bool finish) {
  streams.erase(z.stream_key);
  z.stream = kNoStream;
  z.stream_key = 0;
  if (finish && z.wp < z.start + sb.zone_capacity) {
    NYADS_RETURN_IF_ERROR(dev->manage_zone(ZoneAction::kFinish, zone_number(z)));
    z.wp = z.start + sb.zone_capacity;
  }
  if (z.valid == 0 && z.wp != z.start) zone_emptied(z);
  return Status::Ok();
}

Status Store::Impl::reset_unreferenced() {
  if (unreferenced_resets.empty()) return Status::Ok();
  // Counts are whole only once every completion is applied: a zone filled by appends still in
  // flight counts 0 until then (a stream gives it up when its room is reserved, not written).
  NYADS_RETURN_IF_ERROR(drain());
  std::vector<std::uint32_t> list;
  list.swap(unreferenced_resets);
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  const Geometry& g = dev->geometry();
  for (std::uint32_t zone : list) {
    DataZone& z = zones[zone - sb.data_zones.first];
    if (z.valid != 0 || z.stream != kNoStream || z.wp == z.start) continue;
    if (z.referenced) {  // a commit came first: then the commit's rule holds
      resets_after_commit.push_back(zone);
      continue;
    }
    std::erase_if(pending, [&](const fmt::JournalRecord& r) {
      std::uint64_t lba = 0;
      if (const auto* x = std::get_if<fmt::record::Extent>(&r))
        lba = x->lba;
      else if (const auto* m = std::get_if<fmt::record::Moved>(&r))
        lba = m->lba;
      else
        return false;
      if (g.zone_of(lba) != zone) return false;
      pending_bytes -= fmt::encoded_size(r);
      return true;
    });
    NYADS_RETURN_IF_ERROR(reset_zone(zone));
  }
  return Status::Ok();
}

Status Store::Impl::end_namespace_stream(std::uint32_t ns_id) {
  auto it = streams.find(stream_key(kUserStream, ns_id));
  if (it == streams.end()) return Status::Ok();
  NYADS_RETURN_IF_ERROR(drain());
  it = streams.find(stream_key(kUserStream, ns_id));
  if (it == streams.end()) return Status::Ok();
  DataZone& z = zones[it->second.zone_index];
  return close_stream_zone(z, z.valid != 0);
}

Stream Store::Impl::cleaner_stream_for(std::uint32_t born) {
  const double age = static_cast<double>(age_of(born)), unit = lifetime_unit();
  const Stream want = available(age < kYoungAge * unit  ? kCleanerStream
                                : age < kColdAge * unit ? kColdStream
                                                        : kFrozenStream);
  if (has_room(want) || free_zones() > sb.reserved_data_zones) return want;
  for (Stream other : want == kCleanerStream ? std::array{kColdStream, kFrozenStream}
                      : want == kColdStream  ? std::array{kCleanerStream, kFrozenStream}
                                             : std::array{kColdStream, kCleanerStream})
    if (has_room(other)) return other;
  return want;
}

auto Store::Impl::place(Stream stream, std::uint32_t ns_id, std::uint64_t want)
    -> Result<std::pair<DataZone*, std::uint64_t>> {
  const std::uint32_t clean_below = hard_watermark();
  const std::uint64_t key = stream_key(stream, ns_id);
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (auto it = streams.find(key); it != streams.end()) {
      DataZone& z = zones[it->second.zone_index];
      const std::uint64_t room = room_blocks(z);
      if (room > 0) {
        it->second.last_use = ++stream_clock;
        return std::make_pair(&z, std::min(room, want));
      }
      NYADS_RETURN_IF_ERROR(close_stream_zone(z, false));  // full: it leaves the stream
    }
    // A new zone. Users may not take the cleaner's reserve; the cleaner may. Few left: the
    // maps must be whole first (zones emptied since the volume opened are reset only then).
    NYADS_RETURN_IF_ERROR(reset_unreferenced());
    if (!maps_complete() && free_zones() <= clean_below) NYADS_RETURN_IF_ERROR(read_all());
    const std::uint32_t free = free_zones();
    if (is_user(stream) && free <= clean_below && !cleaning) {
      if (!resets_after_commit.empty()) {  // cleaned zones wait for a commit: cheaper than cleaning more
        NYADS_RETURN_IF_ERROR(commit());
        if (free_zones() > clean_below) continue;
      }
      Status cleaned = clean_until_free(clean_below + 1);
      if (!cleaned.ok() && cleaned.code() != Code::kNotFound) return cleaned;
    }
    const std::uint32_t floor = is_user(stream) ? sb.reserved_data_zones : 0;
    if (free_zones() <= floor) {
      if (!resets_after_commit.empty()) {  // zones emptied but not yet reset: commit frees them
        NYADS_RETURN_IF_ERROR(commit());
        continue;
      }
      return Status(Code::kNoSpace, "every data zone holds live data (" + n(free_zones()) + " free, " +
                                        n(sb.reserved_data_zones) +
                                        " reserved for cleaning); trim or delete to free space");
    }
    // Too many namespaces writing at once for the device's zone limits: the stream used
    // least recently gives up its zone (finished: the rest of it is lost to cleaning).
    if (stream == kUserStream) {
      std::size_t open_user = 0;
      for (const auto& [k, st] : streams) open_user += (k >> 32) == kUserStream;
      if (open_user >= user_stream_budget()) {
        NYADS_RETURN_IF_ERROR(drain());  // appends may be in flight to the zone about to finish
        auto victim = streams.end();
        for (auto it = streams.begin(); it != streams.end(); ++it)
          if ((it->first >> 32) == kUserStream &&
              (victim == streams.end() || it->second.last_use < victim->second.last_use))
            victim = it;
        if (victim != streams.end()) NYADS_RETURN_IF_ERROR(close_stream_zone(zones[victim->second.zone_index], true));
        continue;
      }
    }
    for (std::uint32_t i = 0; i < zones.size(); ++i) {
      if (!is_free(zones[i])) continue;
      zones[i].stream = stream;
      zones[i].stream_key = key;
      streams[key] = {i, ++stream_clock};
      break;
    }
  }
  return IoError("could not place data after many attempts");
}

Status Store::Impl::append_blocks(UserPlacement to, std::uint32_t ns_id, std::uint64_t vblock, const std::uint8_t* data,
                                  std::uint64_t blocks) {
  const Geometry& g = dev->geometry();
  const std::uint64_t max_blocks = std::max<std::uint64_t>(1, std::min(g.max_append_blocks, g.max_io_blocks) / per);
  while (blocks > 0) {
    auto placed = place(to.stream, ns_id, std::min(blocks, max_blocks));
    if (!placed.ok()) return placed.status();
    auto [zone, k] = *placed;
    std::vector<std::uint32_t> sums(k);
    for (std::uint64_t i = 0; i < k; ++i)
      sums[i] = fmt::data_checksum(seed, ns_id, vblock + i, {data + i * kBlock, kBlock});
    AlignedBuffer buf(k * kBlock);
    std::memcpy(buf.data(), data, k * kBlock);
    auto lba = SyncDevice(*dev).append(zone->start, static_cast<std::uint32_t>(k * per), buf.data());
    if (!lba.ok()) return lba.status().with_context("appending to zone " + n(zone_number(*zone)));
    map_appended(ns_id, vblock, *lba, static_cast<std::uint32_t>(zone - zones.data()), sums, to.streak);
    data += k * kBlock;
    vblock += k;
    blocks -= k;
  }
  return Status::Ok();
}

Status Store::Impl::check_range(const Namespace* s, std::uint64_t offset, std::uint64_t length,
                                const char* what) const {
  if (s == nullptr) return Status(Code::kNotFound, std::string(what) + ": no such namespace");
  if (s->flags & fmt::kNamespaceQuarantined)
    return IoError(std::string(what) + ": namespace '" + s->name + "' is quarantined (run fsck.nyads)");
  if (length == 0) return InvalidArgument(std::string(what) + " of 0 bytes");
  if (offset % s->block_size != 0 || length % s->block_size != 0)
    return InvalidArgument(std::string(what) + " at byte " + n(offset) + " of " + n(length) +
                           " bytes is not aligned to the namespace's " + n(s->block_size) + "-byte blocks");
  if (offset > s->size || length > s->size - offset)
    return OutOfRange(std::string(what) + " at byte " + n(offset) + " of " + n(length) +
                      " bytes runs past the end of namespace '" + s->name + "' (" + n(s->size) + " bytes)");
  return Status::Ok();
}

Status Store::Impl::read_blocks(Namespace& s, std::uint64_t vblock, std::uint64_t blocks, std::uint8_t* out) {
  for (const auto& p : s.map.lookup(vblock, blocks)) {
    std::uint8_t* dst = out + (p.vblock - vblock) * kBlock;
    if (!p.mapped) {
      std::memset(dst, 0, p.blocks * kBlock);
      continue;
    }
    AlignedBuffer buf(p.blocks * kBlock);
    NYADS_RETURN_IF_ERROR(SyncDevice(*dev).read(p.lba, static_cast<std::uint32_t>(p.blocks * per), buf.data()));
    for (std::uint64_t i = 0; i < p.blocks; ++i) {
      if (fmt::data_checksum(seed, s.id, p.vblock + i, {buf.data() + i * kBlock, kBlock}) != p.checksums[i]) {
        ++stats.checksum_errors;
        return IoError("checksum mismatch in namespace '" + s.name + "' block " + n(p.vblock + i) + " (device block " +
                       n(p.lba + i * per) + ", zone " + n(dev->geometry().zone_of(p.lba + i * per)) + ")");
      }
    }
    std::memcpy(dst, buf.data(), p.blocks * kBlock);
  }
  return Status::Ok();
}

Status Store::Impl::write_range(Namespace& s, std::uint64_t offset, const std::uint8_t* data, std::uint64_t length) {
  const std::uint64_t first = offset / kBlock, last = (offset + length - 1) / kBlock;
  const std::uint64_t blocks = last - first + 1;
  const UserPlacement to = user_placement(s, first);
  if (offset % kBlock == 0 && length % kBlock == 0) return append_blocks(to, s.id, first, data, blocks);
  std::vector<std::uint8_t> buf(blocks * kBlock);
  NYADS_RETURN_IF_ERROR(read_blocks(s, first, 1, buf.data()));
  if (blocks > 1) NYADS_RETURN_IF_ERROR(read_blocks(s, last, 1, buf.data() + (blocks - 1) * kBlock));
  std::memcpy(buf.data() + offset % kBlock, data, length);
  return append_blocks(to, s.id, first, buf.data(), blocks);
}

}  // namespace nyads
