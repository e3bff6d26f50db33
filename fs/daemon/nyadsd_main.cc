// nyadsd: serve a nyads volume's namespaces as NBD exports. Runs in the foreground, logs to
// stderr; stops cleanly (everything flushed and checkpointed) on SIGTERM, SIGINT or SIGHUP.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "fs/daemon/daemon.h"
#include "nyads/store.h"
#include "nyads/zoned_device.h"

using namespace nyads;

int main(int argc, char** argv) {
  CLI::App app{
      "nyadsd: serve the namespaces of a nyads volume as NBD exports.\n\n"
      "DEVICE is what mkfs.nyads formatted: a zoned block device (/dev/nvme0n1), an NVMe generic\n"
      "device (/dev/ng0n1) or an emulated device file. The daemon recovers the volume after a\n"
      "crash, then serves NBD on a unix socket (RUN_DIR/nbd.sock; clients use\n"
      "nbd+unix:///NAME?socket=RUN_DIR/nbd.sock) and the control socket the `nyads` CLI talks to\n"
      "(RUN_DIR/control.sock). Under systemd socket activation (LISTEN_FDS) it serves the sockets\n"
      "it is given instead. It stays in the foreground and logs to stderr; SIGTERM, SIGINT or\n"
      "SIGHUP (its terminal closed) stops it after flushing everything. One daemon per device: a second one is "
      "refused."};
  app.set_version_flag("-V,--version", std::string("nyadsd ") + NYADS_VERSION);
  std::string device;
  daemon::DaemonOptions options;
  std::string mode = "0660";
  StoreOptions store_options;
  app.add_option("DEVICE", device, "The nyads volume")->required();
  app.add_option("--run-dir", options.run_dir, "Directory for the sockets")->capture_default_str();
  app.add_option("--nbd-socket", options.nbd_socket, "NBD unix socket (default: RUN_DIR/nbd.sock)");
  app.add_option("--control-socket", options.control_socket, "Control socket (default: RUN_DIR/control.sock)");
  app.add_option("--tcp", options.tcp,
                 "Also serve NBD on TCP: PORT (on 127.0.0.1) or ADDR:PORT. NBD has no authentication: "
                 "bind beyond loopback only on a trusted network");
  app.add_option("--socket-mode", mode, "Mode of the unix sockets (octal)")->capture_default_str();
  app.add_option("--checkpoint-interval", store_options.checkpoint_interval_seconds,
                 "Seconds after which a quiet daemon checkpoints, so recovery replays little")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  // Octal digits only, at most 0777: a sign, trailing junk or setuid/sticky bits would give
  // the sockets a mode nobody asked for (NBD has no authentication: the mode is the access).
  unsigned socket_mode = 0;
  bool mode_ok = !mode.empty() && mode.size() <= 4;
  for (char c : mode) {
    mode_ok = mode_ok && c >= '0' && c <= '7';
    socket_mode = socket_mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (!mode_ok || socket_mode > 0777) {
    std::cerr << "nyadsd: --socket-mode '" << mode << "' is not a file mode (octal digits, at most 0777)\n";
    return 2;
  }
  options.socket_mode = socket_mode;
  // Sockets first, before anything opens the device: LISTEN_FDS belongs to this process only.
  daemon::InheritedSockets inherited = daemon::inherited_sockets();
  auto dev = open_zoned_device(device);
  if (!dev.ok()) {
    std::cerr << "nyadsd: " << dev.status().message() << "\n";
    return 1;
  }
  std::cerr << "nyadsd: opening " << device << " (" << (*dev)->backend() << "), recovering if needed\n";
  auto store = Store::open(std::move(*dev), store_options);
  if (!store.ok()) {
    std::cerr << "nyadsd: " << store.status().message() << "\n";
    return 1;
  }
  for (const std::string& warning : (*store)->device().warnings()) std::cerr << "nyadsd: warning: " << warning << "\n";
  auto d = daemon::Daemon::create(std::move(*store), device, options, inherited);
  if (!d.ok()) {
    std::cerr << "nyadsd: " << d.status().message() << "\n";
    return 1;
  }
  Status st = (*d)->run();
  if (!st.ok()) {
    std::cerr << "nyadsd: " << st.to_string() << "\n";
    return 1;
  }
  return 0;
}
