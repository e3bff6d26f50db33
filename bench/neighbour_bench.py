#!/usr/bin/python3
"""A noisy neighbour: how much one container's writes and flushes slow another's reads.

Two exports on one server: `b` gets 4 KiB random reads at QD1, first alone, then while `a`
gets 1 MiB sequential writes at QD8 with a flush every --flush-every writes (fio --fsync).
Servers: nyadsd (two namespaces on one emulated zoned device) and nbdkit's file plugin
(one process serving a directory with two raw files, `file dir=`). Each round runs both jobs
on every server back to back, every other round in the reverse order. The report gives each
server's median round (by b's IOPS beside the writer) and the ratio nyads/nbdkit of b's IOPS
and tail latency, per round too. See bench/README.md.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

MiB = 1 << 20


def die(msg):
    sys.exit(f"neighbour_bench: {msg}")


def wait_socket(path, proc, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            die(f"{what} exited at start (status {proc.returncode})")
        if os.path.exists(path):
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
                return
            except OSError:
                pass
        time.sleep(0.1)
    die(f"{what}: no socket at {path} after {timeout:.0f} s")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    def __init__(self, name, proc, sock):
        self.name, self.proc, self.sock = name, proc, sock

    def uri(self, export):
        return f"nbd+unix:///{export}?socket={self.sock}"


def start_nyads(build, d, log):
    img, run = f"{d}/dev.img", f"{d}/run"
    os.makedirs(run)
    subprocess.run([f"{build}/mkfs/mkfs.nyads", "-q", "--sparse", "--size", "8G", img], check=True, stdout=log, stderr=log)
    proc = subprocess.Popen([f"{build}/fs/daemon/nyadsd", "--run-dir", run, img], stdout=log, stderr=log)
    wait_socket(f"{run}/nbd.sock", proc, "nyadsd")
    for name, size in (("a", "2G"), ("b", "1G")):
        subprocess.run([f"{build}/fs/daemon/nyads", "--run-dir", run, "ns", "create", name, "--size", size],
                       check=True, stdout=log, stderr=log)
    return Server("nyads", proc, f"{run}/nbd.sock")


def start_nbdkit(d, log):
    files = f"{d}/files"
    os.makedirs(files)
    for name, size in (("a", 2 << 30), ("b", 1 << 30)):
        with open(f"{files}/{name}", "wb") as f:
            f.truncate(size)
    sock = f"{d}/nbdkit.sock"
    proc = subprocess.Popen(["nbdkit", "--foreground", "--exit-with-parent", "--unix", sock, "file", f"dir={files}"],
                            stdout=log, stderr=log)
    wait_socket(sock, proc, "nbdkit")
    return Server("nbdkit", proc, sock)


def fio(jobfile, out_json):
    r = subprocess.run(["fio", jobfile, "--output-format=json"], capture_output=True, text=True)
    text = r.stdout[r.stdout.find("{"):]  # the nbd engine prints a line before the JSON
    if r.returncode != 0 or not text:
        die(f"fio {jobfile} failed: {r.stderr.strip()[-400:]}")
    with open(out_json, "w") as f:
        f.write(text)
    return json.loads(text)


def job_text(server, runtime, with_writer, flush_every):
    text = (f"[global]\nioengine=nbd\ntime_based\nruntime={runtime}\n"
            f"[b]\nuri={server.uri('b')}\nrw=randread\nbs=4k\niodepth=1\nsize=512M\n")
    if with_writer:
        text += f"[a]\nuri={server.uri('a')}\nrw=write\nbs=1m\niodepth=8\nsize=2G\nfsync={flush_every}\n"
    return text


def figures(result):
    out = {}
    for job in result["jobs"]:
        if job["jobname"] == "b":
            c = job["read"]["clat_ns"]
            p = c["percentile"]
            out["b"] = {"iops": job["read"]["iops"], "p50": p["50.000000"] / 1e3, "p99": p["99.000000"] / 1e3,
                        "p999": p["99.900000"] / 1e3, "max": c["max"] / 1e3}
        else:
            sync = job.get("sync", {}).get("lat_ns", {})
            out["a"] = {"gbs": job["write"]["bw_bytes"] / 1e9, "flush_p50": sync.get("percentile", {}).get("50.000000", 0) / 1e6,
                        "flush_max": sync.get("max", 0) / 1e6}
    return out


def report(runs, servers, args):
    lines = [f"# Noisy neighbour: 4 KiB random reads QD1 on `b`, beside 1 MiB writes QD8 with a flush every {args.flush_every} on `a`",
             "", f"{args.rounds} rounds of {args.runtime} s per job; each server's median round by b's IOPS beside the writer.", "",
             "| server | b alone: IOPS | b beside a: IOPS | p50 µs | p99 µs | p99.9 µs | max µs | a: GB/s | a's flush p50 / max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    median = {}
    for s in servers:
        rounds = sorted(runs[s], key=lambda r: r["both"]["b"]["iops"])
        m = rounds[(len(rounds) - 1) // 2]
        median[s] = m
        b, a = m["both"]["b"], m["both"]["a"]
        lines.append(f"| {s} | {m['alone']['b']['iops']:.0f} | {b['iops']:.0f} | {b['p50']:.0f} | {b['p99']:.0f} | {b['p999']:.0f} | "
                     f"{b['max']:.0f} | {a['gbs']:.2f} | {a['flush_p50']:.1f} / {a['flush_max']:.1f} |")
    if "nyads" in servers and "nbdkit" in servers:
        pairs = list(zip(runs["nyads"], runs["nbdkit"]))
        iops = [x["both"]["b"]["iops"] / y["both"]["b"]["iops"] for x, y in pairs]
        tail = [x["both"]["b"]["p999"] / y["both"]["b"]["p999"] for x, y in pairs]
        lines += ["", f"nyads/nbdkit, b's IOPS beside the writer: median {statistics.median(iops):.2f}x "
                  f"(rounds: {', '.join(f'{v:.2f}' for v in iops)}); b's p99.9 latency: median {statistics.median(tail):.2f}x "
                  f"(rounds: {', '.join(f'{v:.2f}' for v in tail)}; below 1 is better)."]
    lines += ["", "Every round, b's IOPS alone / beside the writer:"]
    for s in servers:
        lines.append(f"- {s}: " + ", ".join(f"{r['alone']['b']['iops']:.0f} / {r['both']['b']['iops']:.0f}" for r in runs[s]))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="nyads build dir (default: build)")
    ap.add_argument("--servers", default="nyads,nbdkit", help="any of nyads,nbdkit (default: both)")
    ap.add_argument("--runtime", type=int, default=10, help="seconds per job (default: 10)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default: 3)")
    ap.add_argument("--flush-every", type=int, default=64, help="the writer's flush interval, in 1 MiB writes (default: 64)")
    ap.add_argument("--dir", default="/var/tmp/nyads-neighbour-bench", help="scratch dir, emptied first")
    ap.add_argument("--out", help="results dir (default: DIR/results)")
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    if not servers or any(s not in ("nyads", "nbdkit") for s in servers):
        die(f"--servers: nyads and/or nbdkit, not {args.servers}")
    if args.rounds < 1 or args.runtime < 1 or args.flush_every < 1:
        die("--rounds, --runtime and --flush-every must be at least 1")
    build = os.path.abspath(args.build)
    out = os.path.abspath(args.out or f"{args.dir}/results")
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(out)
    started = {}
    with open(f"{out}/servers.log", "w") as log:
        try:
            for s in servers:
                d = f"{args.dir}/{s}"
                os.makedirs(d)
                started[s] = start_nyads(build, d, log) if s == "nyads" else start_nbdkit(d, log)
                pre = f"{d}/pre.fio"
                with open(pre, "w") as f:
                    f.write(f"[pre]\nioengine=nbd\nuri={started[s].uri('b')}\nrw=write\nbs=1m\niodepth=8\nsize=512M\n")
                fio(pre, f"{out}/{s}-precondition.json")
            runs = {s: [] for s in servers}
            for r in range(args.rounds):
                order = servers if r % 2 == 0 else servers[::-1]
                for s in order:
                    got = {}
                    for kind in ("alone", "both"):
                        jobfile = f"{args.dir}/{s}/{kind}.fio"
                        with open(jobfile, "w") as f:
                            f.write(job_text(started[s], args.runtime, kind == "both", args.flush_every))
                        got[kind] = figures(fio(jobfile, f"{out}/{s}-round{r + 1}-{kind}.json"))
                    runs[s].append(got)
                    print(f"neighbour_bench: round {r + 1} {s}: b {got['alone']['b']['iops']:.0f} IOPS alone, "
                          f"{got['both']['b']['iops']:.0f} beside the writer", file=sys.stderr)
        finally:
            for srv in started.values():
                stop(srv.proc)
    text = report(runs, servers, args)
    with open(f"{out}/report.md", "w") as f:
        f.write(text)
    print(text, end="")
    shutil.rmtree(args.dir + "/nyads", ignore_errors=True)
    shutil.rmtree(args.dir + "/nbdkit", ignore_errors=True)


if __name__ == "__main__":
    main()
