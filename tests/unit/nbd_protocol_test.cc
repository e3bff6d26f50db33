// The NBD wire codec against hand-written bytes from proto.md: golden encodings, every
// prefix of every message, and each framing or payload rule broken once.
#include "fs/nbd/protocol.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

namespace nyads::nbd {
namespace {

using Bytes = std::vector<std::uint8_t>;

// "4e42 444d" -> {0x4e, 0x42, 0x44, 0x4d}: golden bytes as the spec writes them.
Bytes hex(std::string_view s) {
  Bytes out;
  int hi = -1;
  for (char c : s) {
    if (c == ' ' || c == '\n') continue;
    const int v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>((hi << 4) | v));
      hi = -1;
    }
  }
  EXPECT_EQ(hi, -1) << "odd number of hex digits";
  return out;
}

template <typename C>
Bytes vec(const C& c) {
  return Bytes(c.begin(), c.end());
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes str(std::string_view s) { return Bytes(s.begin(), s.end()); }

bool has(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// ---- Handshake ----

TEST(NbdHandshake, GreetingIsMagicsThenFlags) {
  EXPECT_EQ(encode_server_greeting(), hex("4e42444d41474943 49484156454f5054 0003"));
  EXPECT_EQ(encode_server_greeting().size(), kGreetingBytes);
  EXPECT_EQ(encode_server_greeting(kFlagFixedNewstyle), hex("4e42444d41474943 49484156454f5054 0001"));
}

TEST(NbdHandshake, ClientFlagsAcceptKnownBitsOnly) {
  for (std::uint32_t f : {0u, 1u, 2u, 3u}) {
    const std::uint8_t b[4] = {0, 0, 0, static_cast<std::uint8_t>(f)};
    auto r = parse_client_flags(b);
    ASSERT_TRUE(r.ok()) << f;
    EXPECT_EQ(*r, f);
  }
  const std::uint8_t bad[4] = {0x80, 0, 0, 0x05};
  auto r = parse_client_flags(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(has(r.status().message(), "client flags 0x80000005 set unknown bits 0x80000004")) << r.status().message();
}

// ---- Options ----

TEST(NbdOption, EveryPrefixNeedsMoreThenTheWholeOptionParses) {
  const Bytes go = hex("0000 0003 6f6e65 0001 0003");  // name "one", one info request: BLOCK_SIZE
  const Bytes wire = cat({hex("49484156454f5054 00000007 0000000b"), go, hex("ff")});  // a byte of the next message
  for (std::size_t n = 0; n < kOptionHeaderBytes + go.size(); ++n) {
    auto p = parse_option(std::span(wire).first(n), kDefaultMaxOptionLength);
    ASSERT_EQ(p.state, ParseState::kNeedMore) << n;
    EXPECT_EQ(p.consumed, 0u) << n;
    EXPECT_EQ(p.need, n < kOptionHeaderBytes ? kOptionHeaderBytes : kOptionHeaderBytes + go.size()) << n;
  }
  auto p = parse_option(wire, kDefaultMaxOptionLength);
  ASSERT_EQ(p.state, ParseState::kComplete) << p.error;
  EXPECT_EQ(p.consumed, 27u);
  EXPECT_EQ(p.option.option, kOptGo);
  EXPECT_EQ(vec(p.option.data), go);
  EXPECT_EQ(p.option.data.data(), wire.data() + kOptionHeaderBytes);  // a view, not a copy
}

TEST(NbdOption, ParsesBackToBackOptionsAndUnknownOnes) {
  const Bytes wire = cat({vec(encode_option_header(kOptStructuredReply, 0)), vec(encode_option_header(0xdead, 2)),
                          hex("abcd"), vec(encode_option_header(kOptAbort, 0))});
  std::span<const std::uint8_t> in(wire);
  std::vector<std::uint32_t> seen;
  while (!in.empty()) {
    auto p = parse_option(in, 64);
    ASSERT_EQ(p.state, ParseState::kComplete) << p.error;
    seen.push_back(p.option.option);
    in = in.subspan(p.consumed);
  }
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{kOptStructuredReply, 0xdead, kOptAbort}));
}

TEST(NbdOption, BadMagicIsRefusedAsSoonAsItIsThere) {
  const Bytes wire = hex("49484156454f5055 00000001 00000000");
  for (std::size_t n = 0; n < 8; ++n)
    EXPECT_EQ(parse_option(std::span(wire).first(n), 64).state, ParseState::kNeedMore) << n;
  for (std::size_t n = 8; n <= wire.size(); ++n) {
    auto p = parse_option(std::span(wire).first(n), 64);
    ASSERT_EQ(p.state, ParseState::kBad) << n;
    EXPECT_EQ(p.consumed, 0u);
    EXPECT_EQ(p.error, "option header: bad magic 0x49484156454f5055 (expected IHAVEOPT 0x49484156454f5054)");
  }
}

TEST(NbdOption, LengthBeyondTheLimitIsRefused) {
  auto at_limit = parse_option(vec(encode_option_header(kOptGo, 100)), 100);
  EXPECT_EQ(at_limit.state, ParseState::kNeedMore);
  EXPECT_EQ(at_limit.need, 116u);
  auto p = parse_option(vec(encode_option_header(kOptGo, 101)), 100);
  ASSERT_EQ(p.state, ParseState::kBad);
  EXPECT_EQ(p.error, "option NBD_OPT_GO (7): length 101 exceeds the limit of 100 bytes");
  auto huge = parse_option(vec(encode_option_header(0x12345, 0xffffffff)), kDefaultMaxOptionLength);
  ASSERT_EQ(huge.state, ParseState::kBad);
  EXPECT_TRUE(has(huge.error, "option unknown (74565): length 4294967295 exceeds")) << huge.error;
}

TEST(NbdOption, ExportNameIsTheWholeData) {
  EXPECT_EQ(*parse_export_name(str("disk0")), "disk0");
  EXPECT_EQ(*parse_export_name({}), "");  // the default export
  EXPECT_TRUE(parse_export_name(Bytes(4096, 'a')).ok());
  auto long_name = parse_export_name(Bytes(4097, 'a'));
  ASSERT_FALSE(long_name.ok());
  EXPECT_EQ(long_name.status().message(), "export name is 4097 bytes, the limit is 4096");
  auto nul = parse_export_name(hex("61 00 62"));
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.status().message(), "export name has a NUL byte at offset 1");
}

