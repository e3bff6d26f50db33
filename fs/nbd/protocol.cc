#include "fs/nbd/protocol.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace nyads::nbd {

namespace {

// Big-endian fields (byte_order.h is little-endian, for the on-disk format).
void put_be16(std::uint8_t* p, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (1 - i)));
}
void put_be32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (3 - i)));
}
void put_be64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (7 - i)));
}
std::uint16_t get_be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t get_be32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get_be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// Appends big-endian fields to a message under construction.
class Appender {
 public:
  explicit Appender(std::vector<std::uint8_t>& out) : out_(out) {}
  void u16(std::uint16_t v) {
    grow(2);
    put_be16(&out_[out_.size() - 2], v);
  }
  void u32(std::uint32_t v) {
    grow(4);
    put_be32(&out_[out_.size() - 4], v);
  }
  void u64(std::uint64_t v) {
    grow(8);
    put_be64(&out_[out_.size() - 8], v);
  }
  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void str(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }

 private:
  void grow(std::size_t n) { out_.resize(out_.size() + n); }
  std::vector<std::uint8_t>& out_;
};

std::string num(std::uint64_t v) { return std::to_string(v); }

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// "NBD_OPT_GO (7)": what error messages call an option or command.
std::string option_label(std::uint32_t option) { return std::string(option_name(option)) + " (" + num(option) + ")"; }
std::string command_label(std::uint16_t type) { return std::string(command_name(type)) + " (" + num(type) + ")"; }

