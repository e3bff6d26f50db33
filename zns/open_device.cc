// open_zoned_device: from a path to the backend that can drive it.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <fstream>

#include "nyads/emulated_device.h"
#include "zns/backends.h"

namespace nyads {

namespace {

constexpr const char* kSupported =
    "nyads opens an emulated zoned device file (made by mkfs.nyads or nyads-zonectl create), a host-managed "
    "zoned block device (e.g. /dev/nvme0n1), or an NVMe ZNS generic device (/dev/ngXnY)";

std::string sysfs_zoned_model(const struct stat& st) {
  const std::string path =
      "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
  std::ifstream in(path + "/queue/zoned");
  if (!in) {  // a partition: the disk's queue is one level up
    in.open(path + "/../queue/zoned");
  }
  std::string model;
  in >> model;
  return model;
}

// Whether the file or disk at path starts with an emulated zoned device's header.
bool holds_emulated_device(const std::string& path) {
  std::array<std::uint8_t, 8> magic{};
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(magic.data()), magic.size());
  return looks_like_emulated_device(magic);
}

Result<std::unique_ptr<ZonedDevice>> open_emulated(const std::string& path, const OpenOptions& options) {
  auto dev = EmulatedDevice::open_file(path, options.read_only);
  if (!dev.ok()) return dev.status();
  return std::unique_ptr<ZonedDevice>(std::move(dev.value()));
}

}  // namespace

Result<std::unique_ptr<ZonedDevice>> open_zoned_device(const std::string& path, const OpenOptions& options) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "opening " + path);
  if (S_ISREG(st.st_mode)) {
    if (!holds_emulated_device(path))
      return NotSupported(path + " is a regular file but not an emulated zoned device. " + kSupported);
    return open_emulated(path, options);
  }
  if (S_ISBLK(st.st_mode)) {
    const std::string model = sysfs_zoned_model(st);
    if (model == "host-managed") return open_zbd_device(path, options);
    // A plain disk laid out as an emulated zoned device (mkfs.nyads --emulate).
    if (holds_emulated_device(path)) return open_emulated(path, options);
    return NotSupported(path + " is a block device whose zoned model is '" + (model.empty() ? "unknown" : model) +
                        "', not host-managed (mkfs.nyads --emulate lays out emulated zones on a plain disk). " +
                        kSupported);
  }
  if (S_ISCHR(st.st_mode)) {
    const std::string base = std::filesystem::path(path).filename().string();
    if (base.rfind("ng", 0) == 0) return open_nvme_device(path, options);
    return NotSupported(path + " is a character device but not an NVMe generic device (ngXnY). " + kSupported);
  }
  return NotSupported(path + " is neither a regular file, a block device nor a character device. " + kSupported);
}

}  // namespace nyads