TEST(NbdOption, GoRequestParses) {
  auto g = parse_go(hex("00000005 6469736b30 0002 0003 0001"));
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_EQ(g->name, "disk0");
  EXPECT_EQ(g->info_requests, (std::vector<std::uint16_t>{kInfoBlockSize, kInfoName}));
  auto empty = parse_go(hex("00000000 0000"));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->name, "");
  EXPECT_TRUE(empty->info_requests.empty());
  Bytes longest = cat({hex("00001000"), Bytes(4096, 'n'), hex("0000")});
  EXPECT_TRUE(parse_go(longest).ok());
}

TEST(NbdOption, GoRequestLengthsMustAddUp) {
  struct Case {
    const char* wire;
    const char* error;
  };
  const Case cases[] = {
      {"",
       "NBD_OPT_INFO/NBD_OPT_GO data is 0 bytes, too short for the name length and the information request count (6 "
       "bytes)"},
      {"00000000 00",
       "NBD_OPT_INFO/NBD_OPT_GO data is 5 bytes, too short for the name length and the information request count (6 "
       "bytes)"},
      {"00000004 616263 0000",
       "NBD_OPT_INFO/NBD_OPT_GO data: export name length 4 does not fit in 9 bytes of data (at most 3)"},
      {"ffffffff 0000", "NBD_OPT_INFO/NBD_OPT_GO data: export name length 4294967295 exceeds the limit of 4096 bytes"},
      {"00001001 0000", "NBD_OPT_INFO/NBD_OPT_GO data: export name length 4097 exceeds the limit of 4096 bytes"},
      {"00000001 61 0002 0000",
       "NBD_OPT_INFO/NBD_OPT_GO data: 2 information requests need 4 bytes after the count, but 2 follow"},
      {"00000001 61 ffff",
       "NBD_OPT_INFO/NBD_OPT_GO data: 65535 information requests need 131070 bytes after the count, but 0 follow"},
      {"00000001 61 0001 0000 00",
       "NBD_OPT_INFO/NBD_OPT_GO data: 1 information requests need 2 bytes after the count, but 3 follow"},
      {"00000000 0000 00",
       "NBD_OPT_INFO/NBD_OPT_GO data: 0 information requests need 0 bytes after the count, but 1 follow"},
      {"00000002 6100 0000", "NBD_OPT_INFO/NBD_OPT_GO data: export name has a NUL byte at offset 1"},
  };
  for (const Case& c : cases) {
    auto g = parse_go(hex(c.wire));
    ASSERT_FALSE(g.ok()) << c.wire;
    EXPECT_EQ(g.status().code(), Code::kInvalidArgument) << c.wire;
    EXPECT_EQ(g.status().message(), c.error) << c.wire;
  }
}

