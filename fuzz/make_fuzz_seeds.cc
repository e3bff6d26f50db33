// Writes seed inputs for the fuzz targets with the real encoders:
//   make_fuzz_seeds DIR   ->  DIR/<target>/<seed> for every fuzz target
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "fs/nbd/protocol.h"
#include "fuzz/fuzz_common.h"
#include "tests/format_samples.h"
#include "zns/emulated_format.h"

using namespace nyads;
namespace ef = nyads::emulated_format;

static void save(const std::filesystem::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir = std::filesystem::path(argv[1]) / "emulated_format_fuzz";
  std::filesystem::create_directories(dir);
  const EmulatedConfig c = nyads::fuzz::emulated_config();
  std::vector<std::uint8_t> h(ef::kHeaderBytes);
  ef::encode_header(ef::layout_for(c), h);
  save(dir / "header-small", h);
  ef::encode_header(ef::layout_for(c, 1), h);
  save(dir / "header-small-v1", h);
  ef::encode_header(ef::layout_for(EmulatedConfig{}), h);
  save(dir / "header-default", h);
  ef::ZoneTable t;
  t.generation = 3;
  const Geometry g = c.geometry();
  for (std::uint32_t z = 0; z < g.zone_count; ++z)
    t.zones.push_back({g.zone_start(z), g.zone_start(z), g.zone_capacity, ZoneState::kEmpty});
  t.zones[1] = {g.zone_start(1), g.zone_start(1) + 7, g.zone_capacity, ZoneState::kClosed};
  t.zones[2] = {g.zone_start(2), g.zone_start(2) + g.zone_capacity, g.zone_capacity, ZoneState::kFull};
  std::vector<std::uint8_t> tb1(ef::layout_for(c, 1).table_slot_bytes);
  ef::encode_zone_table(t, 1, tb1);
  save(dir / "table-small-v1", tb1);
  t.unsynced.resize(g.zone_count);
  for (std::uint32_t z = 0; z < g.zone_count; ++z) t.unsynced[z].from = t.zones[z].write_pointer - t.zones[z].start;
  t.unsynced[1] = {3, 0x1234567890abcdefull};  // blocks 3..6 of zone 1 to check
  std::vector<std::uint8_t> tb(ef::layout_for(c).table_slot_bytes);
  ef::encode_zone_table(t, ef::kVersion, tb);
  save(dir / "table-small", tb);

  // The volume format, sealed with the seeds the fuzz targets use.
  namespace fmt = nyads::format;
  constexpr std::uint64_t kFuzzSeed = nyads::fuzz::kSeed;
  const std::filesystem::path root(argv[1]);
  for (const char* target : {"superblock_fuzz", "journal_fuzz", "checkpoint_fuzz"})
    std::filesystem::create_directories(root / target);
  std::vector<std::uint8_t> b(fmt::kMetaBlockSize);
  fmt::encode_superblock(nyads::test::sample_superblock(), b);
  save(root / "superblock_fuzz" / "sample", b);
  if (!fmt::encode_journal_block(nyads::test::sample_journal_block(), kFuzzSeed, b).ok()) return 1;
  save(root / "journal_fuzz" / "every-record", b);
  const fmt::CheckpointBlock blocks[] = {
      {5, 0,
       std::vector<fmt::NamespaceEntry>{{1, 0, 4096, 1ull << 30, 17, "web-db"},
                                        {2, fmt::kNamespaceQuarantined, 512, 8192, 0, "cache"}}},
      {5, 1, std::vector<fmt::record::Extent>{{1, 0, 98304, {1, 2, 3}}, {2, 1, 98400, {4}}}},
      {5, 2, std::vector<fmt::ZoneEntry>{{6, 1, 100, 42}, {7, 2, 0, 0}}},
      {5, 3, fmt::CheckpointCommit{3, 3, 40, 2, 7, 0xabcdef, 1700000000, {4, 5}}},
      {5, 1,
       fmt::PackedExtents{
           {{1, 0, 98304, {1, 2, 3}}, {1, 5, 98200, {4}}, {2, 1, 98400, {5, 6}}, {1, 4, 1ull << 40, {7}}}}},
      {5, 1, fmt::ExtentIndex{{{1, 10, 0, 13, 0x1122334455667788}, {3, 2, 100, 102, 0x99}}}}};
  const char* names[] = {"namespaces", "extents", "zones", "commit", "packed-extents", "extent-index"};
  for (int i = 0; i < 6; ++i) {
    if (!fmt::encode_checkpoint_block(blocks[i], kFuzzSeed, b).ok()) return 1;
    save(root / "checkpoint_fuzz" / names[i], b);
  }

  // NBD client streams: a limits byte, client flags, then options and requests
  // (nbd_protocol_fuzz.cc says how they are read).
  namespace nbd = nyads::nbd;
  std::filesystem::create_directories(root / "nbd_protocol_fuzz");
  auto stream = [](std::uint8_t limits, std::uint32_t client_flags,
                   std::initializer_list<std::vector<std::uint8_t>> parts) {
    std::vector<std::uint8_t> s{limits};
    const auto f = nbd::encode_client_flags(client_flags);
    s.insert(s.end(), f.begin(), f.end());
    for (const auto& p : parts) s.insert(s.end(), p.begin(), p.end());
    return s;
  };
  auto request = [](std::uint16_t flags, std::uint16_t type, std::uint64_t cookie, std::uint64_t offset,
                    std::uint32_t length) {
    const auto header = nbd::encode_request_header(nbd::Request{flags, type, cookie, offset, length, {}});
    std::vector<std::uint8_t> r(header.begin(), header.end());
    if (type == nbd::kCmdWrite) r.resize(r.size() + length, 0xab);
    return r;
  };
  const std::uint16_t infos[] = {nbd::kInfoBlockSize, nbd::kInfoName};
  const std::string base_allocation[] = {"base:allocation"};
  save(root / "nbd_protocol_fuzz" / "go-session",
       stream(
           0, nbd::kFlagCFixedNewstyle | nbd::kFlagCNoZeroes,
           {nbd::encode_option(nbd::kOptStructuredReply),
            nbd::encode_meta_context_option(nbd::kOptSetMetaContext, "disk0", base_allocation),
            nbd::encode_go_option(nbd::kOptGo, "disk0", infos), request(nbd::kCmdFlagFua, nbd::kCmdWrite, 1, 0, 16),
            request(0, nbd::kCmdRead, 2, 0, 4096), request(0, nbd::kCmdFlush, 3, 0, 0),
            request(0, nbd::kCmdTrim, 4, 4096, 4096), request(nbd::kCmdFlagNoHole, nbd::kCmdWriteZeroes, 5, 8192, 4096),
            request(nbd::kCmdFlagReqOne, nbd::kCmdBlockStatus, 6, 0, 1 << 20), request(0, nbd::kCmdCache, 7, 0, 4096),
            request(0, nbd::kCmdDisc, 8, 0, 0)}));
  const std::string name = "disk0";
  save(root / "nbd_protocol_fuzz" / "export-name",
       stream(0, nbd::kFlagCFixedNewstyle,
              {nbd::encode_option(nbd::kOptExportName,
                                  std::span(reinterpret_cast<const std::uint8_t*>(name.data()), name.size())),
               request(0, nbd::kCmdRead, 1, 512, 512), request(0, nbd::kCmdDisc, 2, 0, 0)}));
  save(root / "nbd_protocol_fuzz" / "list-info",
       stream(0, nbd::kFlagCFixedNewstyle | nbd::kFlagCNoZeroes,
              {nbd::encode_option(nbd::kOptList), nbd::encode_go_option(nbd::kOptInfo, ""),
               nbd::encode_meta_context_option(nbd::kOptListMetaContext, "", {}), nbd::encode_option(nbd::kOptStartTls),
               nbd::encode_option(nbd::kOptAbort)}));
  // The small limits (byte 0 = 3): an option and a write at them, an unknown command, a write past them.
  save(root / "nbd_protocol_fuzz" / "small-limits",
       stream(3, nbd::kFlagCFixedNewstyle,
              {nbd::encode_option(nbd::kOptGo, std::vector<std::uint8_t>(64, 0)), request(0, nbd::kCmdWrite, 1, 0, 512),
               request(0, 42, 2, 0, 0), request(0, nbd::kCmdWrite, 3, 0, 513)}));
  return 0;
}
