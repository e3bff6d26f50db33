#!/usr/bin/python3
"""The markdown report of a bench/nbd_bench.sh run.

usage: nbd_bench_report.py OUT

Reads OUT/run.env, OUT/<server>/info.env and OUT/<server>/<job>.r<round>.json (fio's JSON
output; <job>.json from a run before rounds), writes OUT/report.md and prints it. A server's
figure for a job is the median of its rounds (latencies: those of its median round); a ratio
is the median of the rounds' ratios, each between runs made back to back. Standard library
only.
"""
import json
import os
import statistics
import sys

JOB_TITLES = {
    "randwrite-4k-qd1": "4 KiB random write, QD1",
    "syncwrite-4k-qd1": "4 KiB random write, QD1, a flush after each (fio --fsync=1; latency: the flush's)",
    "randwrite-4k-qd32": "4 KiB random write, QD32",
    "randread-4k-qd1": "4 KiB random read, QD1",
    "randread-4k-qd32": "4 KiB random read, QD32",
    "randread-4k-qd32-4conn": "4 KiB random read, QD32 over 4 connections (4 fio jobs of QD8; figures summed)",
    "write-1m-qd8": "1 MiB sequential write, QD8",
    "flushwrite-1m-qd8": "1 MiB sequential write, QD8, a flush every 64 (fio --fsync=64; latency: the flush's)",
    "read-1m-qd8": "1 MiB sequential read, QD8",
}
PEERS = ("nbdkit", "nbdkit-nocache", "qemu-nbd")


def read_env(path):
    env = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    env[key] = value
    except FileNotFoundError:
        pass
    return env


