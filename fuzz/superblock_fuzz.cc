// Fuzzes decode_superblock. Each input is decoded twice: as it is (so damaged checksums are
// exercised) and resealed with a valid checksum (so the fuzzer reaches every field rule). A
// superblock that decodes must re-encode to bytes that decode to the same superblock.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fs/format/codec.h"
#include "nyads/format.h"

using namespace nyads::format;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)decode_superblock({data, size}, "fuzz");
  std::vector<std::uint8_t> block(kMetaBlockSize, 0);
  std::memcpy(block.data(), data, std::min<std::size_t>(size, kMetaBlockSize));
  Uuid uuid;
  std::memcpy(uuid.data(), block.data() + 56, 16);
  seal_block(block, volume_seed(uuid));
  auto sb = decode_superblock(block, "fuzz");
  if (sb.ok()) {
    std::vector<std::uint8_t> again(kMetaBlockSize);
    encode_superblock(*sb, again);
    auto twice = decode_superblock(again, "fuzz");
    if (!twice.ok() || !(*twice == *sb)) std::abort();
  }
  return 0;
}
