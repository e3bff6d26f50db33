#!/usr/bin/env bash
# Compares NBD servers -- nyads (nyadsd), nbdkit's file plugin (with its default page cache
# use, and with cache=none), qemu-nbd -- in one run: each
# exports storage in files on the same disk (--dir), fio's nbd engine drives it over a unix
# socket, and the report gives IOPS, bandwidth, latency percentiles, ratios, and each server's
# CPU (idle with one client, and during every job) and memory. Every server is up for the
# whole run and each job runs on them back to back, in rounds (the order reversed every other
# round), so that a ratio compares measurements made seconds apart. See bench/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/nbd_bench.sh [--servers nyads,nbdkit,nbdkit-nocache,qemu-nbd] [--build DIR] [--dir DIR] [--out DIR]
                          [--runtime S] [--ramp S] [--rounds N] [--size SIZE] [--idle S]
                          [--qemu-aio io_uring|threads]

  --servers LIST   servers to run, in this order (default nyads,nbdkit,nbdkit-nocache,qemu-nbd); one whose
                   programs are missing is skipped with a message
  --build DIR      nyads build dir with mkfs/mkfs.nyads, fs/daemon/nyadsd, fs/daemon/nyads
                   (default: the repo's build/)
  --dir DIR        scratch dir for the servers' files and sockets (default /var/tmp/nyads-nbd-bench)
  --out DIR        raw fio JSON, server logs and report.md (default DIR/results)
  --runtime S      measured seconds per job (default 10)
  --ramp S         unmeasured warm-up seconds before each job (default 2)
  --rounds N       times every job runs on every server, back to back (default 3); the
                   report gives medians and each round's ratio
  --size SIZE      region the jobs cover, written sequentially first (default 1G, at most 2G)
  --idle S         seconds of idle CPU measurement with one client connected (default 5)
  --qemu-aio MODE  qemu-nbd --aio mode (default io_uring if qemu-nbd has it, else threads)
EOF
}

die() { echo "nbd_bench: $*" >&2; exit 1; }
say() { echo "nbd_bench: $*" >&2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$script_dir")
build=$repo/build
dir=/var/tmp/nyads-nbd-bench
out=
servers=nyads,nbdkit,nbdkit-nocache,qemu-nbd
runtime=10
ramp=2
rounds=3
size=1G
idle=5
qemu_aio=
export_size=2G          # every export: the raw files, and the nyads namespace
nyads_device_size=4G    # the emulated zoned device the nyads volume is made on

while [ $# -gt 0 ]; do
  opt=$1
  case ${opt%%=*} in
    -h|--help) usage; exit 0 ;;
    --servers|--build|--dir|--out|--runtime|--ramp|--rounds|--size|--idle|--qemu-aio) ;;
    *) usage >&2; die "unknown option: $opt" ;;
  esac
  case $opt in
    --*=*) val=${opt#*=}; opt=${opt%%=*}; shift ;;
    *) [ $# -ge 2 ] || die "$opt needs a value"; val=$2; shift 2 ;;
  esac
  case $opt in
    --servers) servers=$val ;;
    --build) build=$val ;;
    --dir) dir=$val ;;
    --out) out=$val ;;
    --runtime) runtime=$val ;;
    --ramp) ramp=$val ;;
    --rounds) rounds=$val ;;
    --size) size=$val ;;
    --idle) idle=$val ;;
    --qemu-aio) qemu_aio=$val ;;
  esac
done

[[ $runtime =~ ^[1-9][0-9]*$ ]] || die "--runtime must be a whole number of seconds >= 1"
[[ $ramp =~ ^[0-9]+$ ]] || die "--ramp must be a whole number of seconds"
[[ $rounds =~ ^[1-9][0-9]?$ ]] || die "--rounds must be a whole number from 1 to 99"
[[ $idle =~ ^[1-9][0-9]*$ ]] || die "--idle must be a whole number of seconds >= 1"
case $qemu_aio in ''|threads|io_uring|native) ;; *) die "--qemu-aio must be io_uring or threads" ;; esac
size_bytes=$(numfmt --from=iec "$size" 2>/dev/null) || die "--size: not a size: $size"
export_bytes=$(numfmt --from=iec "$export_size")
if [ "$size_bytes" -lt $((1 << 20)) ] || [ "$size_bytes" -gt "$export_bytes" ]; then
  die "--size must be between 1M and $export_size"
fi
[ $((size_bytes % (1 << 20))) -eq 0 ] || die "--size must be a multiple of 1M"