// Strings on the wire are at most 4096 bytes. Longer ones (only ever our own messages and
// names) are cut there, backing off to a UTF-8 character boundary so the cut stays valid.
std::string_view cut(std::string_view s) {
  if (s.size() <= kMaxStringBytes) return s;
  std::size_t n = kMaxStringBytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

// A string the client sent: at most 4096 bytes, no NUL (the spec forbids both).
Result<std::string> take_string(std::span<const std::uint8_t> bytes, std::string_view what) {
  if (bytes.size() > kMaxStringBytes)
    return InvalidArgument(std::string(what) + " is " + num(bytes.size()) + " bytes, the limit is " +
                           num(kMaxStringBytes));
  const auto nul = std::find(bytes.begin(), bytes.end(), std::uint8_t{0});
  if (nul != bytes.end())
    return InvalidArgument(std::string(what) + " has a NUL byte at offset " +
                           num(static_cast<std::size_t>(nul - bytes.begin())));
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::uint32_t u32_size(std::size_t n) {
  assert(n <= std::numeric_limits<std::uint32_t>::max());
  return static_cast<std::uint32_t>(n);
}

void put_chunk_header(std::uint8_t* p, std::uint16_t flags, std::uint16_t type, std::uint64_t cookie,
                      std::uint32_t payload_length) {
  put_be32(p, kStructuredReplyMagic);
  put_be16(p + 4, flags);
  put_be16(p + 6, type);
  put_be64(p + 8, cookie);
  put_be32(p + 16, payload_length);
}

// NBD_REP_INFO: u16 information type, then its payload.
std::vector<std::uint8_t> info_reply(std::uint32_t option, std::uint16_t info, std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> p;
  p.reserve(2 + payload.size());
  Appender a(p);
  a.u16(info);
  a.bytes(payload);
  return encode_option_reply(option, kRepInfo, p);
}

// The error chunks share error, message length and message; ERROR_OFFSET adds an offset.
std::vector<std::uint8_t> error_chunk(std::uint16_t flags, std::uint16_t type, std::uint64_t cookie,
                                      std::uint32_t error, std::string_view message, const std::uint64_t* offset) {
  assert(error != 0);  // the spec: error MUST be nonzero
  const std::string_view m = cut(message);
  const std::size_t payload = 6 + m.size() + (offset != nullptr ? 8 : 0);
  std::vector<std::uint8_t> out(kChunkHeaderBytes);
  out.reserve(kChunkHeaderBytes + payload);
  put_chunk_header(out.data(), flags, type, cookie, u32_size(payload));
  Appender a(out);
  a.u32(error);
  a.u16(static_cast<std::uint16_t>(m.size()));
  a.str(m);
  if (offset != nullptr) a.u64(*offset);
  return out;
}

}  // namespace

// ---- Handshake ----

std::vector<std::uint8_t> encode_server_greeting(std::uint16_t handshake_flags) {
  std::vector<std::uint8_t> out;
  out.reserve(kGreetingBytes);
  Appender a(out);
  a.u64(kNbdMagic);
  a.u64(kIHaveOpt);
  a.u16(handshake_flags);
  return out;
}

Result<std::uint32_t> parse_client_flags(std::span<const std::uint8_t, 4> bytes) {
  const std::uint32_t flags = get_be32(bytes.data());
  const std::uint32_t unknown = flags & ~(kFlagCFixedNewstyle | kFlagCNoZeroes);
  if (unknown != 0)
    return InvalidArgument("client flags " + hex(flags) + " set unknown bits " + hex(unknown) +
                           " (known: 0x1 NBD_FLAG_C_FIXED_NEWSTYLE, 0x2 NBD_FLAG_C_NO_ZEROES)");
  return flags;
}

// ---- Stream parsing ----

OptionParse parse_option(std::span<const std::uint8_t> bytes, std::uint32_t max_option_length) {
  OptionParse r;
  auto bad = [&](std::string error) {
    r.state = ParseState::kBad;
    r.need = 0;
    r.error = std::move(error);
    return r;
  };
  r.need = kOptionHeaderBytes;
  // Check the magic as soon as it is here: a client speaking something else is told off
  // before it sends the rest of a header.
  if (bytes.size() >= 8) {
    const std::uint64_t magic = get_be64(bytes.data());
    if (magic != kIHaveOpt)
      return bad("option header: bad magic " + hex(magic) + " (expected IHAVEOPT " + hex(kIHaveOpt) + ")");
  }
  if (bytes.size() < kOptionHeaderBytes) return r;
  const std::uint32_t option = get_be32(bytes.data() + 8);
  const std::uint32_t length = get_be32(bytes.data() + 12);
  if (length > max_option_length)
    return bad("option " + option_label(option) + ": length " + num(length) + " exceeds the limit of " +
               num(max_option_length) + " bytes");
  r.need = kOptionHeaderBytes + length;
  if (bytes.size() < r.need) return r;
  r.state = ParseState::kComplete;
  r.consumed = r.need;
  r.need = 0;
  r.option = {option, bytes.subspan(kOptionHeaderBytes, length)};
  return r;
}

RequestParse parse_request(std::span<const std::uint8_t> bytes, std::uint32_t max_payload) {
  RequestParse r;
  auto bad = [&](std::string error) {
    r.state = ParseState::kBad;
    r.need = 0;
    r.error = std::move(error);
    return r;
  };
  r.need = kRequestHeaderBytes;
  if (bytes.size() >= 4) {
    const std::uint32_t magic = get_be32(bytes.data());
    if (magic == kExtendedRequestMagic)
      return bad("request header: extended request magic " + hex(magic) + ", but extended headers were not negotiated");
    if (magic != kRequestMagic)
      return bad("request header: bad magic " + hex(magic) + " (expected " + hex(kRequestMagic) + ")");
  }
  if (bytes.size() < kRequestHeaderBytes) return r;
  Request q;
  q.flags = get_be16(bytes.data() + 4);
  q.type = get_be16(bytes.data() + 6);
  q.cookie = get_be64(bytes.data() + 8);
  q.offset = get_be64(bytes.data() + 16);
  q.length = get_be32(bytes.data() + 24);
  // Only a write carries data in the compact header; for every other command (known or
  // not) the length is an effect length, and the next request follows at once.
  const std::size_t payload = q.type == kCmdWrite ? q.length : 0;
  if (q.type == kCmdWrite && q.length > max_payload)
    return bad("request " + command_label(q.type) + " of " + num(q.length) + " bytes at offset " + num(q.offset) +
               " exceeds the maximum payload of " + num(max_payload) + " bytes");
  r.need = kRequestHeaderBytes + payload;
  if (bytes.size() < r.need) return r;
  q.payload = bytes.subspan(kRequestHeaderBytes, payload);
  r.state = ParseState::kComplete;
  r.consumed = r.need;
  r.need = 0;
  r.request = q;
  return r;
}

// ---- Option payloads ----

Result<std::string> parse_export_name(std::span<const std::uint8_t> data) { return take_string(data, "export name"); }

Result<GoRequest> parse_go(std::span<const std::uint8_t> data) {
  const std::string w = "NBD_OPT_INFO/NBD_OPT_GO data";
  const std::size_t size = data.size();
  // Fixed part: u32 name length + u16 count = 6 bytes around the name.
  if (size < 6)
    return InvalidArgument(w + " is " + num(size) +
                           " bytes, too short for the name length and the information request count (6 bytes)");
  const std::uint32_t name_length = get_be32(data.data());
  if (name_length > kMaxStringBytes)
    return InvalidArgument(w + ": export name length " + num(name_length) + " exceeds the limit of " +
                           num(kMaxStringBytes) + " bytes");
  if (name_length > size - 6)
    return InvalidArgument(w + ": export name length " + num(name_length) + " does not fit in " + num(size) +
                           " bytes of data (at most " + num(size - 6) + ")");
  GoRequest g;
  auto name = take_string(data.subspan(4, name_length), "export name");
  if (!name.ok()) return Status(name.status()).with_context(w);
  g.name = std::move(*name);
  const std::size_t at = 4 + std::size_t{name_length};
  const std::uint16_t count = get_be16(data.data() + at);
  const std::size_t left = size - at - 2;
  if (left != 2 * std::size_t{count})
    return InvalidArgument(w + ": " + num(count) + " information requests need " + num(2 * std::size_t{count}) +
                           " bytes after the count, but " + num(left) + " follow");
  g.info_requests.reserve(count);
  for (std::size_t i = 0; i < count; ++i) g.info_requests.push_back(get_be16(data.data() + at + 2 + 2 * i));
  return g;
}

Result<MetaContextRequest> parse_meta_context(std::span<const std::uint8_t> data) {
  const std::string w = "meta context request";
  const std::size_t size = data.size();
  // Fixed part: u32 name length + u32 query count = 8 bytes around the name.
  if (size < 8)
    return InvalidArgument(w + " is " + num(size) +
                           " bytes, too short for the name length and the query count (8 bytes)");
  const std::uint32_t name_length = get_be32(data.data());
  if (name_length > kMaxStringBytes)
    return InvalidArgument(w + ": export name length " + num(name_length) + " exceeds the limit of " +
                           num(kMaxStringBytes) + " bytes");
  if (name_length > size - 8)
    return InvalidArgument(w + ": export name length " + num(name_length) + " does not fit in " + num(size) +
                           " bytes of data (at most " + num(size - 8) + ")");
  MetaContextRequest m;
  auto name = take_string(data.subspan(4, name_length), "export name");
  if (!name.ok()) return Status(name.status()).with_context(w);
  m.export_name = std::move(*name);
  std::size_t at = 4 + std::size_t{name_length};
  const std::uint32_t count = get_be32(data.data() + at);
  at += 4;
  // Each query is at least its 4-byte length: bound the count before reserving for it.
  if (count > (size - at) / 4)
    return InvalidArgument(w + ": " + num(count) + " queries need at least " + num(4 * std::uint64_t{count}) +
                           " bytes, but " + num(size - at) + " follow the count");
  m.queries.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string q = "query " + num(i);
    if (size - at < 4)
      return InvalidArgument(w + ": " + q + ": " + num(size - at) + " bytes left, too few for its length");
    const std::uint32_t length = get_be32(data.data() + at);
    at += 4;
    if (length > kMaxStringBytes)
      return InvalidArgument(w + ": " + q + ": length " + num(length) + " exceeds the limit of " +
                             num(kMaxStringBytes) + " bytes");
    if (length > size - at)
      return InvalidArgument(w + ": " + q + ": length " + num(length) + " exceeds the " + num(size - at) +
                             " bytes left");
    auto s = take_string(data.subspan(at, length), q);
    if (!s.ok()) return Status(s.status()).with_context(w);
    m.queries.push_back(std::move(*s));
    at += length;
  }
  if (at != size) return InvalidArgument(w + ": " + num(size - at) + " bytes follow the last query");
  return m;
}

