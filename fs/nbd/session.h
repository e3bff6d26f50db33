// Session: one NBD connection's protocol state, from the greeting through option haggling to
// transmission, without the socket. The daemon feeds it the bytes that arrived; it answers
// options at once, and turns transmission requests into Commands the daemon executes on the
// store (in batches, with every other connection's), then hands back for the reply.
//
// What it serves (see doc/design.md, "NBD export"): fixed newstyle only; OPT_GO, OPT_INFO,
// OPT_EXPORT_NAME, OPT_LIST, OPT_ABORT, OPT_STRUCTURED_REPLY, OPT_LIST/SET_META_CONTEXT with
// base:allocation; commands READ, WRITE (FUA), FLUSH, TRIM (FUA), WRITE_ZEROES (FUA, NO_HOLE),
// BLOCK_STATUS, DISC. Flush and FUA hold across connections (one store): CAN_MULTI_CONN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fs/nbd/output_queue.h"
#include "fs/nbd/protocol.h"
#include "nyads/aligned_buffer.h"
#include "nyads/store.h"

namespace nyads::nbd {

// An export: one namespace.
struct ExportInfo {
  std::uint32_t ns = 0;
  std::string name;
  std::uint64_t size = 0;
  std::uint32_t block_size = 4096;
};

// What a session needs to know about the exports.
class ExportCatalog {
 public:
  virtual ~ExportCatalog() = default;
  virtual std::optional<ExportInfo> find(std::string_view name) const = 0;
  virtual std::vector<ExportInfo> list() const = 0;
};

// A transmission request waiting for the store.
struct Command {
  std::uint64_t cookie = 0;
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
  AlignedBuffer buffer;     // READ: where the data goes; WRITE: the payload, copied (unless in place)
  StoreRequest store;       // what to run, when `error` is 0
  std::uint32_t error = 0;  // nonzero: answer this NBD error without running anything
  std::string message;      // why, for structured error replies and the log
};

class Session {
 public:
  static constexpr std::uint16_t kTransmissionFlags =
      kFlagHasFlags | kFlagSendFlush | kFlagSendFua | kFlagSendTrim | kFlagSendWriteZeroes | kFlagCanMultiConn;
  static constexpr std::uint32_t kMaxPayload = kDefaultMaxPayload;  // 32 MiB
  static constexpr std::uint32_t kBaseAllocationId = 1;             // our one meta context

  explicit Session(const ExportCatalog& catalog) : catalog_(catalog) {}

  // The greeting, to send when the connection is accepted.
  void start(OutputQueue& out);

  // A WRITE's command refers to its payload where it lies in the bytes given to feed(),
  // instead of copying it (a copy of every byte written: 13% of the daemon's time under
  // 1 MiB writes). Only for a caller that keeps those bytes, unchanged, until the command has
  // run: the daemon runs a turn's commands before it receives again.
  void set_write_payload_in_place(bool in_place) { payload_in_place_ = in_place; }

  struct Fed {
    std::size_t consumed = 0;  // bytes of `in` used up
    std::size_t need = 0;      // total bytes the next message needs (from the end of consumed)
  };
  // Parses what it can of `in`: option replies go to `out`, transmission requests to
  // `commands`. Stops after max_commands commands or once the commands' data (read and write
  // lengths) reaches max_bytes, so the daemon bounds what one client has in flight; it always
  // takes at least one command when max_commands allows. When the connection must end,
  // closing() says so and why() says why.
  Fed feed(std::span<const std::uint8_t> in, OutputQueue& out, std::vector<Command>& commands, std::size_t max_commands,
           std::size_t max_bytes = SIZE_MAX);

  // The reply for an executed command (store result in command.store.result), or for one that
  // carries an error. Block status needs the store's allocation, looked up here.
  void reply(Command& command, Store& store, OutputQueue& out);

  bool closing() const { return closing_; }
  const std::string& why() const { return why_; }
  bool in_transmission() const { return phase_ == Phase::kTransmission; }
  const std::optional<ExportInfo>& export_info() const { return export_; }

 private:
  enum class Phase { kClientFlags, kOptions, kTransmission };
  void close(std::string why);
  void handle_option(const Option& option, OutputQueue& out);
  void handle_go(const Option& option, OutputQueue& out);
  void handle_meta_context(const Option& option, OutputQueue& out);
  Command make_command(const Request& request);

  const ExportCatalog& catalog_;
  Phase phase_ = Phase::kClientFlags;
  bool no_zeroes_ = false;
  bool structured_ = false;
  bool base_allocation_ = false;
  std::optional<ExportInfo> export_;
  std::string meta_export_;  // the export SET_META_CONTEXT named
  bool closing_ = false;
  std::string why_;
  bool payload_in_place_ = false;
};

}  // namespace nyads::nbd
