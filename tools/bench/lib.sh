# Shared by tools/bench/reconcile-scale and tools/bench/wireguard-scale (sourced): the timer,
# medians, ratios and the targets' verdicts.

[ -n "${EPOCHREALTIME-}" ] || { echo "tools/bench/lib.sh: bash 5 or later is needed (EPOCHREALTIME)" >&2; exit 1; }

# CMD… -> its wall time in seconds (4 decimals), taken from bash's own clock: starting a `date`
# process on each side, as these scripts once did, added about 8 ms to every figure on the
# project's machine, and so pulled every ratio towards 1. Fails (and says so) when CMD does.
timed() {
  local t0 t1
  t0=${EPOCHREALTIME//[!0-9]/}  # microseconds; the decimal point is the locale's
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
  t1=${EPOCHREALTIME//[!0-9]/}
  printf '%d.%04d\n' $(((t1 - t0) / 1000000)) $(((t1 - t0) % 1000000 / 100))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
# A B C D -> (A - B) / (C - D): two whole runs compared without each tool's process start-up;
# "n/a" when the second is not longer than its start-up (noise).
ratio_less() {
  python3 -c "import sys; a, b, c, d = map(float, sys.argv[1:])
print('%.2f' % ((a - b) / (c - d)) if c > d else 'n/a')" "$@"
}
verdict() {  # RATIO TARGET
  python3 -c "import sys; print('MET' if float(sys.argv[1]) <= float(sys.argv[2]) else 'MISSED')" "$1" "$2"
}
