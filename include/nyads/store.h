// Store: the log-structured volume. Namespaces (one per container), each a thin-provisioned
// block address space; data appended to data zones with per-block checksums; a group-committed
// journal and background checkpoints for recovery; a cleaner that reclaims zones.
//
// Durability (invariant 1): a write is durable once a flush() completes after it, or at once
// when written with fua. After a crash every 4 KiB block reads its old or its new content.
// Threading: one thread drives a Store. Concurrency comes from batches (execute): the device
// I/O of every request in a batch is in flight at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nyads/format.h"
#include "nyads/status.h"
#include "nyads/zoned_device.h"

namespace nyads {

struct StoreOptions {
  // Take a checkpoint once the journal has grown by this many blocks since the last one.
  std::uint64_t checkpoint_after_journal_blocks = 2048;
  // idle_work() takes a checkpoint when the journal holds records this old (seconds), so the
  // next recovery replays little even when writes are few.
  std::uint32_t checkpoint_interval_seconds = 30;
  // Clean while at most this many data zones are free (0: the volume's reserve + 2).
  std::uint32_t clean_below_free_zones = 0;
  // A commit that names at most 4 MiB of new data, all of it in extents, is made durable by
  // one device flush (data and journal together, format.md §2.4) instead of two. Off: two
  // flushes always (for comparison).
  bool one_flush_commits = true;
};

struct NamespaceInfo {
  std::uint32_t id = 0;
  std::string name;
  std::uint64_t size_bytes = 0;
  std::uint32_t block_size = 4096;
  std::uint64_t written_bytes = 0;  // mapped 4 KiB blocks x 4096
  bool quarantined = false;
  bool thin = false;  // promised no space: it grows only into space promised to no namespace
};

struct StoreStats {
  std::uint64_t user_bytes_written = 0;      // bytes clients wrote (write and write-zeroes with no-hole)
  std::uint64_t data_bytes_written = 0;      // data appended for clients
  std::uint64_t cleaner_bytes_written = 0;   // data the cleaner copied
  std::uint64_t metadata_bytes_written = 0;  // journal and checkpoint blocks
  std::uint64_t journal_blocks_written = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t flushes = 0;
  std::uint64_t one_flush_commits = 0;  // commits whose data and journal one device flush made durable
  std::uint64_t zones_cleaned = 0;
  std::uint64_t zones_reset = 0;
  std::uint64_t checksum_errors = 0;
  std::uint32_t data_zones = 0;
  std::uint32_t free_zones = 0;
  std::uint64_t space_bytes = 0;    // what the volume can promise (the promise limit)
  std::uint64_t claimed_bytes = 0;  // promised to namespaces, or written by thin ones
  // The most a namespace created now can be promised: at most space_bytes - claimed_bytes,
  // less while its write stream takes a zone of headroom from the promise limit. Until the
  // maps are whole (map_blocks_unread > 0) a lower bound.
  std::uint64_t new_namespace_bytes = 0;
  std::uint64_t live_bytes = 0;        // mapped blocks of every namespace
  std::uint64_t map_extents = 0;       // extents in all namespaces' maps
  std::uint64_t map_memory_bytes = 0;  // what the maps hold in memory
  // Extent blocks of the checkpoint opened not read yet: a volume opens without reading its
  // maps, which are read as requests need them and by idle_work (0 once all are in memory).
  std::uint64_t map_blocks_unread = 0;
  // Device bytes written for every user byte: (data + cleaner + metadata) / user.
  double write_amplification() const;
};

// One request of a batch. The store fills in `result`.
struct StoreRequest {
  enum class Op : std::uint8_t { kRead, kWrite, kTrim, kWriteZeroes, kFlush };
  Op op = Op::kRead;
  std::uint32_t ns = 0;
  std::uint64_t offset = 0;            // bytes
  std::uint64_t length = 0;            // bytes (trim, write-zeroes; read/write: the span's)
  std::span<const std::uint8_t> data;  // write: what to write
  std::span<std::uint8_t> out;         // read: where to put it
  bool fua = false;                    // write, trim, write-zeroes: durable on return
  bool no_hole = false;                // write-zeroes: allocate (write zeros), do not unmap
  Status result;

