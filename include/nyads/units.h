// Sizes as people write them: "64M", "20G", "4096", "1.5T" (binary units, K = 1024).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "nyads/status.h"

namespace nyads {

// Parses a size in bytes: digits with an optional fraction and a suffix K, M, G, T, P
// (optionally followed by "iB" or "B"). Refuses negative, empty, overflowing or unknown input.
Result<std::uint64_t> parse_size(std::string_view text);
// 67108864 -> "64 MiB"; sizes that are not whole units keep two decimals: "1.50 GiB".
std::string format_size(std::uint64_t bytes);

}  // namespace nyads
