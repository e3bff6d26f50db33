#include "fs/nbd/session.h"

#include <cerrno>
#include <cstring>

namespace nyads::nbd {

namespace {
std::string n(std::uint64_t v) { return std::to_string(v); }
constexpr std::uint32_t kPreferredBlock = 4096;
}  // namespace

void Session::start(OutputQueue& out) { out.append(encode_server_greeting()); }

void Session::close(std::string why) {
  if (closing_) return;
  closing_ = true;
  why_ = std::move(why);
}

Session::Fed Session::feed(std::span<const std::uint8_t> in, OutputQueue& out, std::vector<Command>& commands,
                           std::size_t max_commands, std::size_t max_bytes) {
  Fed fed;
  std::size_t taken = 0, bytes = 0;
  while (!closing_) {
    auto rest = in.subspan(fed.consumed);
    if (phase_ == Phase::kClientFlags) {
      if (rest.size() < 4) {
        fed.need = 4;
        break;
      }
      auto flags = parse_client_flags(rest.first<4>());
      if (!flags.ok()) {
        close("handshake: " + flags.status().message());
        break;
      }
      if (!(*flags & kFlagCFixedNewstyle)) {
        close("handshake: the client does not speak fixed newstyle, the only handshake served");
        break;
      }
      no_zeroes_ = (*flags & kFlagCNoZeroes) != 0;
      fed.consumed += 4;
      phase_ = Phase::kOptions;
    } else if (phase_ == Phase::kOptions) {
      OptionParse p = parse_option(rest, kDefaultMaxOptionLength);
      if (p.state == ParseState::kNeedMore) {
        fed.need = p.need;
        break;
      }
      if (p.state == ParseState::kBad) {
        close("handshake: " + p.error);
        break;
      }
      fed.consumed += p.consumed;
      handle_option(p.option, out);
    } else {
      if (taken == max_commands || (taken > 0 && bytes >= max_bytes)) break;
      RequestParse p = parse_request(rest, kMaxPayload);
      if (p.state == ParseState::kNeedMore) {
        fed.need = p.need;
        break;
      }
      if (p.state == ParseState::kBad) {
        close("request: " + p.error);
        break;
      }
      fed.consumed += p.consumed;
      if (p.request.type == kCmdDisc) {
        close("the client disconnected (NBD_CMD_DISC)");
        break;
      }
      commands.push_back(make_command(p.request));
      ++taken;
      if (p.request.type == kCmdRead || p.request.type == kCmdWrite) bytes += p.request.length;
    }
  }
  return fed;
}

// ----- options ------------------------------------------------------------------------------

void Session::handle_option(const Option& option, OutputQueue& out) {
  const std::uint32_t o = option.option;
  switch (o) {
    case kOptExportName: {
      auto name = parse_export_name(option.data);
      std::optional<ExportInfo> e = name.ok() ? catalog_.find(*name) : std::nullopt;
      if (!e) {  // this option has no error reply: the spec says to close
        close("NBD_OPT_EXPORT_NAME: no export '" + (name.ok() ? *name : std::string("?")) + "'");
        return;
      }
      export_ = e;
      out.append(encode_export_name_reply(e->size, kTransmissionFlags, no_zeroes_));
      phase_ = Phase::kTransmission;
      base_allocation_ = false;  // only NBD_OPT_GO keeps meta contexts
      return;
    }
    case kOptAbort:
      out.append(encode_option_reply(o, kRepAck));
      close("the client ended the handshake (NBD_OPT_ABORT)");
      return;
    case kOptList: {
      if (!option.data.empty()) {
        out.append(encode_option_error(o, kRepErrInvalid, "NBD_OPT_LIST takes no data"));
        return;
      }
      for (const auto& e : catalog_.list()) out.append(encode_rep_server(o, e.name));
      out.append(encode_option_reply(o, kRepAck));
      return;
    }
    case kOptInfo:
    case kOptGo: handle_go(option, out); return;
    case kOptStructuredReply:
      if (!option.data.empty()) {
        out.append(encode_option_error(o, kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data"));
        return;
      }
      structured_ = true;
      out.append(encode_option_reply(o, kRepAck));
      return;
    case kOptListMetaContext:
    case kOptSetMetaContext: handle_meta_context(option, out); return;
    case kOptStartTls:
      out.append(encode_option_error(o, kRepErrPolicy, "TLS is not served: use the unix socket, or a TLS tunnel"));
      return;
    default:
      out.append(
          encode_option_error(o, kRepErrUnsup, std::string(option_name(o)) + " (" + n(o) + ") is not supported"));
      return;
  }
}

void Session::handle_go(const Option& option, OutputQueue& out) {
  const std::uint32_t o = option.option;
  auto go = parse_go(option.data);
  if (!go.ok()) {
    out.append(encode_option_error(o, kRepErrInvalid, go.status().message()));
    return;
  }
  std::optional<ExportInfo> e = catalog_.find(go->name);
  if (!e) {
    out.append(encode_option_error(o, kRepErrUnknown, "no export '" + go->name + "' (nyads ns list shows them)"));
    return;
  }
  bool block_size_requested = false;
  for (std::uint16_t info : go->info_requests) {
    if (info == kInfoName) out.append(encode_info_name(o, e->name));
    if (info == kInfoDescription) out.append(encode_info_description(o, "nyads namespace " + e->name));
    if (info == kInfoBlockSize) block_size_requested = true;
  }
  // Block sizes only when asked: a client that did not ask may not honour a minimum.
  if (block_size_requested)
    out.append(encode_info_block_size(o, e->block_size, std::max(e->block_size, kPreferredBlock), kMaxPayload));
  out.append(encode_info_export(o, e->size, kTransmissionFlags));
  out.append(encode_option_reply(o, kRepAck));
  if (o == kOptGo) {
    if (base_allocation_ && meta_export_ != e->name) base_allocation_ = false;
    export_ = e;
    phase_ = Phase::kTransmission;
  }
}

void Session::handle_meta_context(const Option& option, OutputQueue& out) {
  const std::uint32_t o = option.option;
  auto req = parse_meta_context(option.data);
  if (!req.ok()) {
    out.append(encode_option_error(o, kRepErrInvalid, req.status().message()));
    return;
  }
  if (o == kOptSetMetaContext && !structured_) {
    out.append(encode_option_error(o, kRepErrInvalid, "NBD_OPT_SET_META_CONTEXT needs structured replies first"));
    return;
  }
  if (!catalog_.find(req->export_name)) {
    out.append(encode_option_error(o, kRepErrUnknown, "no export '" + req->export_name + "'"));
    return;
  }
  // base:allocation is the only context; "base:" (list only) or no query at all names it too.
  bool selected = false;
  const bool list = o == kOptListMetaContext;
  for (const auto& q : req->queries) selected = selected || q == "base:allocation" || (list && q == "base:");
  if (list && req->queries.empty()) selected = true;
  if (selected) out.append(encode_meta_context(o, list ? 0 : kBaseAllocationId, "base:allocation"));
  if (!list) {
    base_allocation_ = selected;
    meta_export_ = req->export_name;
  }
  out.append(encode_option_reply(o, kRepAck));
}

// ----- transmission -------------------------------------------------------------------------

Command Session::make_command(const Request& r) {
  Command c;
  c.cookie = r.cookie;
  c.type = r.type;
  c.flags = r.flags;
  c.offset = r.offset;
  c.length = r.length;
  auto fail = [&](std::uint32_t error, std::string message) {
    c.error = error;
    c.message = std::string(command_name(r.type)) + ": " + std::move(message);
    return std::move(c);
  };
  const ExportInfo& e = *export_;
  std::uint16_t allowed = 0;
  switch (r.type) {
    case kCmdRead: allowed = structured_ ? kCmdFlagDf : 0; break;
    case kCmdWrite: allowed = kCmdFlagFua; break;
    case kCmdFlush: allowed = 0; break;
    case kCmdTrim: allowed = kCmdFlagFua; break;
    case kCmdWriteZeroes: allowed = kCmdFlagFua | kCmdFlagNoHole; break;
    case kCmdBlockStatus: allowed = kCmdFlagReqOne; break;
    default: return fail(kEinval, "command " + n(r.type) + " is not supported");
  }
  if (r.flags & ~allowed) return fail(kEinval, "flags 0x" + n(r.flags) + " are not allowed here");
  if (r.type == kCmdFlush) {
    c.store = StoreRequest::flush();
    return c;
  }
  if (r.type == kCmdBlockStatus && !base_allocation_) return fail(kEinval, "no meta context was negotiated");
  if (r.length == 0) return fail(kEinval, "a length of 0");
  if (r.offset > e.size || r.length > e.size - r.offset) {
    const bool writes = r.type == kCmdWrite || r.type == kCmdTrim || r.type == kCmdWriteZeroes;
    return fail(writes ? kEnospc : kEinval, "bytes " + n(r.offset) + ".." + n(r.offset + r.length) +
                                                " run past the end of the export (" + n(e.size) + " bytes)");
  }
  if (r.offset % e.block_size != 0 || r.length % e.block_size != 0)
    return fail(kEinval, "offset " + n(r.offset) + " and length " + n(r.length) +
                             " must be multiples of the block size " + n(e.block_size));
  const bool fua = (r.flags & kCmdFlagFua) != 0;
  switch (r.type) {
    case kCmdRead:
      if (r.length > kMaxPayload)
        return fail(kEinval, "a read of " + n(r.length) + " bytes is over the maximum " + n(kMaxPayload));
      c.buffer = AlignedBuffer::uninitialized(r.length);  // the store fills every byte of a successful read
      c.store = StoreRequest::read(e.ns, r.offset, c.buffer.span());
      break;
    case kCmdWrite:
      if (payload_in_place_) {
        c.store = StoreRequest::write(e.ns, r.offset, r.payload, fua);
        break;
      }
      c.buffer = AlignedBuffer::uninitialized(r.length);
      std::memcpy(c.buffer.data(), r.payload.data(), r.length);
      c.store = StoreRequest::write(e.ns, r.offset, c.buffer.span(), fua);
      break;
    case kCmdTrim: c.store = StoreRequest::trim(e.ns, r.offset, r.length, fua); break;
    case kCmdWriteZeroes:
      c.store = StoreRequest::write_zeroes(e.ns, r.offset, r.length, (r.flags & kCmdFlagNoHole) != 0, fua);
      break;
    case kCmdBlockStatus: break;  // answered in reply(), from the map
  }
  return c;
}

void Session::reply(Command& c, Store& store, OutputQueue& out) {
  std::uint32_t error = c.error;
  std::string message = c.message;
  std::vector<BlockStatusExtent> extents;
  if (error == 0 && c.type == kCmdBlockStatus) {
    // At most 256 MiB per reply: the spec lets a reply cover less than asked, and it bounds
    // the reply's size.
    auto alloc = store.allocation(export_->ns, c.offset, std::min<std::uint32_t>(c.length, 256u << 20));
    if (alloc.ok()) {
      for (const auto& a : *alloc) {
        // Descriptor lengths are 32-bit; an extent is at most 1 MiB, a request at most 4 GiB - 1.
        extents.push_back({static_cast<std::uint32_t>(a.length), a.allocated ? 0u : (kStateHole | kStateZero)});
        if (c.flags & kCmdFlagReqOne) break;
      }
    } else {
      error = errno_to_nbd(alloc.status().to_errno());
      message = alloc.status().message();
    }
  } else if (error == 0 && !c.store.result.ok()) {
    error = errno_to_nbd(c.store.result.to_errno());
    if (error == 0) error = kEio;
    message = c.store.result.message();
  }
  const bool structured_payload = structured_ && (c.type == kCmdRead || c.type == kCmdBlockStatus);
  if (error != 0) {
    if (structured_payload)
      out.append(encode_error_chunk(kReplyFlagDone, c.cookie, error, message));
    else
      out.append(encode_simple_reply(c.cookie, error));
    return;
  }
  if (c.type == kCmdBlockStatus) {
    out.append(encode_block_status_chunk(kReplyFlagDone, c.cookie, kBaseAllocationId, extents));
  } else if (c.type == kCmdRead && structured_) {
    out.append(encode_offset_data_header(kReplyFlagDone, c.cookie, c.offset, c.length));
    out.append(std::move(c.buffer));
  } else if (c.type == kCmdRead) {
    out.append(encode_simple_reply(c.cookie, 0));
    out.append(std::move(c.buffer));
  } else {
    out.append(encode_simple_reply(c.cookie, 0));
  }
}

}  // namespace nyads::nbd
