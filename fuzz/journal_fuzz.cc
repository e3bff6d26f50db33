// Fuzzes decode_journal_block (fuzz_common.h says how).
#include "fuzz/fuzz_common.h"

using namespace nyads;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::check_metadata_block(
      data, size, fuzz::kSeed,
      [](std::span<const std::uint8_t> in, std::uint64_t seed) {
        return format::decode_journal_block(in, seed, "fuzz");
      },
      [](const format::JournalBlock& b, std::uint64_t seed, std::span<std::uint8_t> out) {
        return format::encode_journal_block(b, seed, out);
      });
  return 0;
}