// ---- Option replies ----

std::vector<std::uint8_t> encode_option_reply(std::uint32_t option, std::uint32_t reply_type,
                                              std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out;
  out.reserve(kOptionReplyHeaderBytes + payload.size());
  Appender a(out);
  a.u64(kRepMagic);
  a.u32(option);
  a.u32(reply_type);
  a.u32(u32_size(payload.size()));
  a.bytes(payload);
  return out;
}

std::vector<std::uint8_t> encode_option_error(std::uint32_t option, std::uint32_t err_type, std::string_view message) {
  assert((err_type & kRepFlagError) != 0);
  return encode_option_reply(option, err_type, as_bytes(cut(message)));
}

std::vector<std::uint8_t> encode_rep_server(std::uint32_t option, std::string_view export_name,
                                            std::string_view description) {
  const std::string_view n = cut(export_name), d = cut(description);
  std::vector<std::uint8_t> p;
  p.reserve(4 + n.size() + d.size());
  Appender a(p);
  a.u32(u32_size(n.size()));
  a.str(n);
  a.str(d);
  return encode_option_reply(option, kRepServer, p);
}

std::vector<std::uint8_t> encode_info_export(std::uint32_t option, std::uint64_t size,
                                             std::uint16_t transmission_flags) {
  std::uint8_t p[10];
  put_be64(p, size);
  put_be16(p + 8, transmission_flags);
  return info_reply(option, kInfoExport, p);
}

