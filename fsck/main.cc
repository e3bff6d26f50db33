// fsck.nyads: check (and with -y repair) a nyads volume. Exit status as fsck(8) documents it:
// 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error, 16 usage error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "fsck/fsck.h"

using namespace nyads;

int main(int argc, char** argv) {
  CLI::App app{
      "fsck.nyads: check a nyads volume and repair what can be repaired.\n\n"
      "Checks both superblock copies, the device geometry, every zone's state against its role,\n"
      "the newest checkpoint (every block's checksum, order and chain) and the journal from where\n"
      "replay starts, cross-checking every namespace and extent reference. Each problem names the\n"
      "zone, the byte offset in it, the structure, and what was expected.\n\n"
      "Exit status: 0 clean, 1 errors corrected, 4 errors left uncorrected, 8 operational error,\n"
      "16 usage error."};
  app.set_version_flag("-V,--version", std::string("fsck.nyads ") + NYADS_VERSION);
  std::string path;
  bool check_only = false, yes = false, verbose = false, json = false;
  app.add_option("DEVICE", path, "Zoned device or emulated device file")->required();
  auto* n = app.add_flag("-n,--no", check_only, "Check only: open read-only and change nothing");
  app.add_flag("-y,--yes", yes, "Repair every problem that can be repaired, without asking")->excludes(n);
  app.add_flag("-v,--verbose", verbose, "Also say what was read and found");
  app.add_flag("--json", json, "Print a machine-readable report");
  bool scrub = false;
  app.add_flag("--scrub", scrub, "Also read every live data block and check its checksum");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 16;
  }

  fsck::Options options;
  options.repair = yes;
  options.scrub = scrub;
  const bool interactive = !check_only && !yes && ::isatty(STDIN_FILENO) && !json;
  if (!check_only && !yes && !interactive && !json)
    std::cerr << "fsck.nyads: no terminal to ask on: checking only (-n); pass -y to repair\n";
  if (interactive) {
    options.confirm = [](const fsck::Problem& p) {
      std::cout << p.message << ". Fix? [y/N] " << std::flush;
      std::string answer;
      std::getline(std::cin, answer);
      return answer == "y" || answer == "Y" || answer == "yes";
    };
  }
  const bool read_only = !yes && !interactive;
  auto device = open_zoned_device(path, {.read_only = read_only});
  if (!device.ok()) {
    if (json) {
      fsck::Report r;
      r.device = path;
      r.operational_error = device.status().message();
      std::cout << fsck::to_json(r);
    } else {
      std::cerr << "fsck.nyads: " << device.status().message() << "\n";
    }
    return 8;
  }
  fsck::Report report = fsck::check_volume(**device, options);
  if (json)
    std::cout << fsck::to_json(report);
  else if (report.operational_error)
    std::cerr << fsck::to_text(report, verbose);
  else
    std::cout << fsck::to_text(report, verbose);
  return report.exit_code();
}
