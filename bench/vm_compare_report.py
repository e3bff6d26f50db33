#!/usr/bin/python3
"""Report of bench/vm_compare.sh: IOPS, MB/s and latency per job, and the issue's ratios."""
import json
import os
import sys

out = sys.argv[1]


def load(name):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    job = json.loads(text[text.index("{"):])["jobs"][0]
    side = job["read"] if job["read"]["io_bytes"] > 0 else job["write"]
    pct = side["clat_ns"].get("percentile", {})
    return {
        "iops": side["iops"],
        "mbs": side["bw_bytes"] / 1e6,
        "p50": pct.get("50.000000", 0) / 1000,
        "p99": pct.get("99.000000", 0) / 1000,
    }


names = ["raw-seqwrite-1M", "raw-randread-4k-qd1", "raw-randread-4k-qd32"]
for dev in ("ublk", "nbd"):
    names += [f"{dev}-{j}" for j in ("randread-4k-qd1", "randread-4k-qd32", "randwrite-4k-qd1", "randwrite-4k-qd32", "seqwrite-1M", "seqread-1M")]
names += ["ext4-randwrite-4k-qd32", "btrfs-randwrite-4k-qd32"]
r = {n: load(n) for n in names}

print("# nyads in a VM: ublk, NBD, ext4-on-nyads, zoned btrfs, the raw ZNS namespace\n")
print("| job | IOPS | MB/s | p50 µs | p99 µs |")
print("|---|---:|---:|---:|---:|")
for n in names:
    x = r[n]
    if x is None:
        print(f"| {n} | missing | | | |")
        continue
    print(f"| {n} | {x['iops']:.0f} | {x['mbs']:.1f} | {x['p50']:.0f} | {x['p99']:.0f} |")


def ratio(a, b, key="iops"):
    if r.get(a) is None or r.get(b) is None or r[b][key] == 0:
        return None
    return r[a][key] / r[b][key]


print("\n| ratio | measured | target |")
print("|---|---:|---:|")
rows = [
    ("ublk / NBD, 4 KiB randwrite QD32 IOPS", ratio("ublk-randwrite-4k-qd32", "nbd-randwrite-4k-qd32"), ">= 1.5"),
    ("ublk / NBD, 4 KiB randread QD32 IOPS", ratio("ublk-randread-4k-qd32", "nbd-randread-4k-qd32"), ">= 1.5"),
    ("nyads ublk / raw, 4 KiB randread QD32 IOPS", ratio("ublk-randread-4k-qd32", "raw-randread-4k-qd32"), ">= 0.9"),
    ("nyads ublk / raw, 4 KiB randread QD1 IOPS", ratio("ublk-randread-4k-qd1", "raw-randread-4k-qd1"), ""),
    ("nyads ublk / raw, 1 MiB seq write MB/s", ratio("ublk-seqwrite-1M", "raw-seqwrite-1M", "mbs"), ">= 0.9"),
    ("ext4 on nyads / zoned btrfs, 4 KiB randwrite QD32 IOPS", ratio("ext4-randwrite-4k-qd32", "btrfs-randwrite-4k-qd32"), ">= 2"),
]
for label, v, target in rows:
    print(f"| {label} | {'-' if v is None else f'{v:.2f}'} | {target} |")
