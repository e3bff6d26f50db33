// The NBD wire protocol (NetworkBlockDevice/nbd doc/proto.md), as pure encode and parse
// functions: no sockets, no I/O, no exceptions. The daemon owns the connection; this file
// only turns bytes into messages and messages into bytes.
//
// Scope: fixed newstyle handshake (the server side), simple and structured replies, the
// compact request header. Extended headers (NBD_OPT_EXTENDED_HEADERS) are not supported:
// their constants are here so the server can name and refuse them.
//
// Every integer on the wire is big-endian. Every constant is named after the spec's NBD_
// name in kCamelCase: NBD_OPT_GO is kOptGo, NBD_REP_ERR_UNSUP is kRepErrUnsup, NBD_EPERM is
// kEperm.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nyads/status.h"

namespace nyads::nbd {

// ---- Magic numbers ----
inline constexpr std::uint64_t kNbdMagic = 0x4e42444d41474943;      // "NBDMAGIC" (INIT_PASSWD)
inline constexpr std::uint64_t kIHaveOpt = 0x49484156454F5054;      // "IHAVEOPT": greeting and every option
inline constexpr std::uint64_t kRepMagic = 0x3e889045565a9;         // every option reply
inline constexpr std::uint32_t kRequestMagic = 0x25609513;          // NBD_REQUEST_MAGIC
inline constexpr std::uint32_t kExtendedRequestMagic = 0x21e41c71;  // not supported: recognized to say so
inline constexpr std::uint32_t kSimpleReplyMagic = 0x67446698;      // NBD_SIMPLE_REPLY_MAGIC
inline constexpr std::uint32_t kStructuredReplyMagic = 0x668e33ef;  // NBD_STRUCTURED_REPLY_MAGIC

// ---- Handshake flags (server, 16 bits) and client flags (32 bits) ----
inline constexpr std::uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr std::uint16_t kFlagNoZeroes = 1 << 1;
inline constexpr std::uint32_t kFlagCFixedNewstyle = 1 << 0;
inline constexpr std::uint32_t kFlagCNoZeroes = 1 << 1;

// ---- Option types ----
inline constexpr std::uint32_t kOptExportName = 1;
inline constexpr std::uint32_t kOptAbort = 2;
inline constexpr std::uint32_t kOptList = 3;
inline constexpr std::uint32_t kOptPeekExport = 4;  // withdrawn
inline constexpr std::uint32_t kOptStartTls = 5;
inline constexpr std::uint32_t kOptInfo = 6;
inline constexpr std::uint32_t kOptGo = 7;
inline constexpr std::uint32_t kOptStructuredReply = 8;
inline constexpr std::uint32_t kOptListMetaContext = 9;
inline constexpr std::uint32_t kOptSetMetaContext = 10;
inline constexpr std::uint32_t kOptExtendedHeaders = 11;

// ---- Option reply types; errors have bit 31 set ----
inline constexpr std::uint32_t kRepAck = 1;
inline constexpr std::uint32_t kRepServer = 2;
inline constexpr std::uint32_t kRepInfo = 3;
inline constexpr std::uint32_t kRepMetaContext = 4;
inline constexpr std::uint32_t kRepFlagError = 1u << 31;
inline constexpr std::uint32_t kRepErrUnsup = kRepFlagError + 1;
inline constexpr std::uint32_t kRepErrPolicy = kRepFlagError + 2;
inline constexpr std::uint32_t kRepErrInvalid = kRepFlagError + 3;
inline constexpr std::uint32_t kRepErrPlatform = kRepFlagError + 4;
inline constexpr std::uint32_t kRepErrTlsReqd = kRepFlagError + 5;
inline constexpr std::uint32_t kRepErrUnknown = kRepFlagError + 6;
inline constexpr std::uint32_t kRepErrShutdown = kRepFlagError + 7;
inline constexpr std::uint32_t kRepErrBlockSizeReqd = kRepFlagError + 8;
inline constexpr std::uint32_t kRepErrTooBig = kRepFlagError + 9;
inline constexpr std::uint32_t kRepErrExtHeaderReqd = kRepFlagError + 10;

// ---- Information types (NBD_OPT_INFO / NBD_OPT_GO) ----
inline constexpr std::uint16_t kInfoExport = 0;
inline constexpr std::uint16_t kInfoName = 1;
inline constexpr std::uint16_t kInfoDescription = 2;
inline constexpr std::uint16_t kInfoBlockSize = 3;

// ---- Transmission flags (16 bits) ----
inline constexpr std::uint16_t kFlagHasFlags = 1 << 0;  // must always be set
inline constexpr std::uint16_t kFlagReadOnly = 1 << 1;
inline constexpr std::uint16_t kFlagSendFlush = 1 << 2;
inline constexpr std::uint16_t kFlagSendFua = 1 << 3;
inline constexpr std::uint16_t kFlagRotational = 1 << 4;
inline constexpr std::uint16_t kFlagSendTrim = 1 << 5;
inline constexpr std::uint16_t kFlagSendWriteZeroes = 1 << 6;
inline constexpr std::uint16_t kFlagSendDf = 1 << 7;
inline constexpr std::uint16_t kFlagCanMultiConn = 1 << 8;
inline constexpr std::uint16_t kFlagSendResize = 1 << 9;
inline constexpr std::uint16_t kFlagSendCache = 1 << 10;
inline constexpr std::uint16_t kFlagSendFastZero = 1 << 11;
inline constexpr std::uint16_t kFlagBlockStatusPayload = 1 << 12;  // extended headers only

// ---- Commands and command flags ----
inline constexpr std::uint16_t kCmdRead = 0;
inline constexpr std::uint16_t kCmdWrite = 1;
inline constexpr std::uint16_t kCmdDisc = 2;
inline constexpr std::uint16_t kCmdFlush = 3;
inline constexpr std::uint16_t kCmdTrim = 4;
inline constexpr std::uint16_t kCmdCache = 5;
inline constexpr std::uint16_t kCmdWriteZeroes = 6;
inline constexpr std::uint16_t kCmdBlockStatus = 7;
inline constexpr std::uint16_t kCmdResize = 8;
inline constexpr std::uint16_t kCmdFlagFua = 1 << 0;
inline constexpr std::uint16_t kCmdFlagNoHole = 1 << 1;
inline constexpr std::uint16_t kCmdFlagDf = 1 << 2;
inline constexpr std::uint16_t kCmdFlagReqOne = 1 << 3;
inline constexpr std::uint16_t kCmdFlagFastZero = 1 << 4;
inline constexpr std::uint16_t kCmdFlagPayloadLen = 1 << 5;  // extended headers only

// ---- Structured replies: flags and chunk types; error chunks have bit 15 set ----
inline constexpr std::uint16_t kReplyFlagDone = 1 << 0;
inline constexpr std::uint16_t kReplyTypeNone = 0;
inline constexpr std::uint16_t kReplyTypeOffsetData = 1;
inline constexpr std::uint16_t kReplyTypeOffsetHole = 2;
inline constexpr std::uint16_t kReplyTypeBlockStatus = 5;
inline constexpr std::uint16_t kReplyTypeFlagError = 1 << 15;
inline constexpr std::uint16_t kReplyTypeError = kReplyTypeFlagError + 1;
inline constexpr std::uint16_t kReplyTypeErrorOffset = kReplyTypeFlagError + 2;

// ---- Error values (the only ones a reply may carry) ----
inline constexpr std::uint32_t kEperm = 1;
inline constexpr std::uint32_t kEio = 5;
inline constexpr std::uint32_t kEnomem = 12;
inline constexpr std::uint32_t kEinval = 22;
inline constexpr std::uint32_t kEnospc = 28;
inline constexpr std::uint32_t kEoverflow = 75;
inline constexpr std::uint32_t kEnotsup = 95;
inline constexpr std::uint32_t kEshutdown = 108;

// ---- base:allocation status flags ----
inline constexpr std::uint32_t kStateHole = 1 << 0;
inline constexpr std::uint32_t kStateZero = 1 << 1;

// ---- Sizes ----
inline constexpr std::size_t kGreetingBytes = 18;           // NBDMAGIC, IHAVEOPT, handshake flags
inline constexpr std::size_t kOptionHeaderBytes = 16;       // IHAVEOPT, option, length
inline constexpr std::size_t kOptionReplyHeaderBytes = 20;  // magic, option, type, length
inline constexpr std::size_t kRequestHeaderBytes = 28;      // magic, flags, type, cookie, offset, length
inline constexpr std::size_t kSimpleReplyBytes = 16;        // magic, error, cookie
inline constexpr std::size_t kChunkHeaderBytes = 20;        // magic, flags, type, cookie, length
inline constexpr std::size_t kExportNameZeroes = 124;       // after the NBD_OPT_EXPORT_NAME reply, unless NO_ZEROES
inline constexpr std::size_t kMaxStringBytes = 4096;        // names, queries and messages
// Any payload up to 32 MiB SHOULD NOT be considered a denial of service (proto.md, "Size
// constraints"): a reasonable max_payload for parse_request.
inline constexpr std::uint32_t kDefaultMaxPayload = 1u << 25;
// Room for a 4096-byte name and thousands of information requests or meta context queries;
// a reasonable max_option_length for parse_option.
inline constexpr std::uint32_t kDefaultMaxOptionLength = 1u << 16;

// ---- Handshake ----

// NBDMAGIC, IHAVEOPT, handshake flags: what the server sends first (18 bytes).
std::vector<std::uint8_t> encode_server_greeting(std::uint16_t handshake_flags = kFlagFixedNewstyle | kFlagNoZeroes);

// The client's 32-bit flags. Unknown bits are an error: the spec says the server MUST then
// drop the connection. Both known bits are fine, since the greeting advertises both.
Result<std::uint32_t> parse_client_flags(std::span<const std::uint8_t, 4> bytes);

// ---- Stream parsing ----
//
// `bytes` is whatever has arrived so far, starting at a message boundary. A parse either
//  - kNeedMore: `need` is the total number of bytes (from the start of `bytes`) the message
//    is known to need so far: the header size until the header is there, then header plus
//    payload. Read until you have `need` bytes and parse again; consumed is 0.
//  - kComplete: one message, `consumed` bytes long; its spans point into `bytes`.
//  - kBad: a framing violation (bad magic, a length beyond the limit). The stream cannot be
//    resynchronized: close the connection. `error` says exactly what was wrong.
enum class ParseState { kNeedMore, kComplete, kBad };

struct Option {
  std::uint32_t option = 0;
  std::span<const std::uint8_t> data;  // points into the input
};
struct OptionParse {
  ParseState state = ParseState::kNeedMore;
  std::size_t consumed = 0;
  Option option;
  std::string error;
  std::size_t need = 0;
};
// One option. A length beyond max_option_length is kBad: the spec lets the server
// disconnect a client whose option would be a denial of service. Unknown option types parse
// fine: the server replies NBD_REP_ERR_UNSUP and goes on.
OptionParse parse_option(std::span<const std::uint8_t> bytes, std::uint32_t max_option_length);

// ---- Option payloads ----
//
// Pure and validated: lengths must be consistent with the option length exactly (no short
// and no trailing bytes), every string is at most 4096 bytes and has no NUL, and counts are
// checked against the bytes present before anything is allocated. Errors are
// kInvalidArgument with a message for the client: reply NBD_REP_ERR_INVALID with it.

// NBD_OPT_EXPORT_NAME: the data is the name itself.
Result<std::string> parse_export_name(std::span<const std::uint8_t> data);

// NBD_OPT_INFO and NBD_OPT_GO: u32 name length, name, u16 count, count x u16 info types.
// The info requests are as sent (the server must ignore types it does not know).
struct GoRequest {
  std::string name;
  std::vector<std::uint16_t> info_requests;
};
Result<GoRequest> parse_go(std::span<const std::uint8_t> data);

// NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: u32 name length, name, u32 query
// count, then count x (u32 length, query). Query syntax ("namespace:leaf") is not checked
// here: the server ignores queries of unknown namespaces.
struct MetaContextRequest {
  std::string export_name;
  std::vector<std::string> queries;
};
Result<MetaContextRequest> parse_meta_context(std::span<const std::uint8_t> data);

// ---- Option replies (server -> client), each complete bytes ----
//
// Strings longer than 4096 bytes (messages, names, descriptions) are cut at 4096 bytes.

// The generic reply: magic, option, reply type, length, payload.
std::vector<std::uint8_t> encode_option_reply(std::uint32_t option, std::uint32_t reply_type,
                                              std::span<const std::uint8_t> payload = {});
// An error reply (err_type has bit 31 set) with a message for people.
std::vector<std::uint8_t> encode_option_error(std::uint32_t option, std::uint32_t err_type, std::string_view message);
// NBD_REP_SERVER (for NBD_OPT_LIST): u32 name length, name, description.
std::vector<std::uint8_t> encode_rep_server(std::uint32_t option, std::string_view export_name,
                                            std::string_view description = {});
// NBD_REP_INFO replies.
std::vector<std::uint8_t> encode_info_export(std::uint32_t option, std::uint64_t size,
                                             std::uint16_t transmission_flags);
std::vector<std::uint8_t> encode_info_name(std::uint32_t option, std::string_view name);
std::vector<std::uint8_t> encode_info_description(std::uint32_t option, std::string_view description);
std::vector<std::uint8_t> encode_info_block_size(std::uint32_t option, std::uint32_t minimum, std::uint32_t preferred,
                                                 std::uint32_t maximum);
// NBD_REP_META_CONTEXT: u32 context id, name. (For LIST_META_CONTEXT the id should be 0.)
std::vector<std::uint8_t> encode_meta_context(std::uint32_t option, std::uint32_t context_id, std::string_view name);
// The reply to NBD_OPT_EXPORT_NAME, which is not an option reply: u64 size, u16 flags, then
// 124 zero bytes unless the client set NBD_FLAG_C_NO_ZEROES.
std::vector<std::uint8_t> encode_export_name_reply(std::uint64_t size, std::uint16_t transmission_flags,
                                                   bool no_zeroes);

// ---- Transmission ----

struct Request {
  std::uint16_t flags = 0;
  std::uint16_t type = 0;
  std::uint64_t cookie = 0;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
  std::span<const std::uint8_t> payload;  // NBD_CMD_WRITE's data, pointing into the input
};
struct RequestParse {
  ParseState state = ParseState::kNeedMore;
  std::size_t consumed = 0;
  Request request;
  std::string error;
  std::size_t need = 0;
};
// One request. NBD_CMD_WRITE carries `length` payload bytes; a write longer than max_payload
// is kBad (it cannot be skipped without reading it, and the limit bounds memory). Other
// commands carry no payload. Unknown command types and flags parse fine (kComplete): the
// server replies NBD_EINVAL. Only framing errors are kBad, including the extended request
// magic, since extended headers are never negotiated.
RequestParse parse_request(std::span<const std::uint8_t> bytes, std::uint32_t max_payload);
// A simple reply; a successful NBD_CMD_READ's data follows separately.
std::array<std::uint8_t, kSimpleReplyBytes> encode_simple_reply(std::uint64_t cookie, std::uint32_t error);

// Structured reply chunks. The header of a chunk whose payload (payload_length bytes)
// follows separately:
std::array<std::uint8_t, kChunkHeaderBytes> encode_chunk_header(std::uint16_t flags, std::uint16_t type,
                                                                std::uint64_t cookie, std::uint32_t payload_length);
// NBD_REPLY_TYPE_NONE: the final chunk of a reply with nothing more to say (DONE is set).
std::array<std::uint8_t, kChunkHeaderBytes> encode_none_chunk(std::uint64_t cookie);
// NBD_REPLY_TYPE_OFFSET_DATA: the header and the offset; data_length bytes of data follow
// separately (so a read goes out without a copy). data_length must be nonzero and at most
// 2^32 - 9.
std::array<std::uint8_t, kChunkHeaderBytes + 8> encode_offset_data_header(std::uint16_t flags, std::uint64_t cookie,
                                                                          std::uint64_t offset,
                                                                          std::uint32_t data_length);
// NBD_REPLY_TYPE_OFFSET_HOLE: hole_size (nonzero) bytes at offset read as zeroes.
std::array<std::uint8_t, kChunkHeaderBytes + 12> encode_offset_hole_chunk(std::uint16_t flags, std::uint64_t cookie,
                                                                          std::uint64_t offset,
                                                                          std::uint32_t hole_size);
// NBD_REPLY_TYPE_ERROR: error (nonzero), u16 message length, message.
std::vector<std::uint8_t> encode_error_chunk(std::uint16_t flags, std::uint64_t cookie, std::uint32_t error,
                                             std::string_view message);
// NBD_REPLY_TYPE_ERROR_OFFSET: as NBD_REPLY_TYPE_ERROR, then the u64 offset of the failure.
std::vector<std::uint8_t> encode_error_offset_chunk(std::uint16_t flags, std::uint64_t cookie, std::uint32_t error,
                                                    std::string_view message, std::uint64_t offset);
// NBD_REPLY_TYPE_BLOCK_STATUS: context id, then one or more (length, flags) descriptors.
struct BlockStatusExtent {
  std::uint32_t length = 0;  // nonzero
  std::uint32_t flags = 0;   // for base:allocation, kStateHole | kStateZero
};
std::vector<std::uint8_t> encode_block_status_chunk(std::uint16_t flags, std::uint64_t cookie, std::uint32_t context_id,
                                                    std::span<const BlockStatusExtent> extents);

// ---- Errors and names ----

// The NBD error for an errno (0 stays 0; a negative value, as io_uring returns, is negated).
// The spec's own mappings: EDQUOT and EFBIG are NBD_ENOSPC. EACCES and EROFS are
// NBD_EPERM, ERANGE (an LBA beyond the device) is NBD_EINVAL. proto.md leaves every other
// case open; we answer NBD_EIO, because an errno the server did not expect is a failure of
// the server's I/O, not a malformed request (which is what NBD_EINVAL tells the client).
std::uint32_t errno_to_nbd(int err);

// The spec's names, e.g. "NBD_CMD_READ", "NBD_OPT_GO", "NBD_REP_ERR_UNSUP", "NBD_EIO";
// "unknown" for values the spec does not define. For log lines.
std::string_view command_name(std::uint16_t type);
std::string_view option_name(std::uint32_t option);
std::string_view reply_type_name(std::uint32_t reply_type);
std::string_view error_name(std::uint32_t error);

// ---- The client's side (tests, fuzz seeds, a test client) ----
//
// These encode exactly what they are given, including what a server must refuse (names
// over 4096 bytes, NULs), so tests can send it.

std::array<std::uint8_t, 4> encode_client_flags(std::uint32_t flags);
// An option header; `length` bytes of data follow separately.
std::array<std::uint8_t, kOptionHeaderBytes> encode_option_header(std::uint32_t option, std::uint32_t length);
// A complete option: header and data.
std::vector<std::uint8_t> encode_option(std::uint32_t option, std::span<const std::uint8_t> data = {});
// A complete NBD_OPT_INFO or NBD_OPT_GO (at most 65535 information requests).
std::vector<std::uint8_t> encode_go_option(std::uint32_t option, std::string_view name,
                                           std::span<const std::uint16_t> info_requests = {});
// A complete NBD_OPT_LIST_META_CONTEXT or NBD_OPT_SET_META_CONTEXT.
std::vector<std::uint8_t> encode_meta_context_option(std::uint32_t option, std::string_view export_name,
                                                     std::span<const std::string> queries);
// The 28-byte header of a request; a write's payload follows separately.
std::array<std::uint8_t, kRequestHeaderBytes> encode_request_header(const Request& request);

}  // namespace nyads::nbd
