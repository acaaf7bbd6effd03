# Waits shared by the lab scripts (sourced; the caller defines not_ok, and PY and adm for
# wait_backends). Each wait is bounded and polls for the state it needs instead of sleeping for
# a guessed time: a CI machine running two lab tests and a sanitizer build at once can take
# seconds to start a Python backend or to run a health probe.

# wait_listening NETNS ADDR:PORT [udp] - a TCP (or UDP) listener on ADDR:PORT inside NETNS,
# within 30 s.
wait_listening() {
  local listing=-Hltn
  [ "${3:-tcp}" = udp ] && listing=-Hlun
  for _ in $(seq 300); do
    ip netns exec "$1" ss "$listing" "src $2" | grep -q . && return 0
    sleep 0.1
  done
  not_ok "backend $1 $2 did not start"
}

# wait_not_listening ADDR:PORT... - no TCP listener left on any of them in this namespace,
# within 30 s: a proxy told to stop accepting has closed every worker's listener.
wait_not_listening() {
  local a
  for _ in $(seq 300); do
    for a in "$@"; do
      ss -Hltn "src $a" | grep -q . && continue 2
    done
    return 0
  done
  not_ok "still listening on $* after 30 s"
}

# wait_backends up|down ADDR:PORT... - the proxy's health checker (GET /api/v1/backends) has
# checked each backend and found it in that state, within 20 s.
wait_backends() {
  local state=$1 n
  shift
  for _ in $(seq 200); do
    n=$(adm http://localhost/api/v1/backends 2>/dev/null | $PY -c '
import json, sys
up, want = sys.argv[1] == "up", set(sys.argv[2:])
print(len({b["backend"] for b in json.load(sys.stdin)
           if b["checked"] and b["up"] == up and b["backend"] in want}))' "$state" "$@" 2>/dev/null)
    [[ $n == "$#" ]] && return 0
    sleep 0.1
  done
  not_ok "the health checker did not see all of $* $state"
  adm http://localhost/api/v1/backends | sed 's/^/    | /'
}
