// The checksums of one extent's blocks. Under random overwrites nearly every extent is a single
// block, and a std::vector spent 24 bytes on itself plus a heap allocation on its one 4-byte
// checksum; here up to two checksums live inline and longer runs in one heap array, in 12
// bytes aligned to 4, so an extent with its lba and birth takes 24 bytes (was 40).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace nyads {

class BlockChecksums {
 public:
  BlockChecksums() = default;
  explicit BlockChecksums(std::span<const std::uint32_t> sums) { assign(sums); }
  BlockChecksums(const BlockChecksums&) = delete;
  BlockChecksums& operator=(const BlockChecksums&) = delete;
  BlockChecksums(BlockChecksums&& other) noexcept { take(other); }
  BlockChecksums& operator=(BlockChecksums&& other) noexcept {
    if (this != &other) {
      release();
      take(other);
    }
    return *this;
  }
  ~BlockChecksums() { release(); }

  std::size_t size() const { return size_; }
  const std::uint32_t* data() const { return on_heap() ? heap() : words_; }
  std::span<const std::uint32_t> span() const { return {data(), size_}; }
  // Heap bytes held (0 while inline).
  std::size_t heap_bytes() const { return on_heap() ? capacity(size_) * sizeof(std::uint32_t) : 0; }

  // Adds checksums at the end (an extent growing by a write that continues it).
  void append(std::span<const std::uint32_t> more) {
    if (more.empty()) return;
    const std::size_t n = size_ + more.size();
    if (n <= kInline) {
      std::memcpy(words_ + size_, more.data(), more.size_bytes());
      size_ = static_cast<std::uint32_t>(n);
      return;
    }
    if (on_heap() && n <= capacity(size_)) {  // room left in the array
      std::memcpy(heap() + size_, more.data(), more.size_bytes());
      size_ = static_cast<std::uint32_t>(n);
      return;
    }
    std::uint32_t* p = Alloc().allocate(capacity(n));
    std::memcpy(p, data(), size_ * sizeof(std::uint32_t));
    std::memcpy(p + size_, more.data(), more.size_bytes());
    release();
    set_heap(p);
    size_ = static_cast<std::uint32_t>(n);
  }

 private:
  using Alloc = std::allocator<std::uint32_t>;
  static constexpr std::size_t kInline = 2;
  static_assert(sizeof(std::uint32_t*) <= 2 * sizeof(std::uint32_t), "the heap pointer shares the inline words");

  void assign(std::span<const std::uint32_t> sums) {
    release();
    append(sums);
  }
  bool on_heap() const { return size_ > kInline; }
  // A heap array's length follows from the count it holds (the next power of two), so a
  // growing extent reallocates log(n) times and no field stores the capacity.
  static std::size_t capacity(std::size_t n) { return std::bit_ceil(n); }
  std::uint32_t* heap() const {
    std::uint32_t* p = nullptr;
    std::memcpy(&p, words_, sizeof p);
    return p;
  }
  void set_heap(std::uint32_t* p) { std::memcpy(words_, &p, sizeof p); }
  void release() {
    if (on_heap()) Alloc().deallocate(heap(), capacity(size_));
    size_ = 0;
  }
  void take(BlockChecksums& other) {
    std::memcpy(words_, other.words_, sizeof words_);
    size_ = other.size_;
    other.size_ = 0;  // the heap array (if any) is ours now
  }

  std::uint32_t words_[kInline] = {0, 0};  // the checksums, or the heap array's address
  std::uint32_t size_ = 0;
};

}  // namespace nyads
