// InputBuffer: bytes received on a connection and not yet parsed. Room is made at the end
// without zero-filling (recv overwrites it), and parsed bytes are dropped from the front by
// moving what is left only when that is cheaper than growing: amortized O(1) per byte.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace nyads::nbd {

class InputBuffer {
 public:
  std::span<const std::uint8_t> unparsed() const { return {data_.get() + begin_, end_ - begin_}; }
  std::size_t size() const { return end_ - begin_; }
  // Parsed bytes go; they stay where they are (commands may point into them) until room().
  void consume(std::size_t n) { begin_ += n; }
  // Drops every byte held; like consume(), nothing is reused before the next room().
  void clear() { begin_ = end_; }

  // Free space at the end, at least `want` bytes of it, for recv to fill; then commit(n).
  // May move or reuse every byte held: only when nothing points into them.
  std::span<std::uint8_t> room(std::size_t want) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (capacity_ - end_ < want) {
      const std::size_t held = end_ - begin_;
      if (begin_ >= held && capacity_ - held >= want) {  // moving is cheap: less to move than dropped
        std::memmove(data_.get(), data_.get() + begin_, held);
      } else {
        // Room for several messages of this size: what is left of the last one in a turn is
        // moved to the front once every few of them, not every turn (under 1 MiB writes a
        // buffer sized for one moved half of all bytes received: 8% of the daemon's time).
        // (Four of them up to 16 MiB: a client of 32 MiB writes does not get 128 MiB.)
        const std::size_t grown = std::max({capacity_ * 2, held + want, std::min<std::size_t>(4 * want, 16 << 20)});
        auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(grown);
        if (held) std::memcpy(bigger.get(), data_.get() + begin_, held);
        data_ = std::move(bigger);
        capacity_ = grown;
      }
      begin_ = 0;
      end_ = held;
    }
    return {data_.get() + end_, capacity_ - end_};
  }
  // Free space at the end as it is (perhaps none), for recv to fill while commands point into
  // the bytes held: nothing moves, and nothing before the end is reused.
  std::span<std::uint8_t> room_in_place() { return {data_.get() + end_, capacity_ - end_}; }
  void commit(std::size_t n) { end_ += n; }

 private:
  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t capacity_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace nyads::nbd
