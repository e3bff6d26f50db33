// Fuzzes decode_journal_block, as it is and resealed (see superblock_fuzz.cc); a block that
// decodes must round-trip through the encoder.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fs/format/codec.h"
#include "nyads/format.h"

using namespace nyads::format;

inline constexpr std::uint64_t kFuzzSeed = 0x6e79616473;  // make_fuzz_seeds uses the same

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)decode_journal_block({data, size}, kFuzzSeed, "fuzz");
  std::vector<std::uint8_t> block(kMetaBlockSize, 0);
  std::memcpy(block.data(), data, std::min<std::size_t>(size, kMetaBlockSize));
  seal_block(block, kFuzzSeed);
  auto b = decode_journal_block(block, kFuzzSeed, "fuzz");
  if (b.ok()) {
    std::vector<std::uint8_t> again(kMetaBlockSize);
    if (!encode_journal_block(*b, kFuzzSeed, again).ok()) std::abort();
    auto twice = decode_journal_block(again, kFuzzSeed, "fuzz");
    if (!twice.ok() || !(*twice == *b)) std::abort();
  }
  return 0;
}
