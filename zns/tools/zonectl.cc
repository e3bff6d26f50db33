// nyads-zonectl: look at and drive a zoned device through nyads' ZonedDevice layer, whatever
// its backend. Handy to create an emulated device, and to see what a drive does.
#include <xxhash.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "nyads/aligned_buffer.h"
#include "nyads/emulated_device.h"
#include "nyads/sync_device.h"
#include "nyads/units.h"
#include "nyads/zoned_device.h"

namespace {

using namespace nyads;

int fail(const Status& s) {
  std::cerr << "nyads-zonectl: " << s.to_string() << "\n";
  return 1;
}

// Block contents that say where they belong: 8-byte words of xxh3(seed, lba, word).
void fill_pattern(std::uint8_t* p, std::uint64_t lba, std::uint32_t blocks, std::uint32_t bs, std::uint64_t seed) {
  for (std::uint32_t b = 0; b < blocks; ++b) {
    for (std::uint32_t w = 0; w < bs / 8; ++w) {
      const std::uint64_t key[2] = {lba + b, w};
      const std::uint64_t v = XXH3_64bits_withSeed(key, sizeof key, seed);
      std::memcpy(p + std::size_t{b} * bs + std::size_t{w} * 8, &v, 8);
    }
  }
}

std::uint64_t size_arg(const std::string& text) {
  auto r = parse_size(text);
  if (!r.ok()) throw CLI::ValidationError(r.status().message());
  return *r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nyads-zonectl: inspect and drive a zoned device (emulated file, zoned block device, NVMe /dev/ngXnY)"};
  app.require_subcommand(1);

  // create
  auto* create = app.add_subcommand("create", "Create an emulated zoned device in a regular file (sparse)");
  std::string path;
  std::string size = "4G", zone_size = "64M", zone_cap = "60M", block = "4096", max_append = "1M";
  std::uint32_t max_open = 14, max_active = 14;
  bool force = false;
  create->add_option("FILE", path, "File to create")->required();
  create->add_option("--size", size, "Device size (rounded down to whole zones)")->capture_default_str();
  create->add_option("--zone-size", zone_size, "Zone size")->capture_default_str();
  create->add_option("--zone-capacity", zone_cap, "Writable bytes per zone (<= zone size)")->capture_default_str();
  create->add_option("--block-size", block, "Logical block size: 512 or 4096")->capture_default_str();
  create->add_option("--max-open", max_open, "Open-zone limit (0: none)")->capture_default_str();
  create->add_option("--max-active", max_active, "Active-zone limit (0: none)")->capture_default_str();
  create->add_option("--max-append", max_append, "Zone append size limit")->capture_default_str();
  create->add_flag("-f,--force", force, "Replace an existing file");

  // commands on an existing device
  std::string dev_path;
  std::uint32_t zone = 0, count = UINT32_MAX, blocks = 1;
  std::uint64_t lba = 0, seed = 1;
  bool all = false;
  // Every command but create takes the device first: nyads-zonectl CMD DEVICE [ARGS].
  auto device_command = [&](const std::string& cmd, const std::string& what) {
    auto* c = app.add_subcommand(cmd, what);
    c->add_option("DEVICE", dev_path, "Emulated device file, zoned block device, or /dev/ngXnY")->required();
    return c;
  };
  auto* info = device_command("info", "Print the backend and geometry");
  auto* report = device_command("report", "Report zones: state, write pointer, capacity");
  report->add_option("--zone", zone, "First zone");
  report->add_option("--count", count, "How many zones");
  std::vector<CLI::App*> actions;
  for (const char* name : {"reset", "open", "close", "finish"}) {
    auto* a = device_command(name, std::string("Zone action: ") + name + " one zone, or --all");
    a->add_option("ZONE", zone, "Zone number");
    a->add_flag("--all", all, "Every zone the action applies to");
    actions.push_back(a);
  }
  auto* write = device_command("write", "Write pattern blocks at the zone's write pointer");
  auto* append = device_command("append", "Zone-append pattern blocks; prints where they landed");
  for (auto* c : {write, append}) {
    c->add_option("ZONE", zone, "Zone number")->required();
    c->add_option("--blocks", blocks, "Blocks to write")->capture_default_str();
    c->add_option("--seed", seed, "Pattern seed")->capture_default_str();
  }
  auto* read = device_command("read", "Read blocks; print their XXH3 or verify a pattern");
  read->add_option("LBA", lba, "First block")->required();
  read->add_option("--blocks", blocks, "Blocks to read")->capture_default_str();
  read->add_option("--verify-seed", seed, "Check that the blocks hold this seed's pattern");
  auto* flush = device_command("flush", "Flush the device's volatile cache");

  CLI11_PARSE(app, argc, argv);
  const bool verify = read->count("--verify-seed") > 0;

  try {
    if (create->parsed()) {
      EmulatedConfig c;
      c.block_size = static_cast<std::uint32_t>(size_arg(block));
      c.zone_size_bytes = size_arg(zone_size);
      c.zone_capacity_bytes = size_arg(zone_cap);
      if (c.zone_size_bytes == 0) return fail(InvalidArgument("zone size must not be 0"));
      const std::uint64_t zones = size_arg(size) / c.zone_size_bytes;
      if (zones == 0 || zones > UINT32_MAX)
        return fail(InvalidArgument("size " + size + " holds " + std::to_string(zones) + " zones of " + zone_size));
      c.zone_count = static_cast<std::uint32_t>(zones);
      c.max_open_zones = max_open;
      c.max_active_zones = max_active;
      c.max_append_bytes = static_cast<std::uint32_t>(size_arg(max_append));
      auto dev = EmulatedDevice::create_file(path, c, force);
      if (!dev.ok()) return fail(dev.status());
      std::cout << path << ": emulated zoned device, " << (*dev)->geometry().to_string() << "\n";
      return 0;
    }
  } catch (const CLI::ValidationError& e) {
    std::cerr << "nyads-zonectl: " << e.what() << "\n";
    return 2;
  }

  auto opened = open_zoned_device(dev_path, {.read_only = info->parsed() || report->parsed() || read->parsed()});
  if (!opened.ok()) return fail(opened.status());
  ZonedDevice& dev = **opened;
  const Geometry& g = dev.geometry();
  SyncDevice sync(dev);

  if (info->parsed()) {
    std::cout << dev.name() << ": " << dev.backend() << " backend\n"
              << g.to_string() << "\n"
              << "capacity " << format_size(g.total_blocks() * g.block_size) << ", writable "
              << format_size(std::uint64_t{g.zone_count} * g.zone_capacity * g.block_size) << "\n";
    return 0;
  }
  if (report->parsed()) {
    auto zones = dev.report_zones(zone, count);
    if (!zones.ok()) return fail(zones.status());
    std::printf("%-8s %-16s %-14s %-14s %s\n", "zone", "state", "start", "wp", "capacity");
    for (const ZoneInfo& z : *zones)
      std::printf("%-8u %-16s %-14llu %-14llu %llu\n", g.zone_of(z.start),
                  std::string(zone_state_name(z.state)).c_str(), static_cast<unsigned long long>(z.start),
                  static_cast<unsigned long long>(z.write_pointer), static_cast<unsigned long long>(z.capacity));
    return 0;
  }
  const ZoneAction action_kinds[] = {ZoneAction::kReset, ZoneAction::kOpen, ZoneAction::kClose, ZoneAction::kFinish};
  for (std::size_t i = 0; i < actions.size(); ++i) {
    if (!actions[i]->parsed()) continue;
    Status s = all ? dev.manage_all_zones(action_kinds[i]) : dev.manage_zone(action_kinds[i], zone);
    // A command's effect outlives it, as a write's does: a reset of the emulated device is
    // durable at the next flush.
    if (s.ok()) s = sync.flush();
    return s.ok() ? 0 : fail(s);
  }
  if (write->parsed() || append->parsed()) {
    if (zone >= g.zone_count)
      return fail(OutOfRange("zone " + std::to_string(zone) + " beyond the device's " + std::to_string(g.zone_count)));
    auto z = dev.report_zones(zone, 1);
    if (!z.ok()) return fail(z.status());
    AlignedBuffer buf(std::size_t{blocks} * g.block_size);
    fill_pattern(buf.data(), (*z)[0].write_pointer, blocks, g.block_size, seed);
    if (write->parsed()) {
      Status s = sync.write((*z)[0].write_pointer, blocks, buf.data());
      if (!s.ok()) return fail(s);
      std::cout << "wrote " << blocks << " blocks at " << (*z)[0].write_pointer << "\n";
    } else {
      auto where = sync.append(g.zone_start(zone), blocks, buf.data());
      if (!where.ok()) return fail(where.status());
      if (*where != (*z)[0].write_pointer) {
        // The pattern assumed the write pointer: rewrite it for where the data really went.
        std::cerr << "nyads-zonectl: note: another writer moved the write pointer\n";
      }
      std::cout << "appended " << blocks << " blocks at " << *where << "\n";
    }
    Status f = sync.flush();
    return f.ok() ? 0 : fail(f);
  }
  if (read->parsed()) {
    AlignedBuffer buf(std::size_t{blocks} * g.block_size);
    Status s = sync.read(lba, blocks, buf.data());
    if (!s.ok()) return fail(s);
    if (verify) {
      AlignedBuffer want(buf.size());
      fill_pattern(want.data(), lba, blocks, g.block_size, seed);
      for (std::uint32_t b = 0; b < blocks; ++b) {
        if (std::memcmp(buf.data() + std::size_t{b} * g.block_size, want.data() + std::size_t{b} * g.block_size,
                        g.block_size) != 0) {
          std::cerr << "nyads-zonectl: block " << lba + b << " does not hold seed " << seed << "'s pattern\n";
          return 1;
        }
      }
      std::cout << "verified " << blocks << " blocks at " << lba << "\n";
    } else {
      std::printf("%016llx\n", static_cast<unsigned long long>(XXH3_64bits(buf.data(), buf.size())));
    }
    return 0;
  }
  if (flush->parsed()) {
    Status s = sync.flush();
    return s.ok() ? 0 : fail(s);
  }
  return 0;
}
