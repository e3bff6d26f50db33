// Fuzzes the NBD wire codec (fs/nbd/protocol.h) as a server meets it: a client's byte stream.
//
// Input: one byte choosing the limits (bit 0: a 64-byte option limit, bit 1: a 512-byte
// payload limit, so both refusals are reached), four bytes of client flags, then options
// and requests in any mix. Each position is parsed as an option, else as a request, else
// skipped to the next byte that could start a magic; every option's data also goes to each
// payload parser. Whatever parses must encode back to the bytes it came from, and every
// parse keeps the stream rules (check_stream); anything else aborts, which libFuzzer reports.
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "fs/nbd/protocol.h"

using namespace nyads::nbd;

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool same(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// The rules every stream parse keeps, whatever the bytes: `header` is the message's fixed
// size, `payload` what follows it once complete, `parse` the same parse on other bytes.
template <typename Parse, typename ParseResult>
void check_stream(std::span<const std::uint8_t> in, const ParseResult& r, std::size_t header, std::size_t payload,
                  Parse parse) {
  require(r.consumed <= in.size());
  switch (r.state) {
    case ParseState::kNeedMore:
      require(r.consumed == 0 && r.error.empty() && r.need > in.size() && r.need >= header);
      break;
    case ParseState::kBad: require(r.consumed == 0 && !r.error.empty()); break;
    case ParseState::kComplete: {
      require(r.consumed == header + payload && r.error.empty());
      // One byte less is not enough, and says exactly how much is.
      const auto shorter = parse(in.first(r.consumed - 1));
      require(shorter.state == ParseState::kNeedMore);
      require(shorter.need == (r.consumed - 1 < header ? header : r.consumed));
      break;
    }
  }
}

// The data of an encoded option: what follows its header.
std::span<const std::uint8_t> option_data(const std::vector<std::uint8_t>& option) {
  return std::span(option).subspan(kOptionHeaderBytes);
}

void check_payload_parsers(const Option& o) {
  if (auto g = parse_go(o.data); g.ok()) {
    require(g->name.size() <= kMaxStringBytes);
    require(same(option_data(encode_go_option(o.option, g->name, g->info_requests)), o.data));
    (void)encode_info_name(o.option, g->name);
  } else {
    require(!g.status().message().empty());
    (void)encode_option_error(o.option, kRepErrInvalid, g.status().message());
  }
  if (auto m = parse_meta_context(o.data); m.ok()) {
    require(same(option_data(encode_meta_context_option(o.option, m->export_name, m->queries)), o.data));
    for (std::uint32_t id = 0; id < m->queries.size(); ++id) {
      const auto reply = encode_meta_context(o.option, id, m->queries[id]);
      require(reply.size() == kOptionReplyHeaderBytes + 4 + m->queries[id].size());
    }
  } else {
    require(!m.status().message().empty());
  }
  if (auto n = parse_export_name(o.data); n.ok()) {
    require(same(std::span(reinterpret_cast<const std::uint8_t*>(n->data()), n->size()), o.data));
    const auto server = encode_rep_server(o.option, *n);
    require(server.size() == kOptionReplyHeaderBytes + 4 + n->size());
  }
}

bool could_start_message(std::uint8_t b) {
  return b == static_cast<std::uint8_t>(kIHaveOpt >> 56) || b == static_cast<std::uint8_t>(kRequestMagic >> 24) ||
         b == static_cast<std::uint8_t>(kExtendedRequestMagic >> 24);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint32_t max_option = (data[0] & 1) != 0 ? 64 : kDefaultMaxOptionLength;
  const std::uint32_t max_payload = (data[0] & 2) != 0 ? 512 : kDefaultMaxPayload;
  std::span<const std::uint8_t> in(data + 1, size - 1);
  if (in.size() >= 4) {
    const std::uint32_t raw =
        (std::uint32_t{in[0]} << 24) | (std::uint32_t{in[1]} << 16) | (std::uint32_t{in[2]} << 8) | in[3];
    auto flags = parse_client_flags(in.first<4>());
    require(flags.ok() == ((raw & ~(kFlagCFixedNewstyle | kFlagCNoZeroes)) == 0));
    require(!flags.ok() || *flags == raw);
    require(same(encode_client_flags(raw), in.first(4)));
    if (flags.ok())
      require(encode_export_name_reply(raw, kFlagHasFlags, (raw & kFlagCNoZeroes) != 0).size() ==
              ((raw & kFlagCNoZeroes) != 0 ? 10 : 134));
    in = in.subspan(4);
  }
  while (!in.empty()) {
    const auto option = parse_option(in, max_option);
    check_stream(in, option, kOptionHeaderBytes, option.option.data.size(),
                 [&](std::span<const std::uint8_t> b) { return parse_option(b, max_option); });
    if (option.state == ParseState::kComplete) {
      require(option.option.data.data() == in.data() + kOptionHeaderBytes);
      require(option.option.data.size() <= max_option);
      require(same(encode_option_header(option.option.option, static_cast<std::uint32_t>(option.option.data.size())),
                   in.first(kOptionHeaderBytes)));
      check_payload_parsers(option.option);
      in = in.subspan(option.consumed);
      continue;
    }
    const auto request = parse_request(in, max_payload);
    const Request& q = request.request;
    check_stream(in, request, kRequestHeaderBytes, q.payload.size(),
                 [&](std::span<const std::uint8_t> b) { return parse_request(b, max_payload); });
    if (request.state == ParseState::kComplete) {
      require(same(encode_request_header(q), in.first(kRequestHeaderBytes)));
      require(q.payload.size() == (q.type == kCmdWrite ? q.length : 0));
      require(q.payload.size() <= max_payload);
      require(q.payload.empty() || q.payload.data() == in.data() + kRequestHeaderBytes);
      // What a server says back: every reply and chunk carries the cookie at bytes 8..15,
      // just where the request has it.
      auto echoes_cookie = [&](std::span<const std::uint8_t> reply) {
        require(same(reply.subspan(8, 8), in.subspan(8, 8)));
      };
      echoes_cookie(encode_simple_reply(q.cookie, errno_to_nbd(static_cast<int>(q.length & 0xff))));
      echoes_cookie(encode_none_chunk(q.cookie));
      echoes_cookie(encode_error_chunk(kReplyFlagDone, q.cookie, kEinval, command_name(q.type)));
      echoes_cookie(encode_error_offset_chunk(0, q.cookie, kEio, request.error, q.offset));
      if (q.length != 0) {
        if (q.length <= 0xffffffffu - 8) echoes_cookie(encode_offset_data_header(0, q.cookie, q.offset, q.length));
        echoes_cookie(encode_offset_hole_chunk(0, q.cookie, q.offset, q.length));
        const BlockStatusExtent extents[] = {{q.length, kStateHole}, {q.length, q.flags}};
        const auto status =
            encode_block_status_chunk(kReplyFlagDone, q.cookie, 1, std::span(extents).first(1 + (q.flags & 1)));
        require(status.size() == kChunkHeaderBytes + 4 + 8 * (1 + (q.flags & 1)));
        echoes_cookie(status);
      }
      in = in.subspan(request.consumed);
      continue;
    }
    if (request.state == ParseState::kBad) (void)encode_error_chunk(0, 0, kEio, request.error);
    // Neither parses here: go on at the next byte that could start a magic, so what follows
    // garbage is still reached, at the cost of one parse rather than one per byte.
    std::size_t next = 1;
    while (next < in.size() && !could_start_message(in[next])) ++next;
    in = in.subspan(next);
  }
  return 0;
}