TEST(NbdOption, MetaContextRequestParses) {
  auto m = parse_meta_context(
      hex("00000005 6469736b30 00000002 0000000f 626173653a616c6c6f636174696f6e 00000005 626173653a"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->export_name, "disk0");
  EXPECT_EQ(m->queries, (std::vector<std::string>{"base:allocation", "base:"}));
  auto none = parse_meta_context(hex("00000000 00000000"));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->export_name, "");
  EXPECT_TRUE(none->queries.empty());
  auto empty_query = parse_meta_context(hex("00000000 00000001 00000000"));
  ASSERT_TRUE(empty_query.ok());
  EXPECT_EQ(empty_query->queries, (std::vector<std::string>{""}));
}

TEST(NbdOption, MetaContextLengthsMustAddUp) {
  struct Case {
    const char* wire;
    const char* error;
  };
  const Case cases[] = {
      {"000000", "meta context request is 3 bytes, too short for the name length and the query count (8 bytes)"},
      {"00000001 61 000000", "meta context request: export name length 1 does not fit in 8 bytes of data (at most 0)"},
      {"00002000 00000000", "meta context request: export name length 8192 exceeds the limit of 4096 bytes"},
      {"00000000 ffffffff",
       "meta context request: 4294967295 queries need at least 17179869180 bytes, but 0 follow the count"},
      {"00000000 00000002 00000001 61",
       "meta context request: 2 queries need at least 8 bytes, but 5 follow the count"},
      {"00000000 00000002 00000001 61 000000", "meta context request: query 1: 3 bytes left, too few for its length"},
      {"00000000 00000001 00000005 61", "meta context request: query 0: length 5 exceeds the 1 bytes left"},
      {"00000000 00000001 00001001 61", "meta context request: query 0: length 4097 exceeds the limit of 4096 bytes"},
      {"00000000 00000001 00000001 61 00", "meta context request: 1 bytes follow the last query"},
      {"00000000 00000001 00000002 6100", "meta context request: query 0 has a NUL byte at offset 1"},
      {"00000001 00 00000000", "meta context request: export name has a NUL byte at offset 0"},
  };
  for (const Case& c : cases) {
    auto m = parse_meta_context(hex(c.wire));
    ASSERT_FALSE(m.ok()) << c.wire;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << c.wire;
    EXPECT_EQ(m.status().message(), c.error) << c.wire;
  }
}

// ---- Option replies ----

