#include "fs/daemon/control_commands.h"

#include <charconv>

#include "nyads/format.h"

namespace nyads::daemon {

namespace {
std::string n(std::uint64_t v) { return std::to_string(v); }

Result<std::uint64_t> number(const std::string& text, const char* what) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    return InvalidArgument(std::string(what) + " '" + text + "' is not a number of bytes");
  return v;
}

control::Record ns_record(const NamespaceInfo& info, const ControlContext& ctx) {
  return {{"name", info.name},
          {"id", n(info.id)},
          {"size", n(info.size_bytes)},
          {"block_size", n(info.block_size)},
          {"allocated", n(info.written_bytes)},
          {"provisioning", info.thin ? "thin" : "promised"},
          {"connections", n(ctx.connections_to(info.id))},
          {"ublk", ctx.ublk_device(info.id).value_or("-")},
          {"state", info.quarantined ? "quarantined" : "ok"}};
}

Status want_args(const control::Request& r, std::size_t min, std::size_t max, const char* usage) {
  if (r.args.size() < min || r.args.size() > max) return InvalidArgument("usage: " + std::string(usage));
  return Status::Ok();
}

control::Response fail(Status s) { return {std::move(s), {}}; }
}  // namespace

control::Response run_control(const control::Request& r, ControlContext& ctx) {
  Store& store = ctx.store();
  const std::string& c = r.command;
  if (c == "ns-list") {
    if (auto s = want_args(r, 0, 0, "ns-list"); !s.ok()) return fail(s);
    control::Response out;
    for (const auto& info : store.list_namespaces()) out.records.push_back(ns_record(info, ctx));
    return out;
  }
  if (c == "ns-show") {
    if (auto s = want_args(r, 1, 1, "ns-show NAME"); !s.ok()) return fail(s);
    auto info = store.find_namespace(r.args[0]);
    if (!info.ok()) return fail(info.status());
    return {Status::Ok(), {ns_record(*info, ctx)}};
  }
  if (c == "ns-create") {
    if (auto s = want_args(r, 2, 4, "ns-create NAME SIZE_BYTES [BLOCK_SIZE] [thin]"); !s.ok()) return fail(s);
    auto size = number(r.args[1], "size");
    if (!size.ok()) return fail(size.status());
    const bool thin = r.args.back() == "thin" && r.args.size() > 2;
    if (r.args.size() == 4 && !thin) return fail(InvalidArgument("ns-create: the fourth argument can only be 'thin'"));
    std::uint64_t bs = 4096;
    if (r.args.size() - thin == 3) {
      auto b = number(r.args[2], "block size");
      if (!b.ok()) return fail(b.status());
      bs = *b;
    }
    if (bs != 512 && bs != 4096) return fail(InvalidArgument("block size " + n(bs) + " is not 512 or 4096"));
    auto info = store.create_namespace(r.args[0], *size, static_cast<std::uint32_t>(bs), thin);
    if (!info.ok()) return fail(info.status());
    return {Status::Ok(), {ns_record(*info, ctx)}};
  }
  if (c == "ns-delete") {
    if (auto s = want_args(r, 1, 2, "ns-delete NAME [force]"); !s.ok()) return fail(s);
    const bool force = r.args.size() == 2 && r.args[1] == "force";
    if (r.args.size() == 2 && !force)
      return fail(InvalidArgument("ns-delete: the second argument can only be 'force'"));
    auto info = store.find_namespace(r.args[0]);
    if (!info.ok()) return fail(info.status());
    const std::size_t k = ctx.connections_to(info->id);
    const auto ublk = ctx.ublk_device(info->id);
    if (k > 0 || ublk) {
      if (!force)
        return fail(Status(Code::kBusy, "namespace '" + info->name + "' is attached" +
                                            (k > 0 ? " by " + n(k) + " NBD connection(s)" : "") +
                                            (ublk ? std::string(k > 0 ? " and" : "") + " as " + *ublk : "") +
                                            ": detach it first, or delete with --force to disconnect it"));
      ctx.disconnect(info->id);
    }
    Status s = store.delete_namespace(r.args[0]);
    if (!s.ok()) return fail(s);
    return {Status::Ok(), {{{"name", info->name}, {"deleted", "yes"}}}};
  }
  if (c == "ns-resize") {
    if (auto s = want_args(r, 2, 3, "ns-resize NAME SIZE_BYTES [discard]"); !s.ok()) return fail(s);
    auto size = number(r.args[1], "size");
    if (!size.ok()) return fail(size.status());
    const bool discard = r.args.size() == 3 && r.args[2] == "discard";
    if (auto found = store.find_namespace(r.args[0]); found.ok())
      if (auto ublk = ctx.ublk_device(found->id))
        return fail(Status(Code::kBusy, "namespace '" + found->name + "' is attached as " + *ublk +
                                            ", whose size is fixed while it exists: detach it, resize, attach again"));
    if (r.args.size() == 3 && !discard)
      return fail(InvalidArgument("ns-resize: the third argument can only be 'discard'"));
    Status s = store.resize_namespace(r.args[0], *size, discard);
    if (!s.ok()) return fail(s);
    auto info = store.find_namespace(r.args[0]);
    if (!info.ok()) return fail(info.status());
    return {Status::Ok(), {ns_record(*info, ctx)}};
  }
  if (c == "ns-attach" || c == "ns-detach") {
    const bool attach = c == "ns-attach";
    if (auto s = want_args(r, 2, 3, attach ? "ns-attach NAME ublk" : "ns-detach NAME ublk [force]"); !s.ok())
      return fail(s);
    if (r.args[1] != "ublk")
      return fail(InvalidArgument(
          "ns-" + std::string(attach ? "attach" : "detach") +
          ": only 'ublk' devices are attached by the daemon (NBD clients connect by name: nbd-client -N " + r.args[0] +
          ")"));
    const bool force = r.args.size() == 3 && r.args[2] == "force";
    if (r.args.size() == 3 && (attach || !force))
      return fail(InvalidArgument("ns-detach: the third argument can only be 'force'"));
    auto info = store.find_namespace(r.args[0]);
    if (!info.ok()) return fail(info.status());
    Status s = attach ? ctx.attach_ublk(*info) : ctx.detach_ublk(*info, force);
    if (!s.ok()) return fail(s);
    control::Response later;
    later.deferred = true;
    return later;
  }
  if (c == "status") {
    if (auto s = want_args(r, 0, 0, "status"); !s.ok()) return fail(s);
    control::Record rec = ctx.daemon_status();
    const StoreStats st = store.stats();
    const auto& sb = store.superblock();
    rec.emplace_back("uuid", format::uuid_to_string(sb.uuid));
    rec.emplace_back("label", sb.label);
    rec.emplace_back("namespaces", n(store.list_namespaces().size()));
    rec.emplace_back("data_zones", n(st.data_zones));
    rec.emplace_back("free_zones", n(st.free_zones));
    rec.emplace_back("zone_capacity_bytes", n(sb.zone_capacity * sb.block_size));
    rec.emplace_back("space_bytes", n(st.space_bytes));
    rec.emplace_back("promised_bytes", n(st.claimed_bytes));
    rec.emplace_back("unpromised_bytes", n(st.space_bytes - std::min(st.space_bytes, st.claimed_bytes)));
    rec.emplace_back("new_namespace_max_bytes", n(st.new_namespace_bytes));
    rec.emplace_back("live_bytes", n(st.live_bytes));
    return {Status::Ok(), {rec}};
  }
  if (c == "stats") {
    if (auto s = want_args(r, 0, 0, "stats"); !s.ok()) return fail(s);
    const StoreStats st = store.stats();
    char wa[32];
    std::snprintf(wa, sizeof wa, "%.3f", st.write_amplification());
    return {Status::Ok(),
            {{{"user_bytes_written", n(st.user_bytes_written)},
              {"data_bytes_written", n(st.data_bytes_written)},
              {"cleaner_bytes_written", n(st.cleaner_bytes_written)},
              {"metadata_bytes_written", n(st.metadata_bytes_written)},
              {"write_amplification", wa},
              {"journal_blocks_written", n(st.journal_blocks_written)},
              {"checkpoints", n(st.checkpoints)},
              {"flushes", n(st.flushes)},
              {"one_flush_commits", n(st.one_flush_commits)},
              {"zones_cleaned", n(st.zones_cleaned)},
              {"zones_reset", n(st.zones_reset)},
              {"checksum_errors", n(st.checksum_errors)},
              {"data_zones", n(st.data_zones)},
              {"free_zones", n(st.free_zones)},
              {"map_extents", n(st.map_extents)},
              {"map_memory_bytes", n(st.map_memory_bytes)},
              {"map_blocks_unread", n(st.map_blocks_unread)}}}};
  }
  return fail(
      InvalidArgument("unknown command '" + c +
                      "' (ns-list, ns-show, ns-create, ns-delete, ns-resize, ns-attach, ns-detach, status, stats)"));
}

}  // namespace nyads::daemon
