// The namespaces nyadsd exports through ublk: one UblkDevice each, the control requests
// waiting for a device to come up or go away, and a state file per device (run_dir/ublk/N)
// so that a daemon restarted after a crash frees what the old one left and attaches again.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fs/daemon/control_protocol.h"
#include "fs/ublk/ublk_device.h"
#include "nyads/store.h"

namespace nyads::daemon {

class UblkExports {
 public:
  using Waiter = std::function<void(control::Response)>;
  using Log = std::function<void(const std::string&)>;
  // Queues and depth of each device: one queue per CPU (at most 16), 64 requests in flight each.
  UblkExports(std::string state_dir, int epoll_fd, Log log);
  ~UblkExports();

  // Starts exporting a namespace; `done` gets the answer once the kernel's disk is live (or
  // its start failed). dev_id -1 lets the kernel pick the number.
  Status attach(const NamespaceInfo& ns, int dev_id, Waiter done);
  // Removes a namespace's device; refused while it is in use (block_device_user) unless
  // force. `done` gets the answer once the kernel deleted it.
  Status detach(const NamespaceInfo& ns, bool force, Waiter done);
  // Removal without an answer (namespace deleted with --force, daemon stopping).
  void remove(std::uint32_t ns);
  // The daemon is stopping: every device goes, and attach is refused from now on.
  void remove_all();
  bool empty() const { return devices_.empty(); }
  // "/dev/ublkbN" while attached (or starting), nullopt otherwise.
  std::optional<std::string> device_of(std::uint32_t ns) const;
  std::size_t live_count() const;

  // After a crash: frees the devices the state files name and attaches their namespaces
  // again, with the same device numbers when the kernel gives them back.
  void restore(Store& store);

  // One loop turn: the kernel's requests (with the device that owns each), then, once the
  // store ran them, their answers; then state changes and waiting control requests.
  struct Pending {
    ublk::UblkDevice* device;
    ublk::UblkRequest request;
  };
  void poll(std::vector<Pending>& out);
  void answer(const Pending& p, const Status& result);
  void finish_turn();

 private:
  struct Attachment {
    NamespaceInfo ns;
    std::unique_ptr<ublk::UblkDevice> device;
    std::vector<Waiter> on_live, on_gone;
    bool announced = false;
  };
  void watch(const ublk::UblkDevice& d);
  std::string state_file(int dev_id) const;

  std::string state_dir_;
  int epoll_ = -1;
  Log log_;
  std::map<std::uint32_t, Attachment> devices_;  // by namespace id
  unsigned failures_logged_ = 0;
  bool stopping_ = false;
};

// Who uses a block device (name as in /sys/block, e.g. "ublkb0"), or "" when nobody does: a
// holder (device-mapper, md), or a mount of it or of a partition in any mount namespace.
std::string block_device_user(const std::string& name);

}  // namespace nyads::daemon
