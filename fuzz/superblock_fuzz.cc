// Fuzzes decode_superblock (fuzz_common.h says how). A superblock's checksum is seeded by the
// UUID inside it, so the input is resealed with the seed of the UUID it carries.
#include "fuzz/fuzz_common.h"

using namespace nyads;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  format::Uuid uuid{};
  if (size >= 72) std::memcpy(uuid.data(), data + 56, 16);
  fuzz::check_metadata_block(
      data, size, format::volume_seed(uuid),
      [](std::span<const std::uint8_t> in, std::uint64_t) { return format::decode_superblock(in, "fuzz"); },
      [](const format::Superblock& sb, std::uint64_t, std::span<std::uint8_t> out) {
        format::encode_superblock(sb, out);
        return Status::Ok();
      });
  return 0;
}
