// Listening sockets for the daemon: unix sockets (replacing a stale file, refusing a live
// one), TCP, and systemd's readiness notification.
#pragma once

#include <string>

#include "nyads/status.h"

namespace nyads::daemon {

// Binds and listens on a unix socket at path with the given mode, creating its directory.
// When something already answers at path, fails with kBusy naming it; a socket file nobody
// answers on (left by a killed daemon) is removed first.
Result<int> listen_unix(const std::string& path, unsigned mode);
// "PORT" or "ADDR:PORT"; ADDR defaults to 127.0.0.1 (loopback), since NBD has no
// authentication: exposing it wider is a choice to make explicitly. PORT 0: one the kernel
// picks (tcp_address says which).
Result<int> listen_tcp(const std::string& spec);
// Where a listening TCP socket is bound: "127.0.0.1:10809", "[::1]:10809".
std::string tcp_address(int fd);
// Tells systemd (NOTIFY_SOCKET) that the daemon is ready; nothing when not under systemd.
void notify_ready(const std::string& status);

}  // namespace nyads::daemon
