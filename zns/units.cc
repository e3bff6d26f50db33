#include "nyads/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>

namespace nyads {

Result<std::uint64_t> parse_size(std::string_view text) {
  const std::string original(text);
  auto bad = [&](const std::string& why) { return InvalidArgument("size '" + original + "': " + why); };
  if (text.empty()) return bad("empty");
  std::size_t i = 0;
  std::uint64_t whole = 0;
  bool digits = false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const std::uint64_t d = static_cast<std::uint64_t>(text[i] - '0');
    if (whole > (UINT64_MAX - d) / 10) return bad("too large");
    whole = whole * 10 + d;
    digits = true;
    ++i;
  }
  double fraction = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      fraction += (text[i] - '0') * scale;
      scale /= 10;
      digits = true;
      ++i;
    }
  }
  if (!digits) return bad("expected a number such as 64M or 20G");
  std::string_view suffix = text.substr(i);
  int shift = 0;
  if (!suffix.empty()) {
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      case 'P': shift = 50; break;
      case 'B': shift = 0; break;
      default: return bad("unknown unit '" + std::string(suffix) + "' (use K, M, G, T or P)");
    }
    std::string_view rest = suffix.substr(1);
    if (shift != 0 && !(rest.empty() || rest == "B" || rest == "iB" || rest == "b"))
      return bad("unknown unit '" + std::string(suffix) + "'");
    if (shift == 0 && !rest.empty()) return bad("unknown unit '" + std::string(suffix) + "'");
  }
  if (shift > 0 && whole > (UINT64_MAX >> shift)) return bad("too large");
  const std::uint64_t frac_bytes =
      static_cast<std::uint64_t>(std::llround(fraction * static_cast<double>(1ull << shift)));
  if (fraction > 0 && shift == 0) return bad("a fraction of a byte");
  return (whole << shift) + frac_bytes;
}

std::string format_size(std::uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  else
    std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace nyads