std::vector<std::uint8_t> encode_info_name(std::uint32_t option, std::string_view name) {
  return info_reply(option, kInfoName, as_bytes(cut(name)));
}

std::vector<std::uint8_t> encode_info_description(std::uint32_t option, std::string_view description) {
  return info_reply(option, kInfoDescription, as_bytes(cut(description)));
}

std::vector<std::uint8_t> encode_info_block_size(std::uint32_t option, std::uint32_t minimum, std::uint32_t preferred,
                                                 std::uint32_t maximum) {
  std::uint8_t p[12];
  put_be32(p, minimum);
  put_be32(p + 4, preferred);
  put_be32(p + 8, maximum);
  return info_reply(option, kInfoBlockSize, p);
}

std::vector<std::uint8_t> encode_meta_context(std::uint32_t option, std::uint32_t context_id, std::string_view name) {
  const std::string_view n = cut(name);
  std::vector<std::uint8_t> p;
  p.reserve(4 + n.size());
  Appender a(p);
  a.u32(context_id);
  a.str(n);
  return encode_option_reply(option, kRepMetaContext, p);
}

std::vector<std::uint8_t> encode_export_name_reply(std::uint64_t size, std::uint16_t transmission_flags,
                                                   bool no_zeroes) {
  std::vector<std::uint8_t> out;
  out.reserve(10 + kExportNameZeroes);
  Appender a(out);
  a.u64(size);
  a.u16(transmission_flags);
  if (!no_zeroes) out.resize(out.size() + kExportNameZeroes, 0);
  return out;
}

// ---- Transmission replies ----

std::array<std::uint8_t, kSimpleReplyBytes> encode_simple_reply(std::uint64_t cookie, std::uint32_t error) {
  std::array<std::uint8_t, kSimpleReplyBytes> out;
  put_be32(&out[0], kSimpleReplyMagic);
  put_be32(&out[4], error);
  put_be64(&out[8], cookie);
  return out;
}

std::array<std::uint8_t, kChunkHeaderBytes> encode_chunk_header(std::uint16_t flags, std::uint16_t type,
                                                                std::uint64_t cookie, std::uint32_t payload_length) {
  std::array<std::uint8_t, kChunkHeaderBytes> out;
  put_chunk_header(out.data(), flags, type, cookie, payload_length);
  return out;
}

std::array<std::uint8_t, kChunkHeaderBytes> encode_none_chunk(std::uint64_t cookie) {
  return encode_chunk_header(kReplyFlagDone, kReplyTypeNone, cookie, 0);
}

std::array<std::uint8_t, kChunkHeaderBytes + 8> encode_offset_data_header(std::uint16_t flags, std::uint64_t cookie,
                                                                          std::uint64_t offset,
                                                                          std::uint32_t data_length) {
  assert(data_length != 0 && data_length <= std::numeric_limits<std::uint32_t>::max() - 8);
  std::array<std::uint8_t, kChunkHeaderBytes + 8> out;
  put_chunk_header(out.data(), flags, kReplyTypeOffsetData, cookie, 8 + data_length);
  put_be64(&out[kChunkHeaderBytes], offset);
  return out;
}

