#include "fs/daemon/control_protocol.h"

#include <cstdio>

namespace nyads::control {

namespace {
bool plain(unsigned char c) { return c > 0x20 && c < 0x7f && c != '%' && c != '='; }

// The parts between separators; a run of them counts as one (responses' lines and fields).
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const auto i = s.find(sep);
    if (i != 0) out.push_back(s.substr(0, i));
    if (i == std::string_view::npos) break;
    s.remove_prefix(i + 1);
  }
  return out;
}

// A request's words: exactly one space between two, so an empty argument ("v1 ns-delete  x")
// stays an argument instead of moving the next one into its place.
std::vector<std::string_view> request_words(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto i = s.find(' ');
    out.push_back(s.substr(0, i));
    if (i == std::string_view::npos) return out;
    s.remove_prefix(i + 1);
  }
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (plain(c)) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Result<std::string> unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return InvalidArgument("control: a '%' escape is cut short");
    const int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
    if (hi < 0 || lo < 0) return InvalidArgument("control: bad escape '" + std::string(text.substr(i, 3)) + "'");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string encode_request(const Request& request) {
  std::string line(kVersion);
  line += ' ' + request.command;
  for (const auto& a : request.args) line += ' ' + escape(a);
  return line + '\n';
}

Result<Request> parse_request(std::string_view line) {
  if (line.size() > kMaxLineBytes)
    return InvalidArgument("control: a request line over " + std::to_string(kMaxLineBytes) + " bytes");
  if (line.empty()) return InvalidArgument("control: an empty request");
  auto words = request_words(line);
  if (words[0] != kVersion)
    return Status(Code::kNotSupported, "control: protocol version '" + std::string(words[0]) +
                                           "' is not served (this daemon speaks " + std::string(kVersion) + ")");
  if (words.size() < 2) return InvalidArgument("control: a request without a command");
  Request r;
  r.command = std::string(words[1]);
  for (std::size_t i = 2; i < words.size(); ++i) {
    auto a = unescape(words[i]);
    if (!a.ok()) return a.status();
    r.args.push_back(std::move(*a));
  }
  return r;
}

std::string encode_response(const Response& response) {
  std::string out;
  if (response.status.ok()) {
    out = "ok\n";
    for (const auto& record : response.records) {
      std::string line;
      for (const auto& [k, v] : record) line += (line.empty() ? "" : " ") + escape(k) + "=" + escape(v);
      out += line + '\n';
    }
  } else {
    std::string code(code_name(response.status.code()));
    out = "error " + escape(code) + " " + escape(response.status.message()) + "\n";
  }
  return out + '\n';
}

Result<Response> parse_response(std::string_view text) {
  auto lines = split(text, '\n');
  if (lines.empty()) return IoError("control: an empty response");
  Response r;
  if (lines[0].substr(0, 6) == "error ") {
    auto words = split(lines[0], ' ');
    if (words.size() < 3) return IoError("control: a malformed error line");
    auto code = unescape(words[1]);
    auto message = unescape(words[2]);
    if (!code.ok() || !message.ok()) return IoError("control: a malformed error line");
    r.status = Status(code_from_name(*code), *message);
    return r;
  }
  if (lines[0] != "ok")
    return IoError("control: the response starts with '" + std::string(lines[0].substr(0, 40)) + "'");
  for (std::size_t i = 1; i < lines.size(); ++i) {
    Record record;
    for (auto field : split(lines[i], ' ')) {
      const auto eq = field.find('=');
      if (eq == std::string_view::npos) return IoError("control: a record field without '='");
      auto k = unescape(field.substr(0, eq));
      auto v = unescape(field.substr(eq + 1));
      if (!k.ok() || !v.ok()) return IoError("control: a malformed record");
      record.emplace_back(std::move(*k), std::move(*v));
    }
    r.records.push_back(std::move(record));
  }
  return r;
}

Code code_from_name(std::string_view name) {
  for (int c = 1; c <= static_cast<int>(Code::kNoSpace); ++c)
    if (code_name(static_cast<Code>(c)) == name) return static_cast<Code>(c);
  return Code::kIoError;
}

}  // namespace nyads::control
