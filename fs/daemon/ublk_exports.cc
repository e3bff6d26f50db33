#include "fs/daemon/ublk_exports.h"

#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace nyads::daemon {

namespace {
std::string n(std::uint64_t v) { return std::to_string(v); }

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The device numbers ("major:minor") of a disk and of each of its partitions.
std::vector<std::string> device_numbers(const std::string& name) {
  std::vector<std::string> out;
  const std::string disk = "/sys/block/" + name;
  if (std::string d = read_line(disk + "/dev"); !d.empty()) out.push_back(d);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(disk, ec)) {
    const std::string part = entry.path().filename().string();
    if (part.rfind(name, 0) != 0) continue;  // partitions are subdirectories named ublkbNpK
    if (std::string d = read_line(entry.path().string() + "/dev"); !d.empty()) out.push_back(d);
  }
  return out;
}
}  // namespace

std::string block_device_user(const std::string& name) {
  // Claimed by a device-mapper, md or other holder.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block/" + name + "/holders", ec))
    return "held by " + entry.path().filename().string();
  // Mounted (the disk or a partition) in any mount namespace: one mountinfo per namespace. A
  // filesystem that reports an anonymous device number (btrfs) still names its source.
  const auto numbers = device_numbers(name);
  const std::string source = "/dev/" + name;
  std::set<std::string> namespaces_seen;
  // Our own mount namespace first (its paths are the ones an operator sees), then the rest.
  std::vector<std::filesystem::path> procs{"/proc/" + std::to_string(::getpid())};
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) procs.push_back(proc.path());
  for (const auto& path : procs) {
    const std::filesystem::directory_entry proc(path);
    const std::string pid = proc.path().filename().string();
    if (!all_digits(pid)) continue;
    std::error_code e2;
    const std::string ns = std::filesystem::read_symlink(proc.path() / "ns" / "mnt", e2).string();
    if (e2 || !namespaces_seen.insert(ns).second) continue;
    std::ifstream in(proc.path() / "mountinfo");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string id, parent, majmin, root, point;
      fields >> id >> parent >> majmin >> root >> point;
      // The mount source follows the " - fstype " separator.
      std::string src;
      if (const auto dash = line.find(" - "); dash != std::string::npos) {
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype;
        tail >> fstype >> src;
      }
      const bool ours = std::find(numbers.begin(), numbers.end(), majmin) != numbers.end() || src == source ||
                        (src.rfind(source + "p", 0) == 0);
      if (ours)
        return "mounted on " + point +
               (pid == std::to_string(::getpid()) ? "" : " (in the mount namespace of process " + pid + ")");
    }
  }
  return "";
}

UblkExports::UblkExports(std::string state_dir, int epoll_fd, Log log)
    : state_dir_(std::move(state_dir)), epoll_(epoll_fd), log_(std::move(log)) {}

UblkExports::~UblkExports() = default;

std::string UblkExports::state_file(int dev_id) const {
  return state_dir_ + "/" + n(static_cast<std::uint64_t>(dev_id));
}

// The device's rings join the daemon's epoll set; closing them takes them out again.
void UblkExports::watch(const ublk::UblkDevice& d) {
  for (int fd : d.fds()) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }
}

Status UblkExports::attach(const NamespaceInfo& ns, int dev_id, Waiter done) {
  if (auto it = devices_.find(ns.id); it != devices_.end())
    return Status(Code::kAlreadyExists,
                  "namespace '" + ns.name + "' is already attached as " + it->second.device->block_path());
  if (ns.quarantined) return Status(Code::kBusy, "namespace '" + ns.name + "' is quarantined (see fsck.nyads)");
  if (stopping_) return Status(Code::kBusy, "nyadsd is stopping");
  ublk::UblkConfig config;
  config.ns = ns.id;
  config.size_bytes = ns.size_bytes;
  config.block_size = ns.block_size;
  config.queues = static_cast<std::uint16_t>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  config.depth = 64;
  config.max_io_bytes = 256 << 10;
  config.dev_id = dev_id;
  auto device = ublk::UblkDevice::create(config);
  if (!device.ok() && dev_id >= 0 && device.status().code() != Code::kNotSupported) {
    config.dev_id = -1;  // the old number is taken: any number will do
    device = ublk::UblkDevice::create(config);
  }
  if (!device.ok()) return device.status();
  // Recorded from now on, so that a daemon killed before the device is live still frees it.
  std::ofstream(state_file((*device)->dev_id())) << ns.name << "\n";
  Attachment& a = devices_[ns.id];
  a.ns = ns;
  a.device = std::move(*device);
  if (done) a.on_live.push_back(std::move(done));
  watch(*a.device);
  return Status::Ok();
}

Status UblkExports::detach(const NamespaceInfo& ns, bool force, Waiter done) {
  auto it = devices_.find(ns.id);
  if (it == devices_.end()) return Status(Code::kNotFound, "namespace '" + ns.name + "' is not attached through ublk");
  ublk::UblkDevice& d = *it->second.device;
  const std::string name = d.disk_name();
  if (!force)
    if (const std::string user = block_device_user(name); !user.empty())
      return Status(Code::kBusy, "/dev/" + name + " (namespace '" + ns.name + "') is in use (" + user +
                                     "): unmount it first, or detach with --force");
  if (done) it->second.on_gone.push_back(std::move(done));
  d.remove();
  return Status::Ok();
}

void UblkExports::remove(std::uint32_t ns) {
  if (auto it = devices_.find(ns); it != devices_.end()) it->second.device->remove();
}

