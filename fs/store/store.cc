// The store's public face (Store: opening, namespaces, the data path's entry points, stats)
// and Impl's trim and zeroing; Impl's other parts are in the files store_impl.h lists.
#include "nyads/store.h"

#include "fs/store/store_impl.h"

namespace nyads {

double StoreStats::write_amplification() const {
  if (user_bytes_written == 0) return 0;
  return static_cast<double>(data_bytes_written + cleaner_bytes_written + metadata_bytes_written) /
         static_cast<double>(user_bytes_written);
}

Status Store::Impl::trim_range(Namespace& x, std::uint64_t offset, std::uint64_t length) {
  // Whole 4 KiB blocks are unmapped; the partial ends of a 512-byte namespace are zeroed.
  const std::uint64_t first = (offset + kBlock - 1) / kBlock, end = (offset + length) / kBlock;
  if (end > first) {
    release(x.map.unmap(first, end - first));
    add(fmt::record::Trim{x.id, first, end - first});
  }
  const std::uint64_t head_end = std::min(offset + length, first * kBlock);
  if (head_end > offset) {
    std::vector<std::uint8_t> zeros(head_end - offset);
    NYADS_RETURN_IF_ERROR(write_range(x, offset, zeros.data(), zeros.size()));
  }
  const std::uint64_t tail_start = std::max(offset, std::max(end, first) * kBlock);
  if (offset + length > tail_start && tail_start >= head_end) {
    std::vector<std::uint8_t> zeros(offset + length - tail_start);
    NYADS_RETURN_IF_ERROR(write_range(x, tail_start, zeros.data(), zeros.size()));
  }
  return Status::Ok();
}

Status Store::Impl::write_zeroes_range(Namespace& x, std::uint64_t offset, std::uint64_t length, bool no_hole) {
  if (!no_hole) return trim_range(x, offset, length);
  constexpr std::uint64_t kChunk = 1 << 20;
  std::vector<std::uint8_t> zeros(std::min(length, kChunk));
  for (std::uint64_t done = 0; done < length; done += zeros.size()) {
    const std::uint64_t k = std::min<std::uint64_t>(zeros.size(), length - done);
    NYADS_RETURN_IF_ERROR(write_range(x, offset + done, zeros.data(), k));
  }
  stats.user_bytes_written += length;
  return Status::Ok();
}

// ----- the public face -------------------------------------------------------------------

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(std::unique_ptr<ZonedDevice> device, const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->dev = std::move(device);
  impl->options = options;
  // XXH3's dispatch picks its SIMD variant at the first call, unguarded: made here, before a
  // device's writing thread may checksum beside this one (IoRequest::prepare).
  const std::uint8_t probe[kBlock] = {};
  (void)fmt::data_checksum(0, 0, 0, probe);
  NYADS_RETURN_IF_ERROR(impl->recover());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::close() { return impl_->checkpoint(); }

namespace {
// NBD clients (libnbd, qemu, the kernel's) take an export's size as a signed 64-bit number:
// a namespace larger than that would be shown as negative, and refused.
constexpr std::uint64_t kMaxNamespaceBytes = (std::uint64_t{1} << 63) - kBlock;

Status validate_namespace_size(std::uint64_t size_bytes) {
  if (size_bytes == 0 || size_bytes % kBlock != 0)
    return InvalidArgument("namespace size " + n(size_bytes) + " bytes is not a positive multiple of 4096");
  if (size_bytes > kMaxNamespaceBytes)
    return InvalidArgument("namespace size " + n(size_bytes) + " bytes is more than " + n(kMaxNamespaceBytes) +
                           " (2^63 - 4096), the most NBD clients can address");
  return Status::Ok();
}
}  // namespace

Result<NamespaceInfo> Store::create_namespace(std::string_view name, std::uint64_t size_bytes, std::uint32_t block_size,
                                              bool thin) {
  Impl& s = *impl_;
  NYADS_RETURN_IF_ERROR(fmt::validate_namespace_name(name));
  if (s.ns_by_name(name)) return Status(Code::kAlreadyExists, "namespace '" + std::string(name) + "' exists already");
  if (block_size != 512 && block_size != 4096)
    return InvalidArgument("block size " + n(block_size) + " is not 512 or 4096");
  NYADS_RETURN_IF_ERROR(validate_namespace_size(size_bytes));
  // Promises are kept against exact counts: the maps whole (store_loading.cc).
  if (!s.maps_complete()) NYADS_RETURN_IF_ERROR(s.read_all());
  // Even a thin namespace takes something: room for its write stream, in the headroom.
  NYADS_RETURN_IF_ERROR(s.admit_promise(name, thin ? 0 : size_bytes / kBlock, 0, s.namespaces.size() + 1));
  const std::uint32_t id = s.next_ns_id++;
  s.namespaces.emplace(id, Impl::Namespace{id, std::string(name), size_bytes, block_size,
                                           thin ? fmt::kNamespaceThin : 0u, s.empty_map()});
  s.add(fmt::record::NamespaceCreate{id, block_size, size_bytes, std::string(name), thin});
  NYADS_RETURN_IF_ERROR(s.commit());
  return s.info(*s.ns(id));
}

Status Store::delete_namespace(std::string_view name) {
  Impl& s = *impl_;
  Impl::Namespace* x = s.ns_by_name(name);
  if (!x) return Status(Code::kNotFound, "no namespace '" + std::string(name) + "'");
  const std::uint32_t id = x->id;
  s.release(x->map.unmap(0, x->size / kBlock));
  s.add(fmt::record::NamespaceDelete{id});
  s.erase_namespace(id);
  NYADS_RETURN_IF_ERROR(s.end_namespace_stream(id));
  return s.commit();
}

Status Store::resize_namespace(std::string_view name, std::uint64_t size_bytes, bool discard) {
  Impl& s = *impl_;
  Impl::Namespace* x = s.ns_by_name(name);
  if (!x) return Status(Code::kNotFound, "no namespace '" + std::string(name) + "'");
  NYADS_RETURN_IF_ERROR(validate_namespace_size(size_bytes));
  if (!s.maps_complete()) NYADS_RETURN_IF_ERROR(s.read_all());
  if (size_bytes < x->size) {
    const std::uint64_t from = size_bytes / kBlock, count = (x->size - size_bytes) / kBlock;
    bool holds_data = false;
    for (const auto& p : x->map.lookup(from, count)) holds_data = holds_data || p.mapped;
    if (holds_data && !discard)
      return InvalidArgument("shrinking '" + x->name + "' to " + n(size_bytes) +
                             " bytes would cut off data; resize with discard (nyads ns resize --discard) to drop it");
    s.release(x->map.unmap(from, count));
  } else if (!Impl::is_thin(*x)) {
    NYADS_RETURN_IF_ERROR(s.admit_promise(x->name, size_bytes / kBlock, s.claimed_blocks(*x), s.namespaces.size()));
  }
  x->size = size_bytes;
  s.add(fmt::record::NamespaceResize{x->id, size_bytes});
  return s.commit();
}

std::vector<NamespaceInfo> Store::list_namespaces() const {
  std::vector<NamespaceInfo> out;
  for (const auto& [id, x] : impl_->namespaces) out.push_back(impl_->info(x));
  return out;
}

Result<NamespaceInfo> Store::find_namespace(std::string_view name) const {
  for (const auto& [id, x] : impl_->namespaces)
    if (x.name == name) return impl_->info(x);
  return Status(Code::kNotFound, "no namespace '" + std::string(name) + "'");
}

StoreRequest StoreRequest::read(std::uint32_t ns, std::uint64_t offset, std::span<std::uint8_t> out) {
  StoreRequest r;
  r.op = Op::kRead;
  r.ns = ns;
  r.offset = offset;
  r.length = out.size();
  r.out = out;
  return r;
}
StoreRequest StoreRequest::write(std::uint32_t ns, std::uint64_t offset, std::span<const std::uint8_t> data, bool fua) {
  StoreRequest r;
  r.op = Op::kWrite;
  r.ns = ns;
  r.offset = offset;
  r.length = data.size();
  r.data = data;
  r.fua = fua;
  return r;
}
StoreRequest StoreRequest::trim(std::uint32_t ns, std::uint64_t offset, std::uint64_t length, bool fua) {
  StoreRequest r;
  r.op = Op::kTrim;
  r.ns = ns;
  r.offset = offset;
  r.length = length;
  r.fua = fua;
  return r;
}
StoreRequest StoreRequest::write_zeroes(std::uint32_t ns, std::uint64_t offset, std::uint64_t length, bool no_hole,
                                        bool fua) {
  StoreRequest r = trim(ns, offset, length, fua);
  r.op = Op::kWriteZeroes;
  r.no_hole = no_hole;
  return r;
}
StoreRequest StoreRequest::flush() {
  StoreRequest r;
  r.op = Op::kFlush;
  return r;
}

namespace {
Status run_one(Store& store, StoreRequest r) {
  Status st = store.execute({&r, 1});
  return r.result.ok() ? st : r.result;
}
}  // namespace

Status Store::write(std::uint32_t ns_id, std::uint64_t offset, std::span<const std::uint8_t> data, bool fua) {
  return run_one(*this, StoreRequest::write(ns_id, offset, data, fua));
}
Status Store::read(std::uint32_t ns_id, std::uint64_t offset, std::span<std::uint8_t> out) {
  return run_one(*this, StoreRequest::read(ns_id, offset, out));
}
Status Store::trim(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length) {
  return run_one(*this, StoreRequest::trim(ns_id, offset, length));
}
Status Store::write_zeroes(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length, bool no_hole) {
  return run_one(*this, StoreRequest::write_zeroes(ns_id, offset, length, no_hole));
}
Result<std::vector<Store::Allocation>> Store::allocation(std::uint32_t ns_id, std::uint64_t offset,
                                                         std::uint64_t length) {
  Impl& s = *impl_;
  Impl::Namespace* x = s.ns(ns_id);
  NYADS_RETURN_IF_ERROR(s.check_range(x, offset, length, "block status"));
  std::vector<Allocation> out;
  const std::uint64_t first = offset / kBlock, end = (offset + length + kBlock - 1) / kBlock;
  NYADS_RETURN_IF_ERROR(s.read_range(*x, first, end - first));
  for (const auto& p : x->map.lookup(first, end - first)) {
    // Clip to the byte range (a 512-byte namespace may ask for part of a 4 KiB block).
    const std::uint64_t lo = std::max(offset, p.vblock * kBlock),
                        hi = std::min(offset + length, (p.vblock + p.blocks) * kBlock);
    if (hi <= lo) continue;
    if (!out.empty() && out.back().allocated == p.mapped)
      out.back().length += hi - lo;
    else
      out.push_back({hi - lo, p.mapped});
  }
  return out;
}

Status Store::execute(std::span<StoreRequest> batch, const std::function<void()>& meanwhile) {
  return impl_->execute(batch, meanwhile);
}
Result<std::uint32_t> Store::idle_work() { return impl_->idle_work(); }

Status Store::flush() { return impl_->commit(); }
Status Store::checkpoint() { return impl_->checkpoint(); }
Status Store::clean_step() { return impl_->clean_step(); }

StoreStats Store::stats() const {
  StoreStats s = impl_->stats;
  s.data_zones = impl_->sb.data_zones.count;
  s.free_zones = impl_->free_zones();
  s.space_bytes = impl_->promise_limit_blocks(impl_->namespaces.size()) * kBlock;
  s.claimed_bytes = impl_->claimed_total() * kBlock;
  // Until the maps are whole the shared-stream cap is not decided (store_impl.h): the figure
  // of the higher cap, the lower one, is what a create can count on.
  const auto cap = static_cast<std::uint32_t>(impl_->maps_complete() ? impl_->shared_stream_cap : 4);
  const std::uint64_t limit_with_one_more =
      promise_limit_bytes(impl_->sb, impl_->zone_limit(), impl_->namespaces.size() + 1, cap);
  s.new_namespace_bytes = limit_with_one_more - std::min(limit_with_one_more, s.claimed_bytes);
  s.live_bytes = impl_->live_blocks() * kBlock;
  s.map_blocks_unread = impl_->unread_total;
  for (const auto& [id, x] : impl_->namespaces) {
    s.map_extents += x.map.extent_count();
    s.map_memory_bytes += x.map.memory_bytes();
  }
  return s;
}

const format::Superblock& Store::superblock() const { return impl_->sb; }
ZonedDevice& Store::device() { return *impl_->dev; }

}  // namespace nyads
