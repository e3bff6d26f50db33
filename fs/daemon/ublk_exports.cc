#include "fs/daemon/ublk_exports.h"

#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cerrno>
#include <filesystem>
#include <fstream>
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
}  // namespace

bool block_device_mounted(const std::string& name) {
  const std::string devno = read_line("/sys/block/" + name + "/dev");
  if (devno.empty()) return false;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, majmin;
    fields >> id >> parent >> majmin;
    if (majmin == devno) return true;
  }
  return false;
}

UblkExports::UblkExports(std::string state_dir, int epoll_fd, Log log) : state_dir_(std::move(state_dir)), epoll_(epoll_fd), log_(std::move(log)) {}

UblkExports::~UblkExports() = default;

std::string UblkExports::state_file(int dev_id) const { return state_dir_ + "/" + n(static_cast<std::uint64_t>(dev_id)); }

void UblkExports::watch(const ublk::UblkDevice& d, bool add) {
  for (int fd : d.fds()) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_, add ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev);
  }
}

Status UblkExports::attach(const NamespaceInfo& ns, int dev_id, Waiter done) {
  if (auto it = devices_.find(ns.id); it != devices_.end())
    return Status(Code::kAlreadyExists, "namespace '" + ns.name + "' is already attached as " + it->second.device->block_path());
  if (ns.quarantined) return Status(Code::kBusy, "namespace '" + ns.name + "' is quarantined (see fsck.nyads)");
  ublk::UblkConfig config;
  config.ns = ns.id;
  config.size_bytes = ns.size_bytes;
  config.block_size = ns.block_size;
  config.queues = static_cast<std::uint16_t>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
  config.depth = 64;
  config.max_io_bytes = 256 << 10;
  config.dev_id = dev_id;
  auto device = ublk::UblkDevice::create(config);
  if (!device.ok()) return device.status();
  Attachment& a = devices_[ns.id];
  a.ns = ns;
  a.device = std::move(*device);
  if (done) a.on_live.push_back(std::move(done));
  watch(*a.device, true);
  return Status::Ok();
}

Status UblkExports::detach(const NamespaceInfo& ns, bool force, Waiter done) {
  auto it = devices_.find(ns.id);
  if (it == devices_.end()) return Status(Code::kNotFound, "namespace '" + ns.name + "' is not attached through ublk");
  ublk::UblkDevice& d = *it->second.device;
  const std::string name = "ublkb" + n(static_cast<std::uint64_t>(d.dev_id()));
  if (!force && block_device_mounted(name))
    return Status(Code::kBusy, "/dev/" + name + " (namespace '" + ns.name + "') is mounted: unmount it first, or detach with --force");
  if (done) it->second.on_gone.push_back(std::move(done));
  d.remove();
  return Status::Ok();
}

void UblkExports::remove(std::uint32_t ns) {
  if (auto it = devices_.find(ns); it != devices_.end()) it->second.device->remove();
}

void UblkExports::remove_all() {
  for (auto& [id, a] : devices_) a.device->remove();
}

std::optional<std::string> UblkExports::device_of(std::uint32_t ns) const {
  auto it = devices_.find(ns);
  if (it == devices_.end()) return std::nullopt;
  return it->second.device->block_path();
}

std::size_t UblkExports::live_count() const {
  return static_cast<std::size_t>(std::count_if(devices_.begin(), devices_.end(), [](const auto& e) { return e.second.device->state() == ublk::UblkDevice::State::kLive; }));
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
    log_(p.device->block_path() + ": " + ublk::op_name(r.op) + " of " + n(r.store.length ? r.store.length : r.store.out.size() + r.store.data.size()) +
         " bytes at " + n(r.store.offset) + " failed: " + (r.runnable ? result.to_string() : std::string(std::strerror(r.errno_result))) +
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
      std::ofstream(state_file(d.dev_id())) << a.ns.name << "\n";
      log_("ublk: namespace '" + a.ns.name + "' is " + d.block_path() + " (" + n(d.config().queues) + " queues x " + n(d.config().depth) + ")");
      for (auto& w : a.on_live) w({Status::Ok(), {{{"name", a.ns.name}, {"ublk", d.block_path()}, {"queues", n(d.config().queues)}, {"depth", n(d.config().depth)}}}});
      a.on_live.clear();
    }
    if (d.state() == State::kFailed) {
      log_("ublk: namespace '" + a.ns.name + "': " + d.error().to_string());
      for (auto& w : a.on_live) w({d.error(), {}});
      a.on_live.clear();
      d.remove();
    }
    if (d.state() == State::kGone) {
      if (a.announced) {
        ::unlink(state_file(d.dev_id()).c_str());
        log_("ublk: " + d.block_path() + " (namespace '" + a.ns.name + "') removed" + (d.error().ok() ? "" : ": " + d.error().to_string()));
      }
      for (auto& w : a.on_live) w({d.error().ok() ? Status(Code::kIoError, "the ublk device went away while starting") : d.error(), {}});
      for (auto& w : a.on_gone) w({Status::Ok(), {{{"name", a.ns.name}, {"ublk", d.block_path()}, {"detached", "yes"}}}});
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
    if (file.empty() || !std::all_of(file.begin(), file.end(), [](char c) { return c >= '0' && c <= '9'; }) || file.size() > 6) continue;
    const int dev_id = std::stoi(file);
    const std::string name = read_line(entry.path().string());
    ::unlink(entry.path().c_str());
    Status freed = ublk::UblkDevice::remove_stale(dev_id, 3000);
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
