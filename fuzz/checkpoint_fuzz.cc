// Fuzzes decode_checkpoint_block (fuzz_common.h says how).
#include "fuzz/fuzz_common.h"

using namespace nyads;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::check_metadata_block(
      data, size, fuzz::kSeed,
      [](std::span<const std::uint8_t> in, std::uint64_t seed) {
        auto b = format::decode_checkpoint_block(in, seed, "fuzz");
        // An extent block's check against an index entry (what a lazily read block goes
        // through): an entry made from its first and last extents.
        if (b.ok()) {
          const std::vector<format::record::Extent>* extents =
              std::get_if<std::vector<format::record::Extent>>(&b->body);
          if (const auto* p = std::get_if<format::PackedExtents>(&b->body)) extents = &p->extents;
          if (extents != nullptr && !extents->empty()) {
            format::ExtentIndexEntry entry{extents->front().ns_id, 0, extents->front().vblock,
                                           extents->back().vblock + extents->back().checksums.size(), 0};
            for (const auto& e : *extents) entry.mapped_blocks += static_cast<std::uint32_t>(e.checksums.size());
            (void)format::check_indexed_extents(*extents, entry);
          }
        }
        return b;
      },
      [](const format::CheckpointBlock& b, std::uint64_t seed, std::span<std::uint8_t> out) {
        return format::encode_checkpoint_block(b, seed, out);
      });
  return 0;
}