def load_fio(path):
    """One fio job's result: iops, bw (bytes/s), p50/p99/p999 (us), runtime_s; None if absent."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    start = text.find("{")  # fio may print a line such as "fio: connected to NBD server" first
    if start < 0:
        return None
    doc, _ = json.JSONDecoder().raw_decode(text[start:])
    job = doc["jobs"][0]
    rw = job["job options"].get("rw", "")
    d = job["read"] if "read" in rw else job["write"]
    pct = d.get("clat_ns", {}).get("percentile", {})
    if "fsync" in job["job options"]:  # a flush job: its latency is the flush's
        pct = job.get("sync", {}).get("lat_ns", {}).get("percentile", {})

    def us(key):
        v = pct.get(key)
        return None if v is None else v / 1000.0

    return {
        "iops": d["iops"],
        "bw": d["bw_bytes"],
        "p50": us("50.000000"),
        "p99": us("99.000000"),
        "p999": us("99.900000"),
        "runtime_s": d["runtime"] / 1000.0,
        "error": job.get("error", 0),
    }


def wall(span):
    a, b = (float(x) for x in span.split())
    return b - a


def cpu_pct(ticks, span, clk_tck):
    try:
        return 100.0 * int(ticks) / clk_tck / wall(span)
    except (TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None


def f_int(v):
    return "—" if v is None else f"{v:,.0f}"


def f_num(v):
    if v is None:
        return "—"
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def median_round(rounds):
    """The round whose IOPS is the median of those that ran (the lower middle of an even count)."""
    ok = sorted((r for r in rounds if r), key=lambda r: r["iops"])
    return ok[(len(ok) - 1) // 2] if ok else None


def round_ratios(a_rounds, b_rounds, key="iops"):
    return [a[key] / b[key] for a, b in zip(a_rounds, b_rounds) if a and b and b[key]]


def f_ratios(ratios):
    """Median of the rounds' ratios, and their range when there are several."""
    if not ratios:
        return "—"
    med = statistics.median(ratios)
    if len(ratios) == 1:
        return f"{med:.2f}×"
    return f"{med:.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip())
    out = sys.argv[1]
    run = read_env(os.path.join(out, "run.env"))
    if not run:
        sys.exit(f"nbd_bench_report: no run.env in {out}")
    servers = [s for s in run.get("servers", "").split(",") if s]
    jobs = [j for j in run.get("jobs", "").split(",") if j]
    clk_tck = int(run.get("clk_tck", "100"))
    nrounds = int(run.get("rounds", "0") or "0")
    info = {s: read_env(os.path.join(out, s, "info.env")) for s in servers}

    def job_rounds(s, j):
        if nrounds == 0:  # a run from before rounds: one, without a suffix
            return [load_fio(os.path.join(out, s, j + ".json"))]
        return [load_fio(os.path.join(out, s, f"{j}.r{r}.json")) for r in range(1, nrounds + 1)]

    def job_cpu(s, j, r):  # r counts from 1; 0 is a run from before rounds
        key = f"job.{j}.r{r}" if r else f"job.{j}"
        return cpu_pct(info[s].get(key + ".ticks"), info[s].get(key + ".wall"), clk_tck)

    def job_written_back(s, j, r):  # MB/s the kernel wrote back over the job's wall time (None: not recorded)
        try:
            return int(info[s][f"job.{j}.r{r}.written_back"]) / 1e6 / wall(info[s][f"job.{j}.r{r}.wall"])
        except (KeyError, ValueError, ZeroDivisionError):
            return None

    rounds = {s: {j: job_rounds(s, j) for j in jobs} for s in servers}
    res = {s: {j: median_round(rounds[s][j]) for j in jobs} for s in servers}
    for s in servers:
        res[s]["precondition"] = load_fio(os.path.join(out, s, "precondition.json"))
    ran = [s for s in servers if any(res[s][j] for j in jobs)]

    L = []
    L.append(f"# NBD servers compared: {', '.join(servers)}")
    L.append("")
    L.append(
        f"{run.get('date', '?')} on {run.get('host', '?')}: {run.get('cpus', '?')} CPUs "
        f"({run.get('cpu_model', '?')}), {run.get('mem', '?')} RAM, Linux {run.get('kernel', '?')}, "
        f"{run.get('fio', 'fio')}. Scratch dir {run.get('dir', '?')} ({run.get('dir_fs', '?')}).")
    L.append("")
    L.append(
        f"Each job: fio `ioengine=nbd`, one connection over a unix socket, "
        f"{run.get('ramp', '?')} s ramp + {run.get('runtime', '?')} s measured, over the first "
        f"{run.get('size', '?')} of the export, which was written sequentially first (1 MiB, QD8). "
        "MB/s is 10^6 bytes/s; latencies are fio's completion latency (clat) in µs. "
        "Server CPU is the server process's user+system time (all threads) over the job's wall "
        "time (ramp included), in % of one CPU; the fio client runs on the same CPUs. "
        "Written back: MB/s the kernel wrote to disk over the job's wall time, every file of "
        "the machine (/proc/vmstat nr_written); beside the client's MB/s, it shows what the "
        "page cache absorbed (a rewrite of a page still dirty costs the disk nothing) or added.")
    if nrounds:
        L.append("")
        L.append(
            f"Every server was up for the whole run, and each job ran on them back to back, "
            f"{nrounds} round{'s' if nrounds > 1 else ''} (every other round in the reverse "
            "order). A server's figures are those of its median round (by IOPS); a ratio is the "
            "median of the rounds' ratios, with their range in brackets.")
    L.append("")

    L.append("## Servers")
    L.append("")
    L.append("| server | status | version | storage | command |")
    L.append("|---|---|---|---|---|")
    for s in servers:
        i = info[s]
        L.append(f"| {s} | {i.get('status', 'not run')} | {i.get('version', '') or '—'} | "
                 f"{i.get('device', '—')} | `{i.get('command', '—')}` |")
    notes = [f"{s}: {info[s]['note']}" for s in servers if info[s].get("note")]
    if notes:
        L.append("")
        L.extend(f"* {n}" for n in notes)
    L.append("")

    has_nyads = "nyads" in ran
    peers = [p for p in PEERS if p in ran]
    if has_nyads and peers:
        ratio_cols = [f"nyads/{p}" for p in peers]
    else:
        ratio_cols = []
        if has_nyads:
            why = "no peer ran"
        else:
            why = "nyads: " + info.get("nyads", {}).get("status", "not selected (--servers)")
        L.append(f"Ratios of nyads to nbdkit, nbdkit-nocache and qemu-nbd: n/a ({why}).")
        L.append("")

    L.append("## Summary: IOPS")
    L.append("")
    head = ["job"] + ran + ratio_cols
    L.append("| " + " | ".join(head) + " |")
    L.append("|---" + "|---:" * (len(head) - 1) + "|")
    for j in jobs:
        row = [JOB_TITLES.get(j, j)]
        row += [f_int(res[s][j]["iops"]) if res[s][j] else "—" for s in ran]
        for p in peers if ratio_cols else []:
            row.append(f_ratios(round_ratios(rounds["nyads"][j], rounds[p][j])))
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    for j in jobs:
        L.append(f"## {JOB_TITLES.get(j, j)} (`{j}`)")
        L.append("")
        L.append("| server | IOPS | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU % | written back MB/s |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in ran:
            r = res[s][j]
            if not r:
                L.append(f"| {s} | — | — | — | — | — | — | — |")
                continue
            cpus = [c for c in (job_cpu(s, j, k + 1 if nrounds else 0) for k, x in enumerate(rounds[s][j]) if x)
                    if c is not None]
            cpu = statistics.median(cpus) if cpus else None
            # Of the median round.
            k = next((k for k, x in enumerate(rounds[s][j]) if x is r), None)
            back = job_written_back(s, j, k + 1) if nrounds and k is not None else None
            disk = f_num(back)
            err = f" (fio error {r['error']})" if r["error"] else ""
            L.append(f"| {s}{err} | {f_int(r['iops'])} | {f_num(r['bw'] / 1e6)} | {f_num(r['p50'])} | "
                     f"{f_num(r['p99'])} | {f_num(r['p999'])} | {f_num(cpu)} | {disk} |")
        for p in peers if ratio_cols else []:
            L.append(f"| **nyads / {p}** | {f_ratios(round_ratios(rounds['nyads'][j], rounds[p][j]))} | "
                     f"{f_ratios(round_ratios(rounds['nyads'][j], rounds[p][j], 'bw'))} | | | | | |")
        if nrounds > 1:
            L.append("")
            L.append("IOPS by round: " + "; ".join(
                f"{s} " + ", ".join(f_int(x["iops"]) if x else "—" for x in rounds[s][j]) for s in ran) + ".")
        L.append("")

    L.append("## Resources")
    L.append("")
    L.append(f"| server | idle CPU, one client connected, {run.get('idle', '?')} s (% of one CPU) | "
             "VmRSS after the jobs (MiB) | VmHWM (MiB) |")
    L.append("|---|---:|---:|---:|")
    for s in servers:
        i = info[s]
        if "idle_ticks" not in i:
            continue
        idle = cpu_pct(i.get("idle_ticks"), i.get("idle_wall"), clk_tck)
        rss = f_num(int(i["rss_kib"]) / 1024) if i.get("rss_kib") else "—"
        hwm = f_num(int(i["hwm_kib"]) / 1024) if i.get("hwm_kib") else "—"
        idle_s = "—" if idle is None else f"{idle:.2f}"
        L.append(f"| {s} | {idle_s} | {rss} | {hwm} |")
    L.append("")
    L.append(f"CPU times come from /proc/PID/stat in ticks of 1/{clk_tck} s.")
    pre = [s for s in servers if res[s]["precondition"]]
    if pre:
        L.append("Precondition (sequential write of the region, 1 MiB, QD8): " + "; ".join(
            f"{s} {res[s]['precondition']['runtime_s']:.1f} s, "
            f"{res[s]['precondition']['bw'] / 1e6:.0f} MB/s" for s in pre) + ".")
    L.append("")
    L.append("Load average (1/5/15 min) when each server started: " + "; ".join(
        f"{s} {info[s]['loadavg_before']}" for s in servers if info[s].get("loadavg_before")) + ".")
    L.append("")

    text = "\n".join(L)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