TEST(NbdOptionReply, GoldenBytes) {
  EXPECT_EQ(encode_option_reply(kOptGo, kRepAck), hex("0003e889045565a9 00000007 00000001 00000000"));
  EXPECT_EQ(encode_option_reply(kOptGo, kRepAck, hex("abcd")), hex("0003e889045565a9 00000007 00000001 00000002 abcd"));
  EXPECT_EQ(encode_option_error(kOptList, kRepErrPolicy, "no"),
            hex("0003e889045565a9 00000003 80000002 00000002 6e6f"));
  EXPECT_EQ(encode_option_error(99, kRepErrUnsup, ""), hex("0003e889045565a9 00000063 80000001 00000000"));
  EXPECT_EQ(encode_rep_server(kOptList, "ab", "cd"),
            hex("0003e889045565a9 00000003 00000002 00000008 00000002 6162 6364"));
  EXPECT_EQ(encode_rep_server(kOptList, ""), hex("0003e889045565a9 00000003 00000002 00000004 00000000"));
  EXPECT_EQ(encode_info_export(kOptInfo, 0x123456789a, kFlagHasFlags | kFlagSendFlush | kFlagSendFua),
            hex("0003e889045565a9 00000006 00000003 0000000c 0000 000000123456789a 000d"));
  EXPECT_EQ(encode_info_name(kOptGo, "n"), hex("0003e889045565a9 00000007 00000003 00000003 0001 6e"));
  EXPECT_EQ(encode_info_description(kOptGo, "d"), hex("0003e889045565a9 00000007 00000003 00000003 0002 64"));
  EXPECT_EQ(encode_info_block_size(kOptGo, 512, 4096, 1 << 25),
            hex("0003e889045565a9 00000007 00000003 0000000e 0003 00000200 00001000 02000000"));
  EXPECT_EQ(encode_meta_context(kOptSetMetaContext, 1, "base:allocation"),
            hex("0003e889045565a9 0000000a 00000004 00000013 00000001 626173653a616c6c6f636174696f6e"));
}

TEST(NbdOptionReply, ExportNameReplyHasZeroesUnlessRefused) {
  EXPECT_EQ(encode_export_name_reply(1 << 30, kFlagHasFlags, true), hex("0000000040000000 0001"));
  const Bytes with = encode_export_name_reply(1 << 30, kFlagHasFlags, false);
  EXPECT_EQ(with, cat({hex("0000000040000000 0001"), Bytes(124, 0)}));
}

TEST(NbdOptionReply, LongStringsAreCutAt4096BytesOnACharacterBoundary) {
  const std::string ascii(5000, 'x');
  EXPECT_EQ(encode_option_error(kOptGo, kRepErrInvalid, ascii).size(), kOptionReplyHeaderBytes + 4096);
  // 4095 ASCII bytes then a 2-byte character: the character would straddle the limit.
  const std::string utf8 = std::string(4095, 'x') + "\xc3\xa9" + "tail";
  const Bytes e = encode_option_error(kOptGo, kRepErrInvalid, utf8);
  ASSERT_EQ(e.size(), kOptionReplyHeaderBytes + 4095);
  EXPECT_EQ(e[16], 0x00);
  EXPECT_EQ(e[18], 0x0f);
  EXPECT_EQ(e[19], 0xff);
  EXPECT_EQ(encode_rep_server(kOptList, ascii, ascii).size(), kOptionReplyHeaderBytes + 4 + 4096 + 4096);
}

// ---- Requests ----

Bytes request(std::uint16_t flags, std::uint16_t type, std::uint64_t cookie, std::uint64_t offset,
              std::uint32_t length) {
  return vec(encode_request_header(Request{flags, type, cookie, offset, length, {}}));
}

TEST(NbdRequest, HeaderGoldenBytes) {
  EXPECT_EQ(request(kCmdFlagFua, kCmdWrite, 0x0102030405060708, 0x1000, 0x200),
            hex("25609513 0001 0001 0102030405060708 0000000000001000 00000200"));
}

