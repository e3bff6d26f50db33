// The crash suites' workload and oracle: random writes (some FUA, some whole-namespace
// sweeps), trims, flushes and checkpoints over two namespaces, with a model of what each
// block may hold after a crash — the value it had at the last flush or FUA, or one written
// since — checked after recovery. The suites differ in what crashes: the faulty device's
// power (store_crash_test) or the host under the emulated file (emulated_crash_test).
#pragma once

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "nyads/store.h"

namespace nyads::test {

class CrashWorkload {
 public:
  static constexpr std::uint32_t kNamespaces = 2;
  static constexpr std::uint64_t kBlocks = 160;  // per namespace, 4 KiB each
  static constexpr int kOps = 90;
  // The sweeps try every crash point; under the sanitizers (about 10x slower) every fourth, a
  // different quarter per seed: they look for memory errors, the normal build for crash cases.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr std::uint64_t kPointStride = 4;
#else
  static constexpr std::uint64_t kPointStride = 1;
#endif

  // Makes the namespaces, before any crash is armed. Thin: on a small device, promises would
  // not leave room for both.
  std::string create_namespaces(Store& st) {
    for (std::uint32_t i = 0; i < kNamespaces; ++i) {
      auto ns = st.create_namespace("ns" + std::to_string(i), kBlocks * 4096, 4096, true);
      if (!ns.ok()) return "creating ns" + std::to_string(i) + ": " + ns.status().to_string();
      ids_[i] = ns->id;
    }
    return {};
  }

  // Runs the ops of `seed` until they end or one fails. A failure while `has_power()` says
  // the power is still on is the store's fault, returned as a message; one after is the crash.
  std::string run(Store& st, std::uint64_t seed, const std::function<bool()>& has_power) {
    std::mt19937_64 rng(seed);
    std::uint64_t tag = seed << 32;
    for (int op = 0; op < kOps; ++op) {
      const std::uint32_t n = static_cast<std::uint32_t>(rng() % kNamespaces);
      const std::uint64_t first = rng() % kBlocks;
      const std::uint64_t count = std::min<std::uint64_t>(1 + rng() % 8, kBlocks - first);
      const int kind = static_cast<int>(rng() % 10);
      Status s;
      if (kind < 6 && rng() % 16 == 0) {  // a sweep: the whole namespace rewritten, no flush
        // (Two sweeps between commits empty the zones the first one filled: zones no durable
        // record names, reset at once with their pending records dropped.)
        for (std::uint64_t b = 0; b < kBlocks && s.ok(); b += 32) {
          std::vector<std::uint8_t> data;
          for (std::uint64_t k = 0; k < 32; ++k) {
            model_[n][b + k].insert(++tag);
            auto bytes = block_bytes(tag);
            data.insert(data.end(), bytes.begin(), bytes.end());
          }
          s = st.write(ids_[n], b * 4096, data);
        }
      } else if (kind < 6) {  // write (sometimes FUA)
        const bool fua = rng() % 6 == 0;
        std::vector<std::uint8_t> data;
        std::vector<std::uint64_t> tags;
        for (std::uint64_t b = 0; b < count; ++b) {
          tags.push_back(++tag);
          auto bytes = block_bytes(tag);
          data.insert(data.end(), bytes.begin(), bytes.end());
        }
        for (std::uint64_t b = 0; b < count; ++b) model_[n][first + b].insert(tags[b]);
        s = st.write(ids_[n], first * 4096, data, fua);
        if (s.ok() && fua)
          for (std::uint64_t b = 0; b < count; ++b) model_[n][first + b] = {tags[b]};
      } else if (kind < 8) {  // trim
        for (std::uint64_t b = 0; b < count; ++b) model_[n][first + b].insert(0);
        s = st.trim(ids_[n], first * 4096, count * 4096);
      } else {  // flush, or a checkpoint (which commits first): every block's latest value is now its only one
        // A checkpoint holds the maps, so later recoveries replay over a checkpoint with
        // extents (opened without reading them: the extent index, store_loading.cc).
        s = rng() % 3 == 0 ? st.checkpoint() : st.flush();
        if (s.ok()) {
          // What each block holds now is what the last write or trim put there: recover it
          // by reading (the store is up), then pin it.
          for (std::uint32_t i = 0; i < kNamespaces; ++i) {
            std::vector<std::uint8_t> got(kBlocks * 4096);
            if (!st.read(ids_[i], 0, got).ok()) continue;
            for (std::uint64_t b = 0; b < kBlocks; ++b)
              if (auto t = tag_of(block_of(got, b), model_[i][b])) model_[i][b] = {*t};
          }
        }
      }
      if (!s.ok()) {
        if (has_power()) return "op " + std::to_string(op) + " failed with power on: " + s.to_string();
        return {};
      }
    }
    return {};
  }

  // After recovery: every block reads as one of its candidates, never another namespace's
  // data or garbage.
  std::string verify(Store& st) const {
    for (std::uint32_t i = 0; i < kNamespaces; ++i) {
      std::vector<std::uint8_t> got(kBlocks * 4096);
      Status s = st.read(ids_[i], 0, got);
      if (!s.ok()) return "ns" + std::to_string(i) + ": " + s.to_string();
      for (std::uint64_t b = 0; b < kBlocks; ++b)
        if (!tag_of(block_of(got, b), model_[i][b]))
          return "ns" + std::to_string(i) + " block " + std::to_string(b) +
                 " holds neither its flushed value nor a later one";
    }
    return {};
  }

 private:
  using Candidates = std::set<std::uint64_t>;  // a block's possible contents, as tags (0 = zeros)

  // A block's bytes: pseudo-random from its tag, which its first 8 bytes carry, so a block
  // read back names the one candidate it can be (checking every candidate's bytes was most of
  // the suite's time once sweeps gave blocks dozens of candidates).
  static std::vector<std::uint8_t> block_bytes(std::uint64_t tag) {
    std::vector<std::uint8_t> b(4096, 0);
    if (tag == 0) return b;
    // Every 8 bytes differ, and differ between tags (a byte-wise generator took half the
    // suite's time: every point replays its workload, and sweeps write whole namespaces).
    for (std::uint64_t i = 0; i < 512; ++i) {
      const std::uint64_t word = i == 0 ? tag : (tag * 0x9E3779B97F4A7C15ull) ^ (i * 0xC2B2AE3D27D4EB4Full);
      std::memcpy(b.data() + i * 8, &word, 8);
    }
    return b;
  }

  static std::span<const std::uint8_t> block_of(const std::vector<std::uint8_t>& blocks, std::uint64_t b) {
    return std::span<const std::uint8_t>(blocks).subspan(b * 4096, 4096);
  }

  // The tag a block read back holds, if it is one of `candidates`' bytes exactly.
  static std::optional<std::uint64_t> tag_of(std::span<const std::uint8_t> got, const Candidates& candidates) {
    std::uint64_t tag = 0;
    std::memcpy(&tag, got.data(), 8);
    if (!candidates.count(tag)) return std::nullopt;
    const auto want = block_bytes(tag);
    if (!std::equal(want.begin(), want.end(), got.begin(), got.end())) return std::nullopt;
    return tag;
  }

  std::vector<std::vector<Candidates>> model_ =
      std::vector<std::vector<Candidates>>(kNamespaces, std::vector<Candidates>(kBlocks, Candidates{0}));
  std::uint32_t ids_[kNamespaces] = {};
};

}  // namespace nyads::test
