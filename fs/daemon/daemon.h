// The nyadsd daemon: one store, served over NBD (unix socket, optionally TCP) and managed over
// a control socket, by one thread around one epoll loop. Each loop turn reads what every
// ready client sent, runs all their requests as one store batch (their device I/O in flight
// together, one group commit), and queues the replies. Nothing polls: an idle daemon sleeps
// in epoll_wait until a client speaks or the store wants its idle work (timed checkpoints).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nyads/status.h"
#include "nyads/store.h"

namespace nyads::daemon {

struct DaemonOptions {
  std::string run_dir = "/run/nyads";
  std::string nbd_socket;      // default: run_dir/nbd.sock
  std::string control_socket;  // default: run_dir/control.sock
  std::string tcp;             // "" (off), "PORT", "ADDR:PORT" (default address 127.0.0.1)
  unsigned socket_mode = 0660;
  // Per connection: requests taken per loop turn, and reply bytes queued before the daemon
  // stops reading from a client that does not read its replies.
  std::size_t max_requests_per_turn = 256;
  std::size_t max_queued_reply_bytes = 64 << 20;
};

// Sockets handed over by systemd (or nbdinfo/nbdkit-style launchers): LISTEN_FDS.
struct InheritedSockets {
  int nbd = -1;
  int control = -1;
};
// Reads LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES ("nbd", "control"; unnamed: first is NBD, second
// control) and clears them from the environment, as sd_listen_fds does.
InheritedSockets inherited_sockets();

class Daemon {
 public:
  // Binds the sockets (or adopts inherited ones). A socket path where a live daemon answers is
  // refused; a stale one (nobody answers) is replaced.
  static Result<std::unique_ptr<Daemon>> create(std::unique_ptr<Store> store, std::string device_path,
                                                const DaemonOptions& options, InheritedSockets inherited);
  ~Daemon();

  // Serves until SIGTERM, SIGINT or SIGHUP, then flushes and checkpoints the store and returns.
  Status run();

  struct Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nyads::daemon
