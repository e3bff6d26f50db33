// What every structure shares: metadata block checksums, the volume seed, data checksums,
// UUIDs and namespace names.
#include <xxhash.h>
#if defined(NYADS_HAVE_XXH_DISPATCH)
// The same XXH3, through the library's run-time choice of SSE2, AVX2 or AVX-512: data
// checksums cost as much as receiving the bytes with SSE2 alone (perf, 1 MiB NBD writes).
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#define NYADS_XXH3_SEEDED XXH3_64bits_withSeed_dispatch
#else
#define NYADS_XXH3_SEEDED XXH3_64bits_withSeed
#endif

#include <cctype>
#include <cstdio>

#include "fs/format/codec.h"
#include "nyads/format.h"

namespace nyads::format {

std::uint64_t block_checksum(std::span<const std::uint8_t> block, std::uint64_t seed) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset_withSeed(state, seed);
  XXH3_64bits_update(state, block.data(), kChecksumOffset);
  const std::uint8_t zero[8] = {};
  XXH3_64bits_update(state, zero, sizeof zero);
  XXH3_64bits_update(state, block.data() + kChecksumOffset + 8, block.size() - kChecksumOffset - 8);
  const std::uint64_t sum = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return sum;
}

void seal_block(std::span<std::uint8_t> block, std::uint64_t seed) {
  put_le64(block.data() + kChecksumOffset, block_checksum(block, seed));
}

bool block_checksum_ok(std::span<const std::uint8_t> block, std::uint64_t seed) {
  return get_le64(block.data() + kChecksumOffset) == block_checksum(block, seed);
}

std::uint64_t stored_checksum(std::span<const std::uint8_t> block) { return get_le64(block.data() + kChecksumOffset); }

std::uint64_t chain_checksums(std::span<const std::uint64_t> checksums, std::uint64_t seed) {
  std::vector<std::uint8_t> bytes(checksums.size() * 8);
  for (std::size_t i = 0; i < checksums.size(); ++i) put_le64(&bytes[i * 8], checksums[i]);
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string byte_hex(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

std::uint64_t volume_seed(const Uuid& uuid) { return XXH3_64bits(uuid.data(), uuid.size()); }

std::uint32_t data_checksum(std::uint64_t seed, std::uint32_t ns_id, std::uint64_t vblock,
                            std::span<const std::uint8_t> block) {
  // Mix the address into the seed (odd multipliers from XXH3's primes) so that the same bytes
  // at another address, or in another namespace, checksum differently.
  const std::uint64_t s = seed ^ (std::uint64_t{ns_id} * 0x9E3779B185EBCA87ull) ^ (vblock * 0xC2B2AE3D27D4EB4Full);
  return static_cast<std::uint32_t>(NYADS_XXH3_SEEDED(block.data(), block.size(), s));
}

std::string uuid_to_string(const Uuid& u) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return buf;
}

Result<Uuid> parse_uuid(std::string_view text) {
  Uuid u{};
  std::size_t n = 0;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  static constexpr std::size_t kDashes[] = {8, 13, 18, 23};
  if (text.size() != 36)
    return InvalidArgument("UUID '" + std::string(text) + "' is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
  for (std::size_t i = 0; i < text.size();) {
    if (i == kDashes[0] || i == kDashes[1] || i == kDashes[2] || i == kDashes[3]) {
      if (text[i] != '-')
        return InvalidArgument("UUID '" + std::string(text) +
                               "' is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
      ++i;
      continue;
    }
    const int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0)
      return InvalidArgument("UUID '" + std::string(text) + "' has a character that is not hexadecimal");
    u[n++] = static_cast<std::uint8_t>(hi << 4 | lo);
    i += 2;
  }
  bool zero = true;
  for (auto b : u) zero = zero && b == 0;
  if (zero) return InvalidArgument("the nil UUID cannot name a volume");
  return u;
}

Status validate_namespace_name(std::string_view name) {
  if (name.empty()) return InvalidArgument("namespace name is empty");
  if (name.size() > kMaxNameLength)
    return InvalidArgument("namespace name '" + std::string(name.substr(0, 16)) + "...' is " + num(name.size()) +
                           " bytes, the limit is " + num(kMaxNameLength));
  if (!std::isalnum(static_cast<unsigned char>(name[0])))
    return InvalidArgument("namespace name '" + std::string(name) + "' must start with a letter or digit");
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ||
        static_cast<unsigned char>(c) > 127)
      return InvalidArgument(
          "namespace name '" + std::string(name) + "' has the character '" +
          (std::isprint(static_cast<unsigned char>(c)) ? std::string(1, c) : byte_hex(static_cast<unsigned char>(c))) +
          "'; names use letters, digits, '.', '_' and '-'");
  }
  return Status::Ok();
}

}  // namespace nyads::format
