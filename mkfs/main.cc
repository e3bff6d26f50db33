// mkfs.nyads: make a nyads volume on a ZNS drive, an NVMe generic device, or a file (which
// becomes an emulated zoned device). Exit status 0 on success, 1 on any failure (mkfs(8)).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <span>

#include "mkfs/mkfs.h"
#include "nyads/emulated_device.h"
#include "nyads/units.h"

using namespace nyads;

namespace {

int fail(const std::string& message) {
  std::cerr << "mkfs.nyads: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "mkfs.nyads: make a nyads volume.\n\n"
      "DEVICE is a host-managed zoned block device (/dev/nvme0n1), an NVMe ZNS generic device\n"
      "(/dev/ng0n1), or a file: a new file is created as an emulated zoned device with the geometry\n"
      "options below, its whole size reserved on its filesystem (--sparse: only what is written). With --emulate, "
      "DEVICE may be a plain (not zoned) block device,\n"
      "laid out as an emulated zoned device the same way (--size defaults to the whole disk). mkfs.nyads refuses a "
      "device that holds a volume or any data\n"
      "unless -f is given. Exit status: 0 on success, 1 on failure."};
  app.set_version_flag("-V,--version", std::string("mkfs.nyads ") + NYADS_VERSION);
  std::string path, label, uuid_text;
  bool force = false, dry_run = false, quiet = false, emulate = false, sparse = false;
  std::string size = "16G", zone_size = "64M", zone_cap, block = "4096", max_append = "1M";
  std::uint32_t max_open = 14, max_active = 14;
  LayoutOptions layout;
  app.add_option("DEVICE", path, "Zoned device or file")->required();
  app.add_option("-L,--label", label, "Volume label (up to 63 bytes)");
  app.add_option("-U,--uuid", uuid_text, "Volume UUID (default: random)");
  app.add_flag("-f,--force", force,
               "Overwrite an existing volume, other data, or a file that is not an emulated device");
  app.add_flag("-n,--dry-run", dry_run, "Print what would be done; write nothing");
  app.add_flag("-q,--quiet", quiet, "Print only errors");
  app.add_flag("--emulate", emulate,
               "DEVICE is a plain block device: lay out emulated zones on it (geometry options apply)");
  auto* geometry = app.add_option_group("Emulated device (new files, or a disk with --emulate)");
  std::vector<CLI::Option*> geometry_options = {
      geometry->add_option("--size", size, "Device size, rounded down to whole zones")->capture_default_str(),
      geometry->add_option("--zone-size", zone_size, "Zone size")->capture_default_str(),
      geometry->add_flag("--sparse", sparse,
                         "A new file takes only the disk space written to it, not its size at once; writes fail "
                         "once its filesystem fills"),
      geometry->add_option("--zone-capacity", zone_cap, "Writable bytes per zone (default: 15/16 of the zone size)"),
      geometry->add_option("--block-size", block, "Logical block size: 512 or 4096")->capture_default_str(),
      geometry->add_option("--max-open", max_open, "Open-zone limit (0: none)")->capture_default_str(),
      geometry->add_option("--max-active", max_active, "Active-zone limit (0: none)")->capture_default_str(),
      geometry->add_option("--max-append", max_append, "Zone append size limit")->capture_default_str()};
  auto* roles = app.add_option_group("Layout (default: sized from the device)");
  // 0 means "automatic" inside (LayoutOptions): given on the command line it is refused, not
  // taken as "the default" behind the user's back. Journal and checkpoint need two zones each.
  const auto at_least_two = CLI::Range(2u, std::numeric_limits<std::uint32_t>::max());
  roles->add_option("--journal-zones", layout.journal_zones, "Zones for the journal (at least 2)")->check(at_least_two);
  roles->add_option("--checkpoint-zones", layout.checkpoint_zones, "Zones for checkpoints (at least 2)")
      ->check(at_least_two);
  roles->add_option("--reserved-zones", layout.reserved_zones, "Data zones kept free for cleaning (at least 1)")
      ->check(CLI::Range(1u, std::numeric_limits<std::uint32_t>::max()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }

  mkfs::Options options;
  options.label = label;
  options.force = force;
  options.dry_run = dry_run;
  options.layout = layout;
  if (!uuid_text.empty()) {
    auto u = format::parse_uuid(uuid_text);
    if (!u.ok()) return fail(u.status().message());
    options.uuid = *u;
  }
  bool geometry_given = false;
  for (auto* o : geometry_options) geometry_given = geometry_given || o->count() > 0;

  // What DEVICE is decides how to open it.
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return fail(path + ": " + std::strerror(errno));
  bool create = !exists;
  if (exists && S_ISREG(st.st_mode)) {
    std::array<std::uint8_t, 8> magic{};
    std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(magic.data()), magic.size());
    const bool emulated = looks_like_emulated_device(magic);
    if (!emulated && st.st_size > 0 && !force)
      return fail(path + " exists and is not an emulated zoned device (" +
                  format_size(static_cast<std::uint64_t>(st.st_size)) + "); -f replaces it with a new one");
    if (emulated && geometry_given && !force)
      return fail(
          path + " is an emulated zoned device already; its geometry is fixed. -f recreates it with the options given");
    create = !emulated || geometry_given;
  } else if (exists && S_ISBLK(st.st_mode) && emulate) {
    // A plain disk: emulated zones over the whole of it unless --size says less. Its old
    // content is kept from harm: a disk that is not blank or an emulated device needs -f.
    std::array<std::uint8_t, 4096> head{};
    std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(head.data()), head.size());
    const bool blank = std::all_of(head.begin(), head.end(), [](std::uint8_t b) { return b == 0; });
    if (!blank && !looks_like_emulated_device(std::span(head).first<8>()) && !force)
      return fail(path + " holds data (its first 4 KiB are not zeros); -f lays out emulated zones over it");
    if (geometry_options[0]->count() == 0) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      std::uint64_t bytes = 0;
      if (fd < 0 || ::ioctl(fd, BLKGETSIZE64, &bytes) != 0) return fail(path + ": size: " + std::strerror(errno));
      ::close(fd);
      // Room for the emulated device's header and zone table: a zone's worth is plenty.
      auto zone = parse_size(zone_size);
      if (!zone.ok()) return fail(zone.status().message());
      size = std::to_string(bytes > *zone ? bytes - *zone : 0);
    }
    create = true;
  } else if (exists && emulate) {
    return fail("--emulate is for a plain block device; " + path + " is not one");
  } else if (exists && geometry_given) {
    return fail(
        "--size, --zone-size and the other geometry options apply only when creating a file (or a disk with "
        "--emulate); " +
        path + " is a device");
  }

  std::unique_ptr<ZonedDevice> device;
  if (create) {
    EmulatedConfig c;
    try {
      auto parse = [](const std::string& t) {
        auto r = parse_size(t);
        if (!r.ok()) throw std::runtime_error(r.status().message());
        return *r;
      };
      c.block_size = static_cast<std::uint32_t>(parse(block));
      c.zone_size_bytes = parse(zone_size);
      c.zone_capacity_bytes =
          zone_cap.empty() ? c.zone_size_bytes / 16 * 15 / c.block_size * c.block_size : parse(zone_cap);
      c.max_append_bytes = static_cast<std::uint32_t>(parse(max_append));
      if (c.zone_size_bytes == 0) return fail("zone size must not be 0");
      const std::uint64_t zones = parse(size) / c.zone_size_bytes;
      if (zones == 0 || zones > UINT32_MAX)
        return fail("size " + size + " holds " + std::to_string(zones) + " zones of " + zone_size);
      c.zone_count = static_cast<std::uint32_t>(zones);
    } catch (const std::exception& e) {
      return fail(e.what());
    }
    c.max_open_zones = max_open;
    c.max_active_zones = max_active;
    const bool file = !(exists && S_ISBLK(st.st_mode));
    auto d = dry_run ? EmulatedDevice::create_memory(c)
                     : EmulatedDevice::create_file(path, c, true, sparse ? FileSpace::kSparse : FileSpace::kReserved);
    if (!d.ok()) {
      if (!exists) ::unlink(path.c_str());  // made here: not left half made
      const std::string sparse_way =
          "--sparse: the file then takes only what is written, and writes fail once its filesystem fills";
      std::string way_on;
      if (file && d.status().code() == Code::kNoSpace) way_on = " (a smaller --size, or " + sparse_way + ")";
      if (file && d.status().code() == Code::kNotSupported) way_on = " (" + sparse_way + ")";
      return fail(d.status().message() + way_on);
    }
    device = std::move(*d);
  } else {
    auto d = open_zoned_device(path, {.read_only = dry_run});
    if (!d.ok()) {
      // An emulated device whose own metadata is damaged cannot be reused as it is; -f with a
      // geometry makes the file anew.
      const bool damaged_emulated = S_ISREG(st.st_mode) && d.status().code() == Code::kCorruption;
      return fail(d.status().message() +
                  (damaged_emulated ? " (mkfs.nyads -f --size SIZE, with the zone options it was made with, makes the "
                                      "file anew; its data is lost)"
                                    : ""));
    }
    device = std::move(*d);
  }

  const bool tty = !quiet && ::isatty(STDERR_FILENO);
  options.progress = [&](std::uint32_t done, std::uint32_t total) {
    if (tty && total >= 16 && (done == total || done % std::max(1u, total / 100) == 0))
      std::fprintf(stderr, "\rresetting zones: %u/%u%s", done, total, done == total ? "\n" : "");
  };
  auto r = mkfs::format_volume(*device, options);
  if (!r.ok()) {
    if (create && !dry_run && !exists) ::unlink(path.c_str());  // made here: not left half made
    return fail(r.status().message());
  }
  if (!quiet) {
    if (dry_run)
      std::cout << "mkfs.nyads: dry run on " << path << ": would " << (create ? "create the emulated device, " : "")
                << "reset " << r->zones_reset << " zones and write this volume:\n";
    else
      std::cout << "mkfs.nyads: made a nyads volume on " << path << " (" << device->backend() << " backend)"
                << (r->zones_reset ? ", reset " + std::to_string(r->zones_reset) + " zones" : "") << "\n";
    std::cout << mkfs::describe(r->sb);
  }
  return 0;
}
