# Waits shared by the lab scripts and the benches that run in the lab (sourced; the caller
# defines not_ok for the listeners' waits, and PY and adm for wait_backends). Each wait is
# bounded and polls for the state it needs instead of sleeping for a guessed time: a CI machine
# running two lab tests and a sanitizer build at once can take seconds to start a Python
# backend or to run a health probe.

# Bash's own clock (bash 5; its decimal point is the locale's), so that a poll starts no
# `date` process each time it looks.
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((t / 1000)); }

# wait_until TIMEOUT_MS CMD... - runs CMD every 10 ms until it succeeds (0), or returns 1 once
# TIMEOUT_MS have passed.
wait_until() {
  local deadline=$((${EPOCHREALTIME//[!0-9]/} + $1 * 1000))
  shift
  until "$@"; do
    ((${EPOCHREALTIME//[!0-9]/} >= deadline)) && return 1
    sleep 0.01
  done
}

listening() {  # NETNS ADDR:PORT tcp|udp -> 0 when a listener is there ("" NETNS: this one)
  local listing=-Hltn
  [ "$3" = udp ] && listing=-Hlun
  if [ -n "$1" ]; then
    ip netns exec "$1" ss "$listing" "src $2" | grep -q .
  else
    ss "$listing" "src $2" | grep -q .
  fi
}
none_listening() {  # ADDR:PORT... -> 0 when no TCP listener is on any of them, here
  local a
  for a in "$@"; do
    listening "" "$a" tcp && return 1
  done
  return 0
}

# wait_listening NETNS ADDR:PORT [udp] - a TCP (or UDP) listener on ADDR:PORT inside NETNS,
# within 30 s.
wait_listening() {
  wait_until 30000 listening "$1" "$2" "${3:-tcp}" || not_ok "backend $1 $2 did not start"
}

# wait_not_listening ADDR:PORT... - no TCP listener left on any of them in this namespace,
# within 30 s: a proxy told to stop accepting has closed every worker's listener.
wait_not_listening() {
  wait_until 30000 none_listening "$@" || not_ok "still listening on $* after 30 s"
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
