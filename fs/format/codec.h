// Bounds-checked little-endian cursors for encoding and decoding metadata blocks, and the
// checksum every metadata block carries at bytes 24..31. Internal to fs/format.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "nyads/byte_order.h"
#include "nyads/status.h"

namespace nyads::format {

inline constexpr std::size_t kChecksumOffset = 24;

// XXH3-64 of a metadata block with its checksum field read as zero.
std::uint64_t block_checksum(std::span<const std::uint8_t> block, std::uint64_t seed);
void seal_block(std::span<std::uint8_t> block, std::uint64_t seed);
bool block_checksum_ok(std::span<const std::uint8_t> block, std::uint64_t seed);

class Writer {
 public:
  explicit Writer(std::span<std::uint8_t> out) : out_(out) {}
  void u8(std::uint8_t v) { out_[pos_++] = v; }
  void u16(std::uint16_t v) {
    put_le16(&out_[pos_], v);
    pos_ += 2;
  }
  void u32(std::uint32_t v) {
    put_le32(&out_[pos_], v);
    pos_ += 4;
  }
  void u64(std::uint64_t v) {
    put_le64(&out_[pos_], v);
    pos_ += 8;
  }
  void bytes(const void* p, std::size_t n) {
    std::memcpy(&out_[pos_], p, n);
    pos_ += n;
  }
  void zeros(std::size_t n) {
    std::memset(&out_[pos_], 0, n);
    pos_ += n;
  }
  // An array of 32-bit fields (checksums): one copy on a little-endian host.
  void u32s(std::span<const std::uint32_t> v) {
    if (v.empty()) return;
    if constexpr (std::endian::native == std::endian::little) {
      bytes(v.data(), v.size_bytes());
    } else {
      for (std::uint32_t x : v) u32(x);
    }
  }
  // Unsigned LEB128: 7 bits a byte, low bits first, the high bit set on all but the last.
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      u8(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    u8(static_cast<std::uint8_t>(v));
  }
  std::size_t pos() const { return pos_; }
  std::size_t left() const { return out_.size() - pos_; }

 private:
  std::span<std::uint8_t> out_;
  std::size_t pos_ = 0;
};

// Reads fail softly: past the end they return zero and set overrun(), which the decoder
// turns into a precise error; they never read out of bounds.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  bool has(std::size_t n) const { return n <= in_.size() - pos_; }
  std::uint8_t u8() { return take(1) ? in_[pos_ - 1] : 0; }
  std::uint16_t u16() { return take(2) ? get_le16(&in_[pos_ - 2]) : 0; }
  std::uint32_t u32() { return take(4) ? get_le32(&in_[pos_ - 4]) : 0; }
  std::uint64_t u64() { return take(8) ? get_le64(&in_[pos_ - 8]) : 0; }
  std::string str(std::size_t n) {
    if (!take(n)) return {};
    return std::string(reinterpret_cast<const char*>(&in_[pos_ - n]), n);
  }
  void skip(std::size_t n) { take(n); }
  // Fills `out` with as many 32-bit fields (checksums): one copy on a little-endian host.
  void u32s(std::span<std::uint32_t> out) {
    if (out.empty() || !take(out.size_bytes())) return;
    const std::uint8_t* p = &in_[pos_ - out.size_bytes()];
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(out.data(), p, out.size_bytes());
    } else {
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = get_le32(p + 4 * i);
    }
  }
  std::size_t pos() const { return pos_; }
  bool overrun() const { return overrun_; }

 private:
  bool take(std::size_t n) {
    if (overrun_ || !has(n)) {
      overrun_ = true;
      return false;
    }
    pos_ += n;
    return true;
  }
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  bool overrun_ = false;
};

// Virtual blocks of a namespace stay below this: vblock * 4096 must fit in 64 bits.
inline constexpr std::uint64_t kMaxVblock = 1ull << 52;

inline std::size_t varint_bytes(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
// Signed differences as varints: 0, -1, 1, -2, ... map to 0, 1, 2, 3, ...
inline std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

inline std::string num(std::uint64_t v) { return std::to_string(v); }
std::string hex(std::uint64_t v);
// One byte as "0x0a": a character that cannot be shown as itself, in a message.
std::string byte_hex(unsigned char c);

// An extent's bytes, shared by journal records and checkpoint blocks:
// ns_id u32, count u32, vblock u64, lba u64, then count checksums u32.
// (kExtentHeaderBytes, 24, is in nyads/format.h.)
namespace record {
struct Extent;
}
void write_extent(Writer& w, const record::Extent& e);
// Reads one extent whose bytes must end within `limit` bytes; the error names what is wrong.
Status read_extent(Reader& r, std::size_t limit, record::Extent* e);

}  // namespace nyads::format