IFS=, read -r -a server_list <<<"$servers"
[ ${#server_list[@]} -gt 0 ] || die "--servers is empty"
for s in "${server_list[@]}"; do
  case $s in nyads|nbdkit|nbdkit-nocache|qemu-nbd) ;; *) die "unknown server '$s' (nyads, nbdkit, nbdkit-nocache, qemu-nbd)" ;; esac
done

# Paths go into nbd URIs unescaped and unix socket paths are at most 107 bytes.
mkdir -p -- "$dir"
dir=$(cd "$dir" && pwd)
[[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "--dir may only hold letters, digits and ._/+-: $dir"
[ ${#dir} -le 80 ] || die "--dir is too long for unix socket paths: $dir"
out=${out:-$dir/results}
mkdir -p -- "$out"
out=$(cd "$out" && pwd)

for tool in fio nbdinfo numfmt timeout flock /usr/bin/python3; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh"
done
/usr/bin/python3 -c 'import nbd' 2>/dev/null ||
  die "/usr/bin/python3 cannot import nbd (python3-libnbd): run scripts/install-deps.sh"
if ! fio --enghelp=nbd >/dev/null 2>&1; then
  die "this fio ($(fio --version)) has no nbd ioengine; install a fio built with libnbd. Stopping."
fi

# One run per scratch dir at a time: a lock on the directory itself.
exec 9<"$dir"
flock -n 9 || die "another nbd_bench run holds $dir"

jobs=(
  # name              rw        bs  qd  more fio options
  "randwrite-4k-qd1   randwrite 4k  1"
  "syncwrite-4k-qd1   randwrite 4k  1   --fsync=1"
  "randwrite-4k-qd32  randwrite 4k  32"
  "randread-4k-qd1    randread  4k  1"
  "randread-4k-qd32   randread  4k  32"
  # QD32 as 4 connections of 8: fio's one-thread client tops out near 70k reads/s on 2 CPUs
  # whatever the server (bench/README.md), so this is where the servers' own cost shows
  "randread-4k-qd32-4conn randread 4k 8 --numjobs=4 --group_reporting"
  "write-1m-qd8       write     1m  8"
  "flushwrite-1m-qd8  write     1m  8   --fsync=64"
  "read-1m-qd8        read      1m  8"
)

clk_tck=$(getconf CLK_TCK)
server_pid=  # the server being started or measured now
holder_pid=
fio_pid=
declare -A pid_of=() uri_of=()  # the servers up, by name
active=()                      # their names, in --servers order
scratch=("$dir/nyads.img" "$dir/nbdkit.raw" "$dir/nbdkit-nocache.raw" "$dir/qemu-nbd.raw" "$dir/run" "$dir/sock")

stop_pid() {  # stop_pid PID: TERM, up to 10 s, then KILL; reap it
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_server() {  # the one being started or measured now, and its clients
  if [ -n "$fio_pid" ]; then stop_pid "$fio_pid"; fio_pid=; fi
  if [ -n "$holder_pid" ]; then stop_pid "$holder_pid"; holder_pid=; fi
  if [ -n "$server_pid" ]; then stop_pid "$server_pid"; server_pid=; fi
}

stop_all() {
  local s
  stop_server
  for s in "${!pid_of[@]}"; do stop_pid "${pid_of[$s]}"; done
  pid_of=()
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  rm -rf -- "${scratch[@]}"
  if [ "$rc" -ne 0 ]; then
    say "stopped (exit status $rc): servers stopped, scratch files removed; partial results in $out"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

page_size=$(getconf PAGESIZE)
written_back() {  # bytes the kernel has written back to disk since boot, all files (/proc/vmstat)
  awk -v page="$page_size" '/^nr_written / { printf "%.0f\n", $2 * page }' /proc/vmstat
}

cpu_ticks() {  # utime+stime of every thread of PID, in clock ticks
  local stat rest
  local -a f
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  read -r -a f <<<"$rest"
  echo $((f[11] + f[12]))
}

# wait_socket PATH: until an NBD server answers on PATH (30 s), or the server exits. The probe
# is a handshake that ends with NBD_OPT_ABORT, which servers take quietly; it needs no export.
wait_socket() {
  local sock=$1 i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$server_pid" 2>/dev/null || return 1
    if [ -S "$sock" ] && /usr/bin/python3 -c '
import sys, nbd
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_unix(sys.argv[1])
h.opt_abort()' "$sock" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# The per-server state: its output dir, its info file, its log.
srv_out=
info() { printf '%s=%s\n' "$1" "$2" >>"$srv_out/info.env"; }

fail_server() {  # fail_server NAME MESSAGE: record, say, stop it; the others go on
  local s a=()
  info status "failed: $2"
  say "$1: FAILED: $2 (log: $srv_out/server.log)"
  tail -n 20 "$srv_out/server.log" >&2 || true
  stop_server
  for s in "${active[@]}"; do [ "$s" = "$1" ] || a+=("$s"); done
  active=("${a[@]}")
  unset "pid_of[$1]" "uri_of[$1]"
}

# start_SERVER set server_pid, sock, start_cmd, version; if the server is not up, they set
# why and return 1.
start_nyads() {
  local img=$dir/nyads.img
  start_cmd="$mkfs_nyads -q --sparse --size $nyads_device_size $img"
  if ! "$mkfs_nyads" -q --sparse --size "$nyads_device_size" "$img" >>"$srv_out/server.log" 2>&1; then
    why="mkfs.nyads failed"
    return 1
  fi
  mkdir -p "$dir/run"
  start_cmd="$nyadsd --run-dir $dir/run $img"
  "$nyadsd" --run-dir "$dir/run" "$img" >>"$srv_out/server.log" 2>&1 &
  server_pid=$!
  sock=$dir/run/nbd.sock
  if ! wait_socket "$sock"; then
    why="nyadsd exited, or $sock accepted no connection within 30 s"
    return 1
  fi
  if ! "$nyads_cli" --control "$dir/run/control.sock" ns create bench --size "$export_size" \
      >>"$srv_out/server.log" 2>&1; then
    why="'nyads ns create bench --size $export_size' failed"
    return 1
  fi
  version=$("$nyadsd" --version 2>/dev/null | head -n 1 || true)
  local build_type
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
  version="${version:-nyadsd}${build_type:+ ($build_type build)}"
  info device "emulated zoned device in a sparse $nyads_device_size file (mkfs.nyads --sparse, as the peers' raw files are sparse), namespace bench of $export_size"
}

# start_nbdkit [NAME PLUGIN-OPTION]: nbdkit's file plugin with its defaults, or one option more.
start_nbdkit() {
  local name=${1:-nbdkit} more=${2:-}
  local img=$dir/$name.raw
  truncate -s "$export_size" "$img"
  mkdir -p "$dir/sock"
  sock=$dir/sock/$name.sock
  # Defaults: thread model parallel, 16 threads per connection, cache=default (page cache),
  # fadvise=normal. --exit-with-parent only guards against an orphaned server.
  start_cmd="nbdkit --foreground --exit-with-parent --unix $sock file file=$img${more:+ $more}"
  nbdkit --foreground --exit-with-parent --unix "$sock" file "file=$img" ${more:+"$more"} >>"$srv_out/server.log" 2>&1 &
  server_pid=$!
  if ! wait_socket "$sock"; then
    why="nbdkit exited, or $sock accepted no connection within 30 s"
    return 1
  fi
  version=$(nbdkit --version | head -n 1)
  info device "sparse raw file of $export_size${more:+, $more}"
}

# cache=none: the plugin keeps what it has read or written out of the page cache
# (nbdkit-file-plugin(1)). So its writes reach the disk during a job, as nyads's do, where with
# its defaults it rewrites dirty pages in memory; and its reads come from the disk.
start_nbdkit_nocache() { start_nbdkit nbdkit-nocache cache=none; }

start_qemu_nbd() {
  local img=$dir/qemu-nbd.raw aio=$qemu_aio
  truncate -s "$export_size" "$img"
  mkdir -p "$dir/sock"
  sock=$dir/sock/qemu-nbd.sock
  if [ -z "$aio" ]; then
    if qemu-nbd --help | grep -q io_uring; then aio=io_uring; else aio=threads; fi
  fi
  while :; do
    # --persistent: stay up across the clients; --shared=0: any number at once.
    # --cache=writeback is the default (page cache, flushes honoured); --discard=ignore and
    # --detect-zeroes=off are left at their defaults.
    start_cmd="qemu-nbd --socket=$sock --format=raw --export-name=bench --cache=writeback --aio=$aio --persistent --shared=0 $img"
    qemu-nbd --socket="$sock" --format=raw --export-name=bench --cache=writeback --aio="$aio" \
      --persistent --shared=0 "$img" >>"$srv_out/server.log" 2>&1 &
    server_pid=$!
    if wait_socket "$sock"; then break; fi
    # io_uring can be compiled in yet refused (seccomp, old kernel): fall back, and say so.
    if [ -z "$qemu_aio" ] && [ "$aio" = io_uring ]; then
      say "qemu-nbd: --aio=io_uring did not start; trying --aio=threads"
      info note "--aio=io_uring failed to start; fell back to --aio=threads"
      stop_server
      aio=threads
      continue
    fi
    why="qemu-nbd exited, or $sock accepted no connection within 30 s"
    return 1
  done
  version=$(qemu-nbd --version | head -n 1)
  info device "sparse raw file of $export_size"
}

# run_fio NAME TIMEOUT FIO-ARGS...: one fio job into $srv_out/NAME.json. In the background,
# so that a signal to this script runs the trap at once instead of after the job.
run_fio() {
  local name=$1 tmo=$2 rc=0
  shift 2
  timeout --signal=INT --kill-after=10 "$tmo" \
    fio --name="$name" --ioengine=nbd --uri="$uri" --size="$size" \
      --percentile_list=50:99:99.9 --output-format=json --output="$srv_out/$name.json" "$@" \
      >>"$srv_out/fio.log" 2>&1 &
  fio_pid=$!
  wait "$fio_pid" || rc=$?
  fio_pid=
  return "$rc"
}

bench_server() {
  local s=$1 sock='' start_cmd='' version='' why='' uri t0 t1 w0 w1
  srv_out=$out/$s
  rm -rf -- "$srv_out"
  mkdir -p -- "$srv_out"
  info server "$s"

  case $s in
    nyads)
      mkfs_nyads=$build/mkfs/mkfs.nyads nyadsd=$build/fs/daemon/nyadsd nyads_cli=$build/fs/daemon/nyads
      local p missing=()
      for p in "$mkfs_nyads" "$nyadsd" "$nyads_cli"; do [ -x "$p" ] || missing+=("$p"); done
      if [ ${#missing[@]} -gt 0 ]; then
        info status "skipped: not built: ${missing[*]}"
        say "nyads: SKIPPED: not built yet: ${missing[*]} (build it, or pass --build DIR)"
        return 0
      fi ;;
    nbdkit|nbdkit-nocache|qemu-nbd)
      local program=${s%-nocache}
      if ! command -v "$program" >/dev/null; then
        info status "skipped: $program not installed"
        say "$s: SKIPPED: $program is not installed (scripts/install-deps.sh)"
        return 0
      fi ;;
  esac

  say "$s: starting"
  info loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
  if ! "start_${s//-/_}"; then
    info command "$start_cmd"
    fail_server "$s" "$why"
    return 0
  fi
  info command "$start_cmd"
  info version "$version"
  info pid "$server_pid"
  uri="nbd+unix:///bench?socket=$sock"
  info uri "$uri"

  local esize='' i
  for ((i = 0; i < 20; i++)); do
    esize=$(nbdinfo --size "$uri" 2>>"$srv_out/server.log") && break
    sleep 0.25
  done
  if [ -z "$esize" ] || [ "$esize" -lt "$size_bytes" ]; then
    fail_server "$s" "export 'bench' at $uri missing or smaller than --size (size: ${esize:-none})"
    return 0
  fi
  info export_bytes "$esize"

  # Idle CPU with one client connected: libnbd (what nbdsh runs) holds a connection for
  # idle+1 s. /usr/bin/python3 because nbdsh takes whichever python3 is first on PATH.
  say "$s: idle CPU with one client, ${idle} s"
  local flag=$srv_out/.holder-connected
  /usr/bin/python3 -c '
import sys, time, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
h.shutdown()' "$uri" "$flag" $((idle + 1)) >>"$srv_out/server.log" 2>&1 &
  holder_pid=$!
  for ((i = 0; i < 100; i++)); do
    [ -e "$flag" ] && break
    kill -0 "$holder_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -e "$flag" ]; then
    fail_server "$s" "a libnbd client could not connect to $uri"
    return 0
  fi
  rm -f -- "$flag"
  sleep 0.3
  w0=$EPOCHREALTIME t0=$(cpu_ticks "$server_pid")
  sleep "$idle"
  w1=$EPOCHREALTIME t1=$(cpu_ticks "$server_pid")
  info idle_ticks $((t1 - t0))
  info idle_wall "$w0 $w1"
  wait "$holder_pid" || true
  holder_pid=

  say "$s: precondition: writing $size sequentially (1 MiB, QD8)"
  if ! run_fio precondition 600 --rw=write --bs=1m --iodepth=8; then
    fail_server "$s" "fio precondition failed (see $srv_out/fio.log)"
    return 0
  fi

  # Up for the rest of the run: the jobs come in rounds over every server.
  pid_of[$s]=$server_pid
  uri_of[$s]=$uri
  active+=("$s")
  server_pid=
}

# run_job SERVER ROUND NAME RW BS QD [FIO-OPTIONS]: one measured job on one server that is up
# (FIO-OPTIONS: one word, or several separated by spaces).
run_job() {
  local s=$1 r=$2 name=$3 rw=$4 bs=$5 qd=$6 uri t0 t1 w0 w1 d0 d1
  local -a extra=()
  read -ra extra <<<"${7:-}"
  srv_out=$out/$s
  server_pid=${pid_of[$s]}
  uri=${uri_of[$s]}
  say "$s: $name, round $r of $rounds (${ramp} s ramp + ${runtime} s)"
  # Every job starts with nothing dirty in the page cache: a write job leaves the raw files'
  # servers up to --size dirty, which the next job's first flush, or the kernel's writeback
  # during whichever job comes next, would otherwise pay for (and count as written back).
  sync -f "$dir/."
  w0=$EPOCHREALTIME t0=$(cpu_ticks "$server_pid") d0=$(written_back)
  if ! run_fio "$name.r$r" $((runtime + ramp + 60)) --rw="$rw" --bs="$bs" --iodepth="$qd" \
       --time_based --runtime="$runtime" --ramp_time="$ramp" "${extra[@]}"; then
    fail_server "$s" "fio job $name failed in round $r (see $srv_out/fio.log)"
    return 0
  fi
  w1=$EPOCHREALTIME t1=$(cpu_ticks "$server_pid") d1=$(written_back)
  info "job.$name.r$r.ticks" $((t1 - t0))
  info "job.$name.r$r.written_back" $((d1 - d0))
  info "job.$name.r$r.wall" "$w0 $w1"
  server_pid=
}

finish_server() {  # finish_server NAME: its memory after every job, then stop it
  local s=$1 rss hwm
  srv_out=$out/$s
  server_pid=${pid_of[$s]}
  read -r rss hwm < <(awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r, h }' \
    "/proc/$server_pid/status")
  info rss_kib "$rss"
  info hwm_kib "$hwm"
  info status ok
  say "$s: done"
  stop_server
  unset "pid_of[$s]" "uri_of[$s]"
}

# ---- the run -------------------------------------------------------------------------------

per_server=$((rounds * ${#jobs[@]} * (runtime + ramp + 1) + idle + 15))
say "servers: ${server_list[*]}; ${#jobs[@]} jobs of ${ramp}+${runtime} s over $size, $rounds rounds;" \
  "about $((per_server * ${#server_list[@]})) s in all; scratch $dir, results $out"

rm -f -- "$out/report.md" "$out/run.env"
rm -rf -- "${scratch[@]}"
{
  printf 'date=%s\n' "$(date -Is)"
  printf 'host=%s\n' "$(uname -n)"
  printf 'kernel=%s\n' "$(uname -r)"
  printf 'cpus=%s\n' "$(nproc)"
  printf 'cpu_model=%s\n' "$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'mem=%s\n' "$(grep -m1 '^MemTotal' /proc/meminfo | tr -s ' ' | cut -d' ' -f2-)"
  printf 'fio=%s\n' "$(fio --version)"
  printf 'dir=%s\n' "$dir"
  printf 'dir_fs=%s\n' "$(stat -f -c %T "$dir")"
  printf 'servers=%s\n' "$(IFS=,; echo "${server_list[*]}")"
  printf 'jobs=%s\n' "$(for l in "${jobs[@]}"; do read -r n _ <<<"$l"; printf '%s,' "$n"; done)"
  printf 'runtime=%s\nramp=%s\nrounds=%s\nsize=%s\nidle=%s\nclk_tck=%s\n' "$runtime" "$ramp" "$rounds" "$size" "$idle" "$clk_tck"
} >"$out/run.env"

for s in "${server_list[@]}"; do
  bench_server "$s"
done
# Each job on every server back to back; every other round in the reverse order, so that
# neither server always runs right after the other's writes.
for ((r = 1; r <= rounds; r++)); do
  order=("${active[@]}")
  if ((r % 2 == 0)); then
    order=()
    for ((k = ${#active[@]} - 1; k >= 0; k--)); do order+=("${active[k]}"); done
  fi
  for line in "${jobs[@]}"; do
    read -r name rw bs qd extra <<<"$line"
    for s in "${order[@]}"; do
      if [ -n "${pid_of[$s]:-}" ]; then run_job "$s" "$r" "$name" "$rw" "$bs" "$qd" "$extra"; fi
    done
  done
done
for s in "${active[@]}"; do finish_server "$s"; done
rm -rf -- "${scratch[@]}"

/usr/bin/python3 "$script_dir/nbd_bench_report.py" "$out"