TEST(NbdRequest, EveryCommandParsesAfterEveryPrefixNeedsMore) {
  for (std::uint16_t type = kCmdRead; type <= kCmdResize; ++type) {
    const std::uint32_t length = 8;
    Bytes wire = request(0, type, 0xc00c1e + type, 4096 * type, length);
    const std::size_t payload = type == kCmdWrite ? length : 0;
    for (std::size_t i = 0; i < payload; ++i) wire.push_back(static_cast<std::uint8_t>(0xa0 + i));
    const std::size_t total = wire.size();
    wire.push_back(0x25);  // the first byte of the next request
    for (std::size_t n = 0; n < total; ++n) {
      auto r = parse_request(std::span(wire).first(n), kDefaultMaxPayload);
      ASSERT_EQ(r.state, ParseState::kNeedMore) << command_name(type) << " " << n;
      EXPECT_EQ(r.consumed, 0u);
      EXPECT_EQ(r.need, n < kRequestHeaderBytes ? kRequestHeaderBytes : total) << command_name(type) << " " << n;
    }
    auto r = parse_request(wire, kDefaultMaxPayload);
    ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
    EXPECT_EQ(r.consumed, total) << command_name(type);
    EXPECT_EQ(r.request.type, type);
    EXPECT_EQ(r.request.flags, 0);
    EXPECT_EQ(r.request.cookie, 0xc00c1eu + type);
    EXPECT_EQ(r.request.offset, 4096u * type);
    EXPECT_EQ(r.request.length, length);
    ASSERT_EQ(r.request.payload.size(), payload);
    if (payload != 0) {
      EXPECT_EQ(r.request.payload[0], 0xa0);
      EXPECT_EQ(r.request.payload.data(), wire.data() + kRequestHeaderBytes);
    }
    EXPECT_EQ(vec(encode_request_header(r.request)), Bytes(wire.begin(), wire.begin() + kRequestHeaderBytes));
  }
}

TEST(NbdRequest, UnknownCommandsAndFlagsParseForTheServerToRefuse) {
  auto r = parse_request(request(0xffff, 42, 7, 1, 1 << 30), 4096);
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_EQ(r.consumed, kRequestHeaderBytes);  // no payload: the length is not data
  EXPECT_EQ(r.request.type, 42);
  EXPECT_EQ(r.request.flags, 0xffff);
  EXPECT_EQ(command_name(42), "unknown");
  // A huge effect length on a command without payload is not a framing problem either.
  auto z = parse_request(request(0, kCmdWriteZeroes, 1, 0, 0xffffffff), 4096);
  EXPECT_EQ(z.state, ParseState::kComplete);
  EXPECT_EQ(z.consumed, kRequestHeaderBytes);
}

TEST(NbdRequest, WriteLongerThanTheMaximumPayloadIsRefused) {
  const Bytes at_limit = request(0, kCmdWrite, 1, 0, 4096);
  auto ok = parse_request(at_limit, 4096);
  EXPECT_EQ(ok.state, ParseState::kNeedMore);
  EXPECT_EQ(ok.need, kRequestHeaderBytes + 4096);
  const Bytes over = request(0, kCmdWrite, 1, 0, 4097);
  for (std::size_t n = 0; n < kRequestHeaderBytes; ++n)
    EXPECT_EQ(parse_request(std::span(over).first(n), 4096).state, ParseState::kNeedMore);
  auto r = parse_request(request(0, kCmdWrite, 1, 8192, 4097), 4096);
  ASSERT_EQ(r.state, ParseState::kBad);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(r.error,
            "request NBD_CMD_WRITE (1) of 4097 bytes at offset 8192 exceeds the maximum payload of 4096 bytes");
}

TEST(NbdRequest, BadMagicIsRefused) {
  Bytes wire = request(0, kCmdRead, 1, 0, 512);
  wire[3] ^= 1;
  for (std::size_t n = 0; n < 4; ++n)
    EXPECT_EQ(parse_request(std::span(wire).first(n), 4096).state, ParseState::kNeedMore);
  auto r = parse_request(std::span(wire).first(4), 4096);
  ASSERT_EQ(r.state, ParseState::kBad);
  EXPECT_EQ(r.error, "request header: bad magic 0x25609512 (expected 0x25609513)");
  wire[0] = 0x21, wire[1] = 0xe4, wire[2] = 0x1c, wire[3] = 0x71;
  auto ext = parse_request(wire, 4096);
  ASSERT_EQ(ext.state, ParseState::kBad);
  EXPECT_EQ(ext.error, "request header: extended request magic 0x21e41c71, but extended headers were not negotiated");
}

