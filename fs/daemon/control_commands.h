// The control commands nyadsd runs for the `nyads` CLI (doc/control.md lists them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "fs/daemon/control_protocol.h"
#include "nyads/store.h"

namespace nyads::daemon {

// What the commands need from the daemon.
class ControlContext {
 public:
  virtual ~ControlContext() = default;
  virtual Store& store() = 0;
  // NBD connections in transmission on a namespace.
  virtual std::size_t connections_to(std::uint32_t ns) const = 0;
  // Disconnects every NBD client of the namespace and removes its ublk device.
  virtual void disconnect(std::uint32_t ns) = 0;
  // The ublk export: attach starts the device and defers the answer until the kernel's disk
  // is live; detach defers it until the device is gone.
  virtual Status attach_ublk(const NamespaceInfo& ns) = 0;
  virtual Status detach_ublk(const NamespaceInfo& ns, bool force) = 0;
  virtual std::optional<std::string> ublk_device(std::uint32_t ns) const = 0;
  // The daemon's own facts for `status`: device, sockets, uptime, connections.
  virtual control::Record daemon_status() const = 0;
};

control::Response run_control(const control::Request& request, ControlContext& context);

}  // namespace nyads::daemon
