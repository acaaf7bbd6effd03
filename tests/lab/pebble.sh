# Pebble start-up shared by the ACME lab tests (sourced; bash). Defines:
#   wait_port ADDR:PORT      true once a TCP listener is up on ADDR:PORT (10 s at most)
#   pebble_start WORK DNS    a throw-away CA (WORK/ca.pem, which the ACME client trusts Pebble's
#                            API with) signs Pebble's listener certificate; Pebble listens on
#                            127.0.0.1:14000 (management :15000), validates on the proxy's :80
#                            and :443 and resolves every name through DNS (ADDR:PORT); its pid
#                            is appended to the caller's `pids` array. PEBBLE_VA_NOSLEEP=1, and
#                            ACME_E2E_NONCEREJECT (default 5) percent of good nonces rejected.
#                            PEBBLE_EAB_KEYS='{"KID": "base64url MAC key"}': Pebble requires an
#                            external account binding by one of these keys (default: none).
wait_port() {
  for _ in $(seq 100); do ss -Hltn "src ${1%:*} and sport = :${1##*:}" | grep -q . && return 0; sleep 0.1; done
  return 1
}

pebble_start() {
  local work=$1 dns=$2
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=lab pebble CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$work/pebble.key" -out "$work/pebble.csr" 2>/dev/null &&
    openssl x509 -req -in "$work/pebble.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
      -CAcreateserial -days 2 -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n') \
      -out "$work/pebble.crt" 2>/dev/null ||
    { echo "Bail out! openssl failed"; return 1; }
  local eab_required=false eab_keys='{}'
  [ -n "${PEBBLE_EAB_KEYS:-}" ] && eab_required=true eab_keys=$PEBBLE_EAB_KEYS
  cat >"$work/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$work/pebble.crt", "privateKey": "$work/pebble.key",
  "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
  "externalAccountBindingRequired": $eab_required, "externalAccountMACKeys": $eab_keys,
  "certificateValidityPeriod": 864000}}
JSON
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=${ACME_E2E_NONCEREJECT:-5} \
    pebble -config "$work/pebble.json" -dnsserver "$dns" >"$work/pebble.log" 2>&1 &
  pids+=($!)
  wait_port 127.0.0.1:14000 && wait_port 127.0.0.1:15000 ||
    { echo "Bail out! Pebble did not start"; cat "$work/pebble.log"; return 1; }
}
