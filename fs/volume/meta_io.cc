#include <algorithm>
#include <cstring>

#include "nyads/sync_device.h"
#include "nyads/volume.h"

namespace nyads {

MetaIo::MetaIo(ZonedDevice& device) : dev_(device), bpm_(format::kMetaBlockSize / device.geometry().block_size) {}

std::uint64_t MetaIo::lba(std::uint32_t zone, std::uint64_t index) const {
  return dev_.geometry().zone_start(zone) + index * bpm_;
}

Result<std::uint64_t> MetaIo::written(std::uint32_t zone) {
  auto z = dev_.report_zones(zone, 1);
  if (!z.ok()) return z.status();
  const ZoneInfo& info = (*z)[0];
  return (info.write_pointer - info.start) / bpm_;
}

Status MetaIo::read(std::uint32_t zone, std::uint64_t index, std::uint32_t count, AlignedBuffer* out) {
  // Reused when it has the size already (a caller reading a zone in pieces), and not zeroed:
  // the read fills it or fails.
  const std::size_t bytes = std::size_t{count} * format::kMetaBlockSize;
  if (out->size() != bytes) *out = AlignedBuffer::uninitialized(bytes);
  return SyncDevice(dev_).read(lba(zone, index), count * bpm_, out->data());
}

Result<std::uint64_t> MetaIo::write(std::uint32_t zone, const AlignedBuffer& blocks) {
  auto z = dev_.report_zones(zone, 1);
  if (!z.ok()) return z.status();
  const ZoneInfo& info = (*z)[0];
  const auto device_blocks = static_cast<std::uint32_t>(blocks.size() / dev_.geometry().block_size);
  NYADS_RETURN_IF_ERROR(SyncDevice(dev_).write(info.write_pointer, device_blocks, blocks.data()));
  return (info.write_pointer - info.start) / bpm_;
}

Status MetaIo::flush() { return SyncDevice(dev_).flush(); }

namespace {
bool all_zero(std::span<const std::uint8_t> b) {
  for (std::uint8_t c : b)
    if (c != 0) return false;
  return true;
}
}  // namespace

SuperblockZoneScan scan_superblock_zone(ZonedDevice& device, std::uint32_t zone) {
  SuperblockZoneScan scan;
  scan.zone = zone;
  MetaIo io(device);
  auto written = io.written(zone);
  if (!written.ok()) {
    scan.problems.push_back("zone " + std::to_string(zone) + ": " + written.status().message());
    scan.unreadable = true;
    return scan;
  }
  if (*written == 0) {
    scan.problems.push_back("superblock zone " + std::to_string(zone) + " is empty");
    return scan;
  }
  // A superblock zone holds a short log of versions, and is finished after each write, so its
  // write pointer says little: the log ends at the first block that reads as zeros.
  const std::uint64_t limit = std::min<std::uint64_t>(*written, 1024);
  constexpr std::uint32_t kBatch = 16;
  for (std::uint64_t first = 0; first < limit; first += kBatch) {
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kBatch, limit - first));
    AlignedBuffer buf;
    Status st = io.read(zone, first, n, &buf);
    if (!st.ok()) {
      scan.problems.push_back("superblock zone " + std::to_string(zone) + " block " + std::to_string(first) + ": " +
                              st.message());
      scan.unreadable = scan.blocks_written == 0;  // nothing of it read: its content is unknown
      return scan;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      auto bytes = buf.span().subspan(i * format::kMetaBlockSize, format::kMetaBlockSize);
      if (all_zero(bytes)) return scan;
      ++scan.blocks_written;
      const std::string where = "superblock at zone " + std::to_string(zone) + " block " + std::to_string(first + i);
      auto sb = format::decode_superblock(bytes, where);
      if (!sb.ok()) {
        scan.problems.push_back(sb.status().message());
        continue;
      }
      if (!scan.newest || sb->generation > scan.newest->generation) {
        scan.newest = std::move(*sb);
        scan.newest_index = first + i;
      }
    }
  }
  return scan;
}

}  // namespace nyads
