// OutputQueue: bytes waiting to go out on a connection, as a list of segments, so a read's
// data is sent from the buffer it was read into, without a copy.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "nyads/aligned_buffer.h"

namespace nyads::nbd {

class OutputQueue {
 public:
  void append(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) return;
    if (!segments_.empty() && segments_.back().big.size() == 0 &&
        segments_.back().small.size() + bytes.size() <= kCoalesce) {
      auto& small = segments_.back().small;
      small.insert(small.end(), bytes.begin(), bytes.end());
    } else {
      // Small replies gather in blocks of up to kCoalesce bytes; start with a page, so a lone
      // reply header costs little and a run of small replies reallocates rarely.
      std::vector<std::uint8_t> small;
      small.reserve(std::max<std::size_t>(bytes.size(), 4096));
      small.assign(bytes.begin(), bytes.end());
      segments_.push_back({std::move(small), {}, 0});
    }
    bytes_ += bytes.size();
  }
  void append(AlignedBuffer buffer) {
    if (buffer.size() == 0) return;
    bytes_ += buffer.size();
    segments_.push_back({{}, std::move(buffer), 0});
  }

  std::size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }

  // Up to max_count (pointer, length) pairs of what is still to be sent, in order.
  template <typename Fn>
  void for_each_pending(std::size_t max_count, Fn&& fn) const {
    std::size_t n = 0;
    for (const auto& s : segments_) {
      if (n++ == max_count) return;
      const std::uint8_t* p = s.big.size() ? s.big.data() : s.small.data();
      const std::size_t size = s.big.size() ? s.big.size() : s.small.size();
      fn(p + s.sent, size - s.sent);
    }
  }
  // `count` bytes went out.
  void consume(std::size_t count) {
    bytes_ -= count;
    while (count > 0) {
      Segment& s = segments_.front();
      const std::size_t size = s.big.size() ? s.big.size() : s.small.size();
      const std::size_t k = std::min(count, size - s.sent);
      s.sent += k;
      count -= k;
      if (s.sent == size) segments_.pop_front();
    }
  }

 private:
  static constexpr std::size_t kCoalesce = 64 << 10;
  struct Segment {
    std::vector<std::uint8_t> small;
    AlignedBuffer big;
    std::size_t sent = 0;
  };
  std::deque<Segment> segments_;
  std::size_t bytes_ = 0;
};

}  // namespace nyads::nbd