std::array<std::uint8_t, kChunkHeaderBytes + 12> encode_offset_hole_chunk(std::uint16_t flags, std::uint64_t cookie,
                                                                          std::uint64_t offset,
                                                                          std::uint32_t hole_size) {
  assert(hole_size != 0);
  std::array<std::uint8_t, kChunkHeaderBytes + 12> out;
  put_chunk_header(out.data(), flags, kReplyTypeOffsetHole, cookie, 12);
  put_be64(&out[kChunkHeaderBytes], offset);
  put_be32(&out[kChunkHeaderBytes + 8], hole_size);
  return out;
}

std::vector<std::uint8_t> encode_error_chunk(std::uint16_t flags, std::uint64_t cookie, std::uint32_t error,
                                             std::string_view message) {
  return error_chunk(flags, kReplyTypeError, cookie, error, message, nullptr);
}

std::vector<std::uint8_t> encode_error_offset_chunk(std::uint16_t flags, std::uint64_t cookie, std::uint32_t error,
                                                    std::string_view message, std::uint64_t offset) {
  return error_chunk(flags, kReplyTypeErrorOffset, cookie, error, message, &offset);
}

std::vector<std::uint8_t> encode_block_status_chunk(std::uint16_t flags, std::uint64_t cookie, std::uint32_t context_id,
                                                    std::span<const BlockStatusExtent> extents) {
  assert(!extents.empty());  // the spec: one or more descriptors
  const std::size_t payload = 4 + 8 * extents.size();
  std::vector<std::uint8_t> out(kChunkHeaderBytes);
  out.reserve(kChunkHeaderBytes + payload);
  put_chunk_header(out.data(), flags, kReplyTypeBlockStatus, cookie, u32_size(payload));
  Appender a(out);
  a.u32(context_id);
  for (const BlockStatusExtent& e : extents) {
    a.u32(e.length);
    a.u32(e.flags);
  }
  return out;
}

// ---- The client's side ----

std::array<std::uint8_t, 4> encode_client_flags(std::uint32_t flags) {
  std::array<std::uint8_t, 4> out;
  put_be32(out.data(), flags);
  return out;
}

std::array<std::uint8_t, kOptionHeaderBytes> encode_option_header(std::uint32_t option, std::uint32_t length) {
  std::array<std::uint8_t, kOptionHeaderBytes> out;
  put_be64(&out[0], kIHaveOpt);
  put_be32(&out[8], option);
  put_be32(&out[12], length);
  return out;
}

std::vector<std::uint8_t> encode_option(std::uint32_t option, std::span<const std::uint8_t> data) {
  const auto header = encode_option_header(option, u32_size(data.size()));
  std::vector<std::uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<std::uint8_t> encode_go_option(std::uint32_t option, std::string_view name,
                                           std::span<const std::uint16_t> info_requests) {
  assert(info_requests.size() <= std::numeric_limits<std::uint16_t>::max());
  std::vector<std::uint8_t> d;
  d.reserve(6 + name.size() + 2 * info_requests.size());
  Appender a(d);
  a.u32(u32_size(name.size()));
  a.str(name);
  a.u16(static_cast<std::uint16_t>(info_requests.size()));
  for (std::uint16_t info : info_requests) a.u16(info);
  return encode_option(option, d);
}

std::vector<std::uint8_t> encode_meta_context_option(std::uint32_t option, std::string_view export_name,
                                                     std::span<const std::string> queries) {
  std::vector<std::uint8_t> d;
  Appender a(d);
  a.u32(u32_size(export_name.size()));
  a.str(export_name);
  a.u32(u32_size(queries.size()));
  for (const std::string& q : queries) {
    a.u32(u32_size(q.size()));
    a.str(q);
  }
  return encode_option(option, d);
}

std::array<std::uint8_t, kRequestHeaderBytes> encode_request_header(const Request& request) {
  std::array<std::uint8_t, kRequestHeaderBytes> out;
  put_be32(&out[0], kRequestMagic);
  put_be16(&out[4], request.flags);
  put_be16(&out[6], request.type);
  put_be64(&out[8], request.cookie);
  put_be64(&out[16], request.offset);
  put_be32(&out[24], request.length);
  return out;
}

// ---- Errors and names ----

std::uint32_t errno_to_nbd(int err) {
  if (err < 0) err = -err;
  if (err == 0) return 0;
  // An if chain, not a switch: ENOTSUP and EOPNOTSUPP are the same value on Linux.
  if (err == EPERM || err == EACCES || err == EROFS) return kEperm;
  if (err == EIO) return kEio;
  if (err == ENOMEM) return kEnomem;
  if (err == EINVAL || err == ERANGE) return kEinval;
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) return kEnospc;
  if (err == EOVERFLOW) return kEoverflow;
  if (err == ENOTSUP || err == EOPNOTSUPP) return kEnotsup;
  if (err == ESHUTDOWN) return kEshutdown;
  return kEio;
}

