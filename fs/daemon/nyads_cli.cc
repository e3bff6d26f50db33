// nyads: manage a running nyadsd over its control socket (doc/control.md).
//   nyads ns create NAME --size 20G      nyads ns list       nyads ns show NAME
//   nyads ns resize NAME --size 30G      nyads ns delete NAME [--force]
//   nyads ns attach NAME --ublk          nyads ns detach NAME [--force]
//   nyads status                         nyads stats
// Human tables by default, --json for programs. Exit status 0 on success, 1 on an error the
// daemon reported, 2 on a usage error, 3 when the daemon cannot be reached.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "fs/daemon/control_protocol.h"
#include "nyads/json_text.h"
#include "nyads/units.h"

using namespace nyads;

namespace {

Result<std::string> call(const std::string& path, const control::Request& request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    ::close(fd);
    return InvalidArgument("control socket path too long: " + path);
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    return ErrnoStatus(e,
                       "cannot reach nyadsd at " + path + " (is it running? --run-dir or --control selects another)");
  }
  const std::string line = control::encode_request(request);
  for (std::size_t sent = 0; sent < line.size();) {
    const ssize_t k = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (k <= 0) {
      const int e = errno;
      ::close(fd);
      return ErrnoStatus(e, "sending to nyadsd");
    }
    sent += static_cast<std::size_t>(k);
  }
  std::string text;
  char buf[4096];
  while (text.size() < 2 || text.compare(text.size() - 2, 2, "\n\n") != 0) {
    const ssize_t k = ::recv(fd, buf, sizeof buf, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    text.append(buf, static_cast<std::size_t>(k));
  }
  ::close(fd);
  if (text.empty()) return IoError("nyadsd closed the control connection without an answer");
  return text;
}

std::string json_string(const std::string& s) { return json_quote(s); }

// A daemon's message for a terminal: it may quote what the user typed, and an escape sequence
// in a name must not reach the terminal as one. Control bytes become \xNN.
std::string without_control_bytes(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// Fields whose values are text whatever they look like: a namespace or label "007" or "4096"
// stays a JSON string. Every other field the daemon sends is a count, a size or a ratio.
bool is_text_field(const std::string& key) {
  static constexpr std::string_view kText[] = {"name",    "provisioning", "ublk",    "state", "uuid",   "label",
                                               "version", "device",       "backend", "nbd",   "control"};
  return std::find(std::begin(kText), std::end(kText), key) != std::end(kText);
}

// A JSON number as the daemon writes them: digits, at most one dot inside, no leading zero
// (a field this CLI does not know that is not one becomes a string: the output stays JSON).
bool is_json_number(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  if (s.size() > 1 && s[0] == '0' && s[1] != '.') return false;
  bool dot = false;
  for (char c : s) {
    if (c == '.' && !dot)
      dot = true;
    else if (c < '0' || c > '9')
      return false;
  }
  return true;
}

std::string json_record(const control::Record& r) {
  std::string out = "{";
  for (std::size_t i = 0; i < r.size(); ++i) {
    const auto& [key, value] = r[i];
    out += (i ? ", " : "") + json_string(key) + ": " +
           (!is_text_field(key) && is_json_number(value) ? value : json_string(value));
  }
  return out + "}";
}

const std::string* field(const control::Record& r, const std::string& key) {
  for (const auto& [k, v] : r)
    if (k == key) return &v;
  return nullptr;
}

std::string human_bytes(const std::string& v) {
  try {
    return format_size(std::stoull(v));
  } catch (...) {
    return v;
  }
}

void print_namespaces(const std::vector<control::Record>& records) {
  std::printf("%-24s %12s %-8s %6s %12s %6s %-12s %s\n", "NAME", "SIZE", "SPACE", "BLOCK", "ALLOCATED", "CONN", "UBLK",
              "STATE");
  for (const auto& r : records) {
    auto get = [&](const char* k) {
      const std::string* v = field(r, k);
      return v ? *v : std::string("-");
    };
    std::printf("%-24s %12s %-8s %6s %12s %6s %-12s %s\n", get("name").c_str(), human_bytes(get("size")).c_str(),
                get("provisioning").c_str(), get("block_size").c_str(), human_bytes(get("allocated")).c_str(),
                get("connections").c_str(), get("ublk").c_str(), get("state").c_str());
  }
}

void print_fields(const control::Record& r) {
  std::size_t width = 0;
  for (const auto& [k, v] : r) width = std::max(width, k.size());
  for (const auto& [k, v] : r) {
    const bool bytes = k.find("bytes") != std::string::npos || k == "size" || k == "allocated";
    std::printf("%-*s  %s\n", static_cast<int>(width), k.c_str(),
                bytes ? (v + " (" + human_bytes(v) + ")").c_str() : v.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "nyads: manage namespaces on a running nyadsd.\n\n"
      "Each namespace is one NBD export, named after it: attach it with\n"
      "  nbd-client -unix RUN_DIR/nbd.sock -N NAME /dev/nbd0\n"
      "or any NBD client with nbd+unix:///NAME?socket=RUN_DIR/nbd.sock.\n"
      "Or as a kernel block device through ublk (modprobe ublk_drv):\n"
      "  nyads ns attach NAME --ublk     (prints /dev/ublkbN)\n"
      "Exit status: 0 success, 1 the daemon refused, 2 usage error, 3 daemon not reachable."};
  app.set_version_flag("-V,--version", std::string("nyads ") + NYADS_VERSION);
  app.require_subcommand(1);
  std::string run_dir = "/run/nyads", control_path;
  bool json = false;
  app.add_option("--run-dir", run_dir, "nyadsd's socket directory")->capture_default_str();
  app.add_option("--control", control_path, "Control socket (default: RUN_DIR/control.sock)");
  app.add_flag("--json", json, "Print JSON instead of tables");

  control::Request request;
  std::string name, size_text;
  std::uint32_t block_size = 4096;
  bool force = false, discard = false, use_ublk = false, thin = false;
  auto* ns = app.add_subcommand("ns", "Namespaces: create, list, show, resize, delete, attach, detach");
  ns->require_subcommand(1);
  auto* create = ns->add_subcommand(
      "create",
      "Create a namespace. Space is used when written, but the volume promises the namespace its whole size "
      "(refused when it cannot), so it can always be filled whatever the others do; --thin promises nothing");
  create->add_option("NAME", name, "1-64 bytes of [A-Za-z0-9._-], starting with a letter or digit")->required();
  create->add_option("--size", size_text, "Size, e.g. 20G (K, M, G, T: powers of 1024); a multiple of 4096")
      ->required();
  create->add_option("--block-size", block_size, "Logical block size exported: 512 or 4096")->capture_default_str();
  create->add_flag("--thin", thin,
                   "Promise it no space: it may be larger than the volume, and its writes of new blocks get 'no space' "
                   "once the space "
                   "promised to no namespace is used up (overwrites still work)");
  auto* list = ns->add_subcommand("list", "List namespaces");
  auto* show = ns->add_subcommand("show", "Show one namespace");
  show->add_option("NAME", name)->required();
  auto* resize = ns->add_subcommand(
      "resize", "Grow or shrink a namespace (connected clients see the new size when they reconnect)");
  resize->add_option("NAME", name)->required();
  resize->add_option("--size", size_text, "New size")->required();
  resize->add_flag("--discard", discard, "Allow shrinking over data, which is dropped");
  auto* del = ns->add_subcommand("delete", "Delete a namespace and free its space");
  del->add_option("NAME", name)->required();
  del->add_flag("--force", force, "Delete even while clients are attached (they are disconnected)");
  auto* attach = ns->add_subcommand(
      "attach",
      "Export a namespace as a kernel block device, /dev/ublkbN, through the ublk driver; returns once the "
      "device exists. nyadsd attaches it again when it restarts after a crash");
  attach->add_option("NAME", name)->required();
  attach->add_flag("--ublk", use_ublk, "Through ublk (the only kind the daemon attaches: NBD clients connect by name)")
      ->required();
  auto* detach = ns->add_subcommand(
      "detach", "Remove a namespace's ublk device (its data stays); refused while it is mounted or held");
  detach->add_option("NAME", name)->required();
  detach->add_flag("--ublk", use_ublk, "The ublk device (the default)");
  detach->add_flag("--force", force, "Remove it even while mounted (the filesystem on it then gets I/O errors)");
  auto* status = app.add_subcommand("status", "The daemon and its volume");
  auto* stats = app.add_subcommand("stats", "Bytes written, write amplification, cleaning, checkpoints");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  auto size_bytes = [&]() -> Result<std::string> {
    auto v = parse_size(size_text);
    if (!v.ok()) return v.status();
    return std::to_string(*v);
  };
  if (create->parsed() || resize->parsed()) {
    auto s = size_bytes();
    if (!s.ok()) {
      std::cerr << "nyads: --size: " << s.status().message() << "\n";
      return 2;
    }
    if (create->parsed()) request = {"ns-create", {name, *s, std::to_string(block_size)}};
    if (create->parsed() && thin) request.args.push_back("thin");
    if (resize->parsed())
      request = {"ns-resize",
                 discard ? std::vector<std::string>{name, *s, "discard"} : std::vector<std::string>{name, *s}};
  } else if (list->parsed()) {
    request = {"ns-list", {}};
  } else if (show->parsed()) {
    request = {"ns-show", {name}};
  } else if (del->parsed()) {
    request = {"ns-delete", force ? std::vector<std::string>{name, "force"} : std::vector<std::string>{name}};
  } else if (attach->parsed()) {
    request = {"ns-attach", {name, "ublk"}};
  } else if (detach->parsed()) {
    request = {"ns-detach",
               force ? std::vector<std::string>{name, "ublk", "force"} : std::vector<std::string>{name, "ublk"}};
  } else if (status->parsed()) {
    request = {"status", {}};
  } else if (stats->parsed()) {
    request = {"stats", {}};
  }
  const std::string path = control_path.empty() ? run_dir + "/control.sock" : control_path;
  auto text = call(path, request);
  if (!text.ok()) {
    std::cerr << "nyads: " << text.status().message() << "\n";
    return 3;
  }
  auto response = control::parse_response(*text);
  if (!response.ok()) {
    std::cerr << "nyads: " << response.status().message() << "\n";
    return 3;
  }
  if (!response->status.ok()) {
    if (json)
      std::printf("{\"error\": %s, \"message\": %s}\n",
                  json_string(std::string(code_name(response->status.code()))).c_str(),
                  json_string(response->status.message()).c_str());
    std::cerr << "nyads: " << without_control_bytes(response->status.message()) << "\n";
    return 1;
  }
  const auto& records = response->records;
  if (json) {
    if (request.command == "ns-list") {
      std::string out = "[";
      for (std::size_t i = 0; i < records.size(); ++i) out += (i ? ",\n " : "") + json_record(records[i]);
      std::printf("%s]\n", out.c_str());
    } else {
      std::printf("%s\n", records.empty() ? "{}" : json_record(records[0]).c_str());
    }
    return 0;
  }
  if (request.command == "ns-list") {
    print_namespaces(records);
  } else if (request.command == "ns-delete") {
    std::printf("deleted namespace '%s'\n", name.c_str());
  } else if (request.command == "ns-attach" && !records.empty() && field(records[0], "ublk")) {
    std::printf("%s\n", field(records[0], "ublk")->c_str());
  } else if (request.command == "ns-detach") {
    std::printf("detached namespace '%s'\n", name.c_str());
  } else if (!records.empty()) {
    print_fields(records[0]);
  }
  return 0;
}
