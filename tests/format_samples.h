// Sample structures for the format tests and fuzz seeds: one of each, with every field set.
#pragma once

#include "nyads/format.h"

namespace nyads::test {

inline format::Superblock sample_superblock() {
  format::Superblock sb;
  sb.uuid = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0x4c, 0xde, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
  sb.generation = 3;
  sb.created = 1700000000;
  sb.label = "web-db";
  sb.block_size = 4096;
  sb.zone_count = 64;
  sb.zone_size = 16384;
  sb.zone_capacity = 15360;
  sb.max_open_zones = 14;
  sb.max_active_zones = 14;
  sb.max_append_blocks = 256;
  sb.journal_zones = {2, 2};
  sb.checkpoint_zones = {4, 2};
  sb.data_zones = {6, 58};
  sb.reserved_data_zones = 2;
  return sb;
}

inline format::JournalBlock sample_journal_block() {
  namespace r = format::record;
  format::JournalBlock b;
  b.seq = 42;
  b.records = {r::NamespaceCreate{7, 4096, 1ull << 30, "web-db"},
               r::Extent{7, 100, 6 * 16384 + 8, {0xdeadbeef, 0x01020304, 0xffffffff}},
               r::Trim{7, 200, 16},
               r::NamespaceResize{7, 2ull << 30},
               r::ZoneReset{9},
               r::CheckpointDone{5, 4, 12},
               r::Moved{7, 7 * 16384, {{100, 2}, {300, 1}}},
               r::NamespaceDelete{7},
               r::UnflushedCommit{40}};
  return b;
}

}  // namespace nyads::test
