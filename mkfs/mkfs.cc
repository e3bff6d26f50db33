#include "mkfs/mkfs.h"

#include <cstring>
#include <ctime>
#include <random>
#include <sstream>

#include "nyads/aligned_buffer.h"
#include "nyads/sync_device.h"
#include "nyads/units.h"

namespace nyads::mkfs {

namespace fmt = format;

namespace {

// Other formats' signatures, by byte offset from the device start.
struct Signature {
  const char* name;
  std::size_t offset;
  std::string_view magic;
};
const Signature kSignatures[] = {
    {"an ext2/3/4 file system", 1080, std::string_view("\x53\xef", 2)},
    {"an XFS file system", 0, "XFSB"},
    {"a btrfs file system", 64, "_BHRfS_M"},  // zoned btrfs: superblock at the zone start
    {"a btrfs file system", 65536 + 64, "_BHRfS_M"},
    {"an F2FS file system", 1024, std::string_view("\x10\x20\xf5\xf2", 4)},
    {"a LUKS volume", 0, std::string_view("LUKS\xba\xbe", 6)},
    {"a GPT partition table", 512, "EFI PART"},
};

fmt::Uuid random_uuid() {
  std::random_device rd;
  fmt::Uuid u;
  for (auto& b : u) b = static_cast<std::uint8_t>(rd());
  u[6] = static_cast<std::uint8_t>((u[6] & 0x0f) | 0x40);  // version 4
  u[8] = static_cast<std::uint8_t>((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return u;
}

}  // namespace

nyads::Result<std::string> existing_contents(ZonedDevice& device) {
  const Geometry& g = device.geometry();
  auto zones = device.report_zones(0, g.zone_count);
  if (!zones.ok()) return zones.status();
  std::uint32_t used = 0;
  for (const ZoneInfo& z : *zones) used += z.state != ZoneState::kEmpty;
  if (used == 0) return std::string();
  for (std::uint32_t zone : {0u, 1u}) {
    SuperblockZoneScan scan = scan_superblock_zone(device, zone);
    if (scan.newest) {
      const fmt::Superblock& sb = *scan.newest;
      return "a nyads volume (uuid " + fmt::uuid_to_string(sb.uuid) +
             (sb.label.empty() ? "" : ", label '" + sb.label + "'") + ")";
    }
  }
  // Other formats, in what zone 0 holds (up to 68 KiB).
  const ZoneInfo& z0 = (*zones)[0];
  const std::uint64_t bytes = std::min<std::uint64_t>((z0.write_pointer - z0.start) * g.block_size, 69632);
  if (bytes > 0) {
    AlignedBuffer head(bytes);
    if (SyncDevice(device).read(0, static_cast<std::uint32_t>(bytes / g.block_size), head.data()).ok()) {
      for (const Signature& s : kSignatures) {
        if (s.offset + s.magic.size() <= bytes &&
            std::memcmp(head.data() + s.offset, s.magic.data(), s.magic.size()) == 0)
          return std::string(s.name);
      }
    }
  }
  return "data in " + std::to_string(used) + " of " + std::to_string(g.zone_count) + " zones";
}

nyads::Result<Result> format_volume(ZonedDevice& device, const Options& o) {
  const Geometry& g = device.geometry();
  auto planned = plan_volume(g, o.layout);
  if (!planned.ok()) return planned.status();
  fmt::Superblock sb = std::move(*planned);
  sb.uuid = o.uuid ? *o.uuid : random_uuid();
  sb.label = o.label;
  sb.created = static_cast<std::uint64_t>(std::time(nullptr));
  Status valid = fmt::validate_superblock(sb, "the new volume");
  if (!valid.ok()) return InvalidArgument(valid.message());

  auto zones = device.report_zones(0, g.zone_count);
  if (!zones.ok()) return zones.status();
  std::vector<std::uint32_t> to_reset;
  for (std::uint32_t z = 0; z < zones->size(); ++z) {
    const ZoneState s = (*zones)[z].state;
    if (s == ZoneState::kOffline || s == ZoneState::kReadOnly)
      return NotSupported(device.name() + ": zone " + std::to_string(z) + " is " + std::string(zone_state_name(s)) +
                          "; nyads needs every zone writable");
    if (s != ZoneState::kEmpty) to_reset.push_back(z);
    if ((*zones)[z].capacity < sb.zone_capacity)
      return NotSupported(device.name() + ": zone " + std::to_string(z) + " has capacity " +
                          std::to_string((*zones)[z].capacity) + " blocks, less than the device's " +
                          std::to_string(sb.zone_capacity) + "; zones of different capacities are not supported yet");
  }
  if (!o.force) {
    auto found = existing_contents(device);
    if (!found.ok()) return found.status();
    if (!found->empty())
      return Status(Code::kAlreadyExists, device.name() + " holds " + *found + "; mkfs.nyads -f overwrites it");
  }
  Result result{sb, static_cast<std::uint32_t>(to_reset.size())};
  if (o.dry_run) return result;

  // 1. Reset what holds data: the time mkfs takes depends on this, not on the data.
  for (std::size_t i = 0; i < to_reset.size(); ++i) {
    NYADS_RETURN_IF_ERROR(device.manage_zone(ZoneAction::kReset, to_reset[i])
                              .with_context("resetting zone " + std::to_string(to_reset[i])));
    if (o.progress) o.progress(static_cast<std::uint32_t>(i + 1), static_cast<std::uint32_t>(to_reset.size()));
  }
  // Made durable before anything is written. A reset is durable at the next flush (the
  // emulated file's are), and a power cut before it could bring an old volume's zones back
  // with some blocks of the new one over their own: a damaged old volume, not the old volume
  // or none.
  if (!to_reset.empty()) NYADS_RETURN_IF_ERROR(SyncDevice(device).flush().with_context("flushing the zone resets"));
  // 2. The first checkpoint: no namespaces, every data zone empty; the journal starts at the
  //    first journal zone with sequence 1.
  std::vector<CheckpointBody> bodies;
  bodies.emplace_back(std::vector<fmt::NamespaceEntry>{});
  std::vector<fmt::ZoneEntry> entries;
  for (std::uint32_t z = sb.data_zones.first; z < sb.data_zones.end(); ++z) {
    entries.push_back({z, 0, 0, 0});
    if (entries.size() == fmt::kZonesPerBlock) {
      bodies.emplace_back(std::move(entries));
      entries.clear();
    }
  }
  if (!entries.empty()) bodies.emplace_back(std::move(entries));
  fmt::CheckpointCommit commit;
  commit.next_ns_id = 1;
  commit.journal_seq = 1;
  commit.journal_zone = sb.journal_zones.first;
  commit.journal_block = 0;
  commit.created = sb.created;
  NYADS_RETURN_IF_ERROR(write_checkpoint(device, sb, 1, {sb.checkpoint_zones.first}, bodies, commit));
  // 3. The superblock last, primary then backup: until it is there, this is not a volume.
  AlignedBuffer block(fmt::kMetaBlockSize);
  fmt::encode_superblock(sb, block.span());
  MetaIo io(device);
  for (std::uint32_t zone : {0u, 1u}) {
    auto at = io.write(zone, block);
    if (!at.ok()) return at.status().with_context("writing the superblock to zone " + std::to_string(zone));
    NYADS_RETURN_IF_ERROR(io.flush());
    // Finished, the zone holds no active resource; a later superblock version resets it first.
    NYADS_RETURN_IF_ERROR(device.manage_zone(ZoneAction::kFinish, zone));
  }
  return result;
}

std::string describe(const fmt::Superblock& sb) {
  const std::uint64_t zone_bytes = sb.zone_capacity * sb.block_size;
  const std::uint64_t total = std::uint64_t{sb.zone_count} * zone_bytes;
  const std::uint64_t meta_zones = sb.superblock_zones.count + sb.journal_zones.count + sb.checkpoint_zones.count;
  const std::uint64_t usable = std::uint64_t{sb.data_zones.count - sb.reserved_data_zones} * zone_bytes;
  // What the store will promise a first namespace: the data zones less the cleaner's reserve
  // and a zone of headroom per write stream (fs/volume/layout.cc).
  const std::uint64_t promisable =
      promise_limit_bytes(sb, zone_limit_of(sb.max_open_zones, sb.max_active_zones), /*namespace_count=*/1,
                          /*shared_cap=*/4);
  std::ostringstream s;
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * static_cast<double>(total - usable) / static_cast<double>(total));
  s << "uuid        " << fmt::uuid_to_string(sb.uuid) << "\n";
  if (!sb.label.empty()) s << "label       " << sb.label << "\n";
  s << "device      " << sb.zone_count << " zones of " << format_size(sb.zone_size * sb.block_size) << " (capacity "
    << format_size(zone_bytes) << "), " << sb.block_size << "-byte blocks: " << format_size(total) << " writable\n";
  s << "zones       superblock 0-1, journal " << sb.journal_zones.first << "-" << sb.journal_zones.end() - 1 << " ("
    << sb.journal_zones.count << "), checkpoint " << sb.checkpoint_zones.first << "-" << sb.checkpoint_zones.end() - 1
    << " (" << sb.checkpoint_zones.count << "), data " << sb.data_zones.first << "-" << sb.data_zones.end() - 1 << " ("
    << sb.data_zones.count << ", of which " << sb.reserved_data_zones << " reserved for cleaning)\n";
  s << "usable      " << format_size(usable) << " for namespaces; one namespace can be promised "
    << format_size(promisable)
    << " (each write stream keeps a zone of headroom; `nyads status` shows what a new one can have)\n";
  s << "overhead    " << format_size(total - usable) << " (" << pct << "): " << meta_zones << " metadata zones, "
    << sb.reserved_data_zones << " reserve zones\n";
  return s.str();
}

}  // namespace nyads::mkfs