TEST(NbdRequest, AStreamOfRequestsParsesOneByOne) {
  const Bytes wire = cat({request(0, kCmdWrite, 1, 0, 3), hex("010203"), request(0, kCmdFlush, 2, 0, 0),
                          request(kCmdFlagFua, kCmdWrite, 3, 512, 0), request(0, kCmdDisc, 4, 0, 0)});
  std::span<const std::uint8_t> in(wire);
  std::vector<std::uint64_t> cookies;
  while (!in.empty()) {
    auto r = parse_request(in, 16);
    ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
    cookies.push_back(r.request.cookie);
    in = in.subspan(r.consumed);
  }
  EXPECT_EQ(cookies, (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

// ---- Replies ----

TEST(NbdReply, GoldenBytes) {
  EXPECT_EQ(vec(encode_simple_reply(0x0102030405060708, 0)), hex("67446698 00000000 0102030405060708"));
  EXPECT_EQ(vec(encode_simple_reply(9, kEio)), hex("67446698 00000005 0000000000000009"));
  EXPECT_EQ(vec(encode_chunk_header(kReplyFlagDone, kReplyTypeOffsetData, 9, 0x1008)),
            hex("668e33ef 0001 0001 0000000000000009 00001008"));
  EXPECT_EQ(vec(encode_none_chunk(9)), hex("668e33ef 0001 0000 0000000000000009 00000000"));
  EXPECT_EQ(vec(encode_offset_data_header(0, 9, 0x200, 0x1000)),
            hex("668e33ef 0000 0001 0000000000000009 00001008 0000000000000200"));
  EXPECT_EQ(vec(encode_offset_hole_chunk(kReplyFlagDone, 9, 0x200, 0x1000)),
            hex("668e33ef 0001 0002 0000000000000009 0000000c 0000000000000200 00001000"));
  EXPECT_EQ(encode_error_chunk(kReplyFlagDone, 9, kEinval, "bad"),
            hex("668e33ef 0001 8001 0000000000000009 00000009 00000016 0003 626164"));
  EXPECT_EQ(encode_error_chunk(kReplyFlagDone, 9, kEio, ""),
            hex("668e33ef 0001 8001 0000000000000009 00000006 00000005 0000"));
  EXPECT_EQ(encode_error_offset_chunk(0, 9, kEio, "x", 0x400),
            hex("668e33ef 0000 8002 0000000000000009 0000000f 00000005 0001 78 0000000000000400"));
  const BlockStatusExtent extents[] = {{4096, 0}, {8192, kStateHole | kStateZero}};
  EXPECT_EQ(encode_block_status_chunk(kReplyFlagDone, 9, 1, extents),
            hex("668e33ef 0001 0005 0000000000000009 00000014 00000001 00001000 00000000 00002000 00000003"));
  const std::string long_message(5000, 'm');
  const Bytes e = encode_error_chunk(0, 9, kEio, long_message);
  EXPECT_EQ(e.size(), kChunkHeaderBytes + 6 + 4096);
  EXPECT_EQ(e[24], 0x10);  // message length 4096
  EXPECT_EQ(e[25], 0x00);
}

// ---- The client's side ----

TEST(NbdClient, OptionEncodersRoundTripThroughTheParsers) {
  EXPECT_EQ(vec(encode_client_flags(kFlagCFixedNewstyle | kFlagCNoZeroes)), hex("00000003"));
  EXPECT_EQ(encode_option(kOptExportName, str("ab")), hex("49484156454f5054 00000001 00000002 6162"));
  const std::uint16_t infos[] = {kInfoBlockSize};
  const Bytes go = encode_go_option(kOptGo, "disk0", infos);
  EXPECT_EQ(go, hex("49484156454f5054 00000007 0000000d 00000005 6469736b30 0001 0003"));
  auto op = parse_option(go, kDefaultMaxOptionLength);
  ASSERT_EQ(op.state, ParseState::kComplete);
  auto g = parse_go(op.option.data);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->name, "disk0");
  EXPECT_EQ(g->info_requests, (std::vector<std::uint16_t>{kInfoBlockSize}));
  const std::string queries[] = {"base:allocation", "qemu:dirty-bitmap:a"};
  const Bytes meta = encode_meta_context_option(kOptSetMetaContext, "disk0", queries);
  auto mp = parse_option(meta, kDefaultMaxOptionLength);
  ASSERT_EQ(mp.state, ParseState::kComplete);
  EXPECT_EQ(mp.option.option, kOptSetMetaContext);
  auto m = parse_meta_context(mp.option.data);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->export_name, "disk0");
  EXPECT_EQ(m->queries, (std::vector<std::string>(std::begin(queries), std::end(queries))));
  // The client side encodes what the server must refuse, so tests can send it.
  auto too_long =
      parse_go(parse_option(encode_go_option(kOptGo, std::string(5000, 'x')), kDefaultMaxOptionLength).option.data);
  EXPECT_FALSE(too_long.ok());
}

// ---- Errors and names ----

TEST(NbdErrors, ErrnoMapsToTheNbdSet) {
  EXPECT_EQ(errno_to_nbd(0), 0u);
  EXPECT_EQ(errno_to_nbd(EPERM), kEperm);
  EXPECT_EQ(errno_to_nbd(EACCES), kEperm);
  EXPECT_EQ(errno_to_nbd(EROFS), kEperm);
  EXPECT_EQ(errno_to_nbd(EIO), kEio);
  EXPECT_EQ(errno_to_nbd(-EIO), kEio);  // io_uring's negative results
  EXPECT_EQ(errno_to_nbd(ENOMEM), kEnomem);
  EXPECT_EQ(errno_to_nbd(EINVAL), kEinval);
  EXPECT_EQ(errno_to_nbd(ERANGE), kEinval);
  EXPECT_EQ(errno_to_nbd(ENOSPC), kEnospc);
  EXPECT_EQ(errno_to_nbd(EDQUOT), kEnospc);
  EXPECT_EQ(errno_to_nbd(EFBIG), kEnospc);
  EXPECT_EQ(errno_to_nbd(EOVERFLOW), kEoverflow);
  EXPECT_EQ(errno_to_nbd(ENOTSUP), kEnotsup);
  EXPECT_EQ(errno_to_nbd(EOPNOTSUPP), kEnotsup);
  EXPECT_EQ(errno_to_nbd(ESHUTDOWN), kEshutdown);
  EXPECT_EQ(errno_to_nbd(EBUSY), kEio);
  EXPECT_EQ(errno_to_nbd(ETOOMANYREFS), kEio);
  EXPECT_EQ(errno_to_nbd(12345), kEio);
}

TEST(NbdErrors, NamesAreTheSpecs) {
  EXPECT_EQ(command_name(kCmdBlockStatus), "NBD_CMD_BLOCK_STATUS");
  EXPECT_EQ(command_name(kCmdWriteZeroes), "NBD_CMD_WRITE_ZEROES");
  EXPECT_EQ(option_name(kOptSetMetaContext), "NBD_OPT_SET_META_CONTEXT");
  EXPECT_EQ(option_name(kOptExportName), "NBD_OPT_EXPORT_NAME");
  EXPECT_EQ(option_name(0), "unknown");
  EXPECT_EQ(reply_type_name(kRepErrTooBig), "NBD_REP_ERR_TOO_BIG");
  EXPECT_EQ(reply_type_name(kRepAck), "NBD_REP_ACK");
  EXPECT_EQ(error_name(kEshutdown), "NBD_ESHUTDOWN");
  EXPECT_EQ(error_name(7), "unknown");
  static_assert(kRepErrUnsup == 0x80000001u && kRepErrUnknown == 0x80000006u && kRepErrTooBig == 0x80000009u);
  static_assert(kReplyTypeError == 0x8001 && kReplyTypeErrorOffset == 0x8002);
  static_assert(kFlagSendFastZero == 0x800 && kFlagCanMultiConn == 0x100);
}

}  // namespace
}  // namespace nyads::nbd
