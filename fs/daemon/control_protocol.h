// The control protocol between nyadsd and the `nyads` CLI (doc/control.md): one request line,
// one response, over a unix socket. Pure encode and parse, shared by both sides.
//
//   request:  "v1 <command> [arg...]\n"        arguments are %-escaped, space-separated
//   response: "ok\n" then records, or "error <code> <message>\n", then an empty line.
//   record:   "key=value key=value ...\n"       values %-escaped
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "nyads/status.h"

namespace nyads::control {

inline constexpr std::string_view kVersion = "v1";
inline constexpr std::size_t kMaxLineBytes = 64 << 10;

using Record = std::vector<std::pair<std::string, std::string>>;  // keys in order

struct Request {
  std::string command;
  std::vector<std::string> args;
};
struct Response {
  Status status;  // OK, or the daemon's error
  std::vector<Record> records;
  bool deferred = false;  // the daemon answers later (a ublk attach waits for the kernel)
};

// %XX for '%', spaces, '=', control bytes and non-ASCII; everything else as is.
std::string escape(std::string_view text);
Result<std::string> unescape(std::string_view text);

std::string encode_request(const Request& request);     // with the trailing newline
Result<Request> parse_request(std::string_view line);   // without the newline
std::string encode_response(const Response& response);  // every line, and the empty line
// `text` holds every line up to and including the empty line.
Result<Response> parse_response(std::string_view text);

// The Code a response names, back from its name ("not found" -> kNotFound).
Code code_from_name(std::string_view name);

}  // namespace nyads::control