  static StoreRequest read(std::uint32_t ns, std::uint64_t offset, std::span<std::uint8_t> out);
  static StoreRequest write(std::uint32_t ns, std::uint64_t offset, std::span<const std::uint8_t> data,
                            bool fua = false);
  static StoreRequest trim(std::uint32_t ns, std::uint64_t offset, std::uint64_t length, bool fua = false);
  static StoreRequest write_zeroes(std::uint32_t ns, std::uint64_t offset, std::uint64_t length, bool no_hole = false,
                                   bool fua = false);
  static StoreRequest flush();
};

class Store {
 public:
  // Opens the volume on the device, recovering after a crash: the newest checkpoint, then the
  // journal after it. It checkpoints at once only after a torn journal tail or a long replay.
  static Result<std::unique_ptr<Store>> open(std::unique_ptr<ZonedDevice> device, const StoreOptions& options = {});
  ~Store();  // closing without close() is a crash: only flushed data survives

  // Flushes and checkpoints: the next open replays nothing.
  Status close();

  // Names: see format::validate_namespace_name. Sizes: positive multiples of 4096 bytes.
  // A namespace is promised its size: kNoSpace when the volume cannot promise it (sizes of
  // other namespaces and what thin ones wrote). A thin one is promised nothing and may be
  // larger than the volume; its writes get kNoSpace when no unpromised space is left.
  Result<NamespaceInfo> create_namespace(std::string_view name, std::uint64_t size_bytes,
                                         std::uint32_t block_size = 4096, bool thin = false);
  Status delete_namespace(std::string_view name);
  // Growing works while the volume can promise the new size (always, for a thin namespace);
  // shrinking only when the cut range holds no data, or with discard.
  Status resize_namespace(std::string_view name, std::uint64_t size_bytes, bool discard = false);
  std::vector<NamespaceInfo> list_namespaces() const;
  Result<NamespaceInfo> find_namespace(std::string_view name) const;

  // Byte ranges aligned to the namespace's block size, within its size.
  Status write(std::uint32_t ns_id, std::uint64_t offset, std::span<const std::uint8_t> data, bool fua = false);
  Status read(std::uint32_t ns_id, std::uint64_t offset, std::span<std::uint8_t> out);
  Status trim(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length);
  // Zeros that read back as zeros; unmapped (like trim) unless no_hole asks for written zeros.
  Status write_zeroes(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length, bool no_hole = false);
  // Every write, trim and zeroing that returned before this call is durable when it returns.
  Status flush();

  // Which parts of a range hold data (allocated) and which read as zeros because nothing is
  // mapped there (holes): in order, covering the range. For NBD block status.
  struct Allocation {
    std::uint64_t length = 0;  // bytes
    bool allocated = false;
  };
  Result<std::vector<Allocation>> allocation(std::uint32_t ns_id, std::uint64_t offset, std::uint64_t length);

  // Executes a batch of requests as if they were in flight together on a disk: their device
  // I/O is queued at once (up to the device's queue depth), writes go to zone append, and one
  // group commit makes every flush and FUA write of the batch durable. Overlapping requests in
  // one batch have no defined order (as on any disk); writes are mapped in batch order, and a
  // read sees each block's content from before the batch or from a write in it. Each
  // request's own outcome is in its `result`; the return is not OK only when the store itself
  // failed (then every unfinished request carries that error too).
  //
  // `meanwhile`, when given, runs once the batch's device I/O is all queued and before the
  // store waits for it, if any of it is still in flight: the caller's other work (the daemon
  // receives the next requests' bytes while this batch's writes are copied out). It must not
  // change the store (asking its device whether it is still writing is fine), nor touch a
  // request's buffers.
  Status execute(std::span<StoreRequest> batch, const std::function<void()>& meanwhile = {});

  // Work for quiet moments (the daemon calls it when idle): a checkpoint when the journal
  // holds records older than checkpoint_interval_seconds, and cleaning ahead of need while
  // free zones are few. Returns how long until it wants to run again (milliseconds).
  Result<std::uint32_t> idle_work();

  Status checkpoint();
  // One cleaning round: copies the live blocks of the best victim zone and resets it.
  // Returns kNotFound when no zone is worth cleaning.
  Status clean_step();

  StoreStats stats() const;
  const format::Superblock& superblock() const;
  ZonedDevice& device();

  struct Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nyads
