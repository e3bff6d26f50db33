// What the fuzz targets and the seed writer share: the seed and geometry they use, and the
// decode -> reseal -> round-trip check every metadata-block target runs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fs/format/codec.h"
#include "nyads/emulated_device.h"
#include "nyads/format.h"

namespace nyads::fuzz {

inline constexpr std::uint64_t kSeed = 0x6e79616473;  // the volume seed of journal and checkpoint inputs

inline EmulatedConfig emulated_config() {
  EmulatedConfig c;
  c.zone_size_bytes = 1 << 20;
  c.zone_capacity_bytes = 768 << 10;
  c.zone_count = 16;
  c.max_open_zones = 6;
  c.max_active_zones = 8;
  return c;
}

// Decodes the input as it is (damaged checksums are a path too), then as a 4096-byte block
// resealed with a valid checksum (so the fuzzer reaches every field rule). Whatever decodes
// must encode and decode back to itself; anything else aborts, which libFuzzer reports.
template <typename Decode, typename Encode>
void check_metadata_block(const std::uint8_t* data, std::size_t size, std::uint64_t seed, Decode decode,
                          Encode encode) {
  (void)decode(std::span<const std::uint8_t>(data, size), seed);
  std::vector<std::uint8_t> block(format::kMetaBlockSize, 0);
  std::memcpy(block.data(), data, std::min<std::size_t>(size, format::kMetaBlockSize));
  format::seal_block(block, seed);
  auto value = decode(block, seed);
  if (!value.ok()) return;
  std::vector<std::uint8_t> again(format::kMetaBlockSize);
  if (!encode(*value, seed, again).ok()) std::abort();
  auto twice = decode(again, seed);
  if (!twice.ok() || !(*twice == *value)) std::abort();
}

}  // namespace nyads::fuzz
