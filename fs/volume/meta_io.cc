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
  *out = AlignedBuffer(std::size_t{count} * format::kMetaBlockSize);
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

SuperblockZoneScan scan_superblock_zone(ZonedDevice& device, std::uint32_t zone) {
  SuperblockZoneScan scan;
  scan.zone = zone;
  MetaIo io(device);
  auto written = io.written(zone);
  if (!written.ok()) {
    scan.problems.push_back("zone " + std::to_string(zone) + ": " + written.status().message());
    return scan;
  }
  // A superblock zone is a short log of versions; read at most a bounded number of them.
  scan.blocks_written = *written;
  const std::uint64_t n = std::min<std::uint64_t>(*written, 1024);
  if (n == 0) {
    scan.problems.push_back("superblock zone " + std::to_string(zone) + " is empty");
    return scan;
  }
  AlignedBuffer buf;
  Status st = io.read(zone, 0, static_cast<std::uint32_t>(n), &buf);
  if (!st.ok()) {
    scan.problems.push_back("superblock zone " + std::to_string(zone) + ": " + st.message());
    return scan;
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::string where = "superblock at zone " + std::to_string(zone) + " block " + std::to_string(i);
    auto sb = format::decode_superblock(buf.span().subspan(i * format::kMetaBlockSize, format::kMetaBlockSize), where);
    if (!sb.ok()) {
      scan.problems.push_back(sb.status().message());
      continue;
    }
    if (!scan.newest || sb->generation > scan.newest->generation) {
      scan.newest = std::move(*sb);
      scan.newest_index = i;
    }
  }
  return scan;
}

}  // namespace nyads