void UblkExports::remove_all() {
  stopping_ = true;
  for (auto& [id, a] : devices_) a.device->remove();
}

std::optional<std::string> UblkExports::device_of(std::uint32_t ns) const {
  auto it = devices_.find(ns);
  if (it == devices_.end()) return std::nullopt;
  return it->second.device->block_path();
}

std::size_t UblkExports::live_count() const {
  return static_cast<std::size_t>(std::count_if(devices_.begin(), devices_.end(), [](const auto& e) {
    return e.second.device->state() == ublk::UblkDevice::State::kLive;
  }));
}

void UblkExports::poll(std::vector<Pending>& out) {
  std::vector<ublk::UblkRequest> taken;
  for (auto& [id, a] : devices_) {
    taken.clear();
    a.device->poll(taken);
    for (auto& r : taken) out.push_back({a.device.get(), std::move(r)});
  }
}

void UblkExports::answer(const Pending& p, const Status& result) {
  const ublk::UblkRequest& r = p.request;
  int value = 0;
  // Failed requests are worth a line each, up to a bound (a full volume fails many).
  if ((!r.runnable || !result.ok()) && failures_logged_ < 20) {
    ++failures_logged_;
    log_(p.device->block_path() + ": " + ublk::op_name(r.op) + " of " +
         n(r.store.length ? r.store.length : r.store.out.size() + r.store.data.size()) + " bytes at " +
         n(r.store.offset) +
         " failed: " + (r.runnable ? result.to_string() : std::string(std::strerror(r.errno_result))) +
         (failures_logged_ == 20 ? " (further failures not logged)" : ""));
  }
  if (!r.runnable) {
    value = -r.errno_result;
  } else if (!result.ok()) {
    value = -result.to_errno();
  } else if (r.op == UBLK_IO_OP_READ || r.op == UBLK_IO_OP_WRITE) {
    value = static_cast<int>(r.op == UBLK_IO_OP_READ ? r.store.out.size() : r.store.data.size());
  }
  p.device->answer(r, value);
}

void UblkExports::finish_turn() {
  using State = ublk::UblkDevice::State;
  for (auto it = devices_.begin(); it != devices_.end();) {
    Attachment& a = it->second;
    ublk::UblkDevice& d = *a.device;
    d.submit();
    if (d.state() == State::kLive && !a.announced) {
      a.announced = true;
      log_("ublk: namespace '" + a.ns.name + "' is " + d.block_path() + " (" + n(d.config().queues) + " queues x " +
           n(d.config().depth) + ")");
      for (auto& w : a.on_live)
        w({Status::Ok(),
           {{{"name", a.ns.name},
             {"ublk", d.block_path()},
             {"queues", n(d.config().queues)},
             {"depth", n(d.config().depth)}}}});
      a.on_live.clear();
    }
    if (d.state() == State::kFailed) {
      log_("ublk: namespace '" + a.ns.name + "': " + d.error().to_string());
      for (auto& w : a.on_live) w({d.error(), {}});
      a.on_live.clear();
      d.remove();
    }
    if (d.state() == State::kGone) {
      // The state file goes only when the kernel confirmed the deletion; otherwise the next
      // start tries again.
      if (d.deleted()) ::unlink(state_file(d.dev_id()).c_str());
      log_("ublk: " + d.block_path() + " (namespace '" + a.ns.name + "') " +
           (d.deleted() ? "removed" : "not confirmed removed") + (d.error().ok() ? "" : ": " + d.error().to_string()));
      for (auto& w : a.on_live)
        w({d.error().ok() ? Status(Code::kIoError, "the ublk device went away while starting") : d.error(), {}});
      for (auto& w : a.on_gone) {
        if (d.deleted())
          w({Status::Ok(), {{{"name", a.ns.name}, {"ublk", d.block_path()}, {"detached", "yes"}}}});
        else
          w({d.error().ok() ? Status(Code::kIoError, "the kernel did not confirm deleting " + d.block_path())
                            : d.error(),
             {}});
      }
      it = devices_.erase(it);
      continue;
    }
    ++it;
  }
}

void UblkExports::restore(Store& store) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir_, ec);
  if (ec) {
    log_("ublk: cannot create " + state_dir_ + ": " + ec.message());
    return;
  }
  for (const auto& entry : std::filesystem::directory_iterator(state_dir_, ec)) {
    const std::string file = entry.path().filename().string();
    if (!all_digits(file) || file.size() > 7) continue;
    const int dev_id = std::stoi(file);
    const std::string name = read_line(entry.path().string());
    Status freed = ublk::UblkDevice::remove_stale(dev_id, 3000);
    // Gone (or no driver: nothing can be left): forget it. Otherwise the file stays, and the
    // next start tries again; the namespace is attached under another number meanwhile.
    if (freed.ok() || freed.code() == Code::kNotSupported) ::unlink(entry.path().c_str());
    if (!freed.ok()) {
      log_("ublk: device " + file + " left by an earlier daemon: " + freed.to_string());
      if (freed.code() != Code::kBusy) continue;
    }
    auto ns = store.find_namespace(name);
    if (!ns.ok()) {
      log_("ublk: not attaching '" + name + "' again: " + ns.status().to_string());
      continue;
    }
    // The same number when the kernel freed it, so /dev/ublkbN names the same namespace.
    Status s = attach(*ns, freed.ok() ? dev_id : -1, nullptr);
    log_("ublk: attaching '" + name + "' again after a restart" + (s.ok() ? "" : ": " + s.to_string()));
  }
}

}  // namespace nyads::daemon
