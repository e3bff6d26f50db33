# Shared by the scripts that run inside the VM (tests/vm/run-vm.sh): source it after setting
# `bin` (the build directory) and `device` (what nyadsd serves).
mkfs=$bin/mkfs/mkfs.nyads fsck=$bin/fsck/fsck.nyads nyadsd=$bin/fs/daemon/nyadsd nyads=$bin/fs/daemon/nyads
run=/run/nyads
fail() { echo "FAIL: $*" >&2; [ -f /tmp/nyadsd.log ] && tail -20 /tmp/nyadsd.log >&2; exit 1; }
step() { echo "--- $*"; }
ctl() { "$nyads" --run-dir $run "$@"; }
# nyadsd on $device in the background ($pid), logging to /tmp/nyadsd.log; returns once it answers.
start_daemon() {
  "$nyadsd" --run-dir $run "$device" 2>>/tmp/nyadsd.log &
  pid=$!
  for _ in $(seq 100); do ctl status >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "nyadsd did not come up"
}
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd  # the guest's devtmpfs has no /dev/fd (for <(...))