std::string_view command_name(std::uint16_t type) {
  switch (type) {
    case kCmdRead: return "NBD_CMD_READ";
    case kCmdWrite: return "NBD_CMD_WRITE";
    case kCmdDisc: return "NBD_CMD_DISC";
    case kCmdFlush: return "NBD_CMD_FLUSH";
    case kCmdTrim: return "NBD_CMD_TRIM";
    case kCmdCache: return "NBD_CMD_CACHE";
    case kCmdWriteZeroes: return "NBD_CMD_WRITE_ZEROES";
    case kCmdBlockStatus: return "NBD_CMD_BLOCK_STATUS";
    case kCmdResize: return "NBD_CMD_RESIZE";
  }
  return "unknown";
}

std::string_view option_name(std::uint32_t option) {
  switch (option) {
    case kOptExportName: return "NBD_OPT_EXPORT_NAME";
    case kOptAbort: return "NBD_OPT_ABORT";
    case kOptList: return "NBD_OPT_LIST";
    case kOptPeekExport: return "NBD_OPT_PEEK_EXPORT";
    case kOptStartTls: return "NBD_OPT_STARTTLS";
    case kOptInfo: return "NBD_OPT_INFO";
    case kOptGo: return "NBD_OPT_GO";
    case kOptStructuredReply: return "NBD_OPT_STRUCTURED_REPLY";
    case kOptListMetaContext: return "NBD_OPT_LIST_META_CONTEXT";
    case kOptSetMetaContext: return "NBD_OPT_SET_META_CONTEXT";
    case kOptExtendedHeaders: return "NBD_OPT_EXTENDED_HEADERS";
  }
  return "unknown";
}

std::string_view reply_type_name(std::uint32_t reply_type) {
  switch (reply_type) {
    case kRepAck: return "NBD_REP_ACK";
    case kRepServer: return "NBD_REP_SERVER";
    case kRepInfo: return "NBD_REP_INFO";
    case kRepMetaContext: return "NBD_REP_META_CONTEXT";
    case kRepErrUnsup: return "NBD_REP_ERR_UNSUP";
    case kRepErrPolicy: return "NBD_REP_ERR_POLICY";
    case kRepErrInvalid: return "NBD_REP_ERR_INVALID";
    case kRepErrPlatform: return "NBD_REP_ERR_PLATFORM";
    case kRepErrTlsReqd: return "NBD_REP_ERR_TLS_REQD";
    case kRepErrUnknown: return "NBD_REP_ERR_UNKNOWN";
    case kRepErrShutdown: return "NBD_REP_ERR_SHUTDOWN";
    case kRepErrBlockSizeReqd: return "NBD_REP_ERR_BLOCK_SIZE_REQD";
    case kRepErrTooBig: return "NBD_REP_ERR_TOO_BIG";
    case kRepErrExtHeaderReqd: return "NBD_REP_ERR_EXT_HEADER_REQD";
  }
  return "unknown";
}

std::string_view error_name(std::uint32_t error) {
  switch (error) {
    case 0: return "success";
    case kEperm: return "NBD_EPERM";
    case kEio: return "NBD_EIO";
    case kEnomem: return "NBD_ENOMEM";
    case kEinval: return "NBD_EINVAL";
    case kEnospc: return "NBD_ENOSPC";
    case kEoverflow: return "NBD_EOVERFLOW";
    case kEnotsup: return "NBD_ENOTSUP";
    case kEshutdown: return "NBD_ESHUTDOWN";
  }
  return "unknown";
}

}  // namespace nyads::nbd
