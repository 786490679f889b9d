#!/usr/bin/env bash
#
# End-to-end check of a running sagaflow system: places orders under
# different failure settings of the saga participants and verifies how each
# saga ends. Needs the system up (deployment/up or make up).
set -euo pipefail

# The ports deployment/up gives the services (SAGAFLOW_HTTP_PORT_BASE + 1 .. + 5).
HTTP_PORT_BASE=${SAGAFLOW_HTTP_PORT_BASE:-8280}
ORDER_URL=${ORDER_URL:-http://127.0.0.1:$((HTTP_PORT_BASE + 1))}
ORCHESTRATOR_URL=${ORCHESTRATOR_URL:-http://127.0.0.1:$((HTTP_PORT_BASE + 2))}
WAREHOUSE_URL=${WAREHOUSE_URL:-http://127.0.0.1:$((HTTP_PORT_BASE + 3))}
PAYMENT_URL=${PAYMENT_URL:-http://127.0.0.1:$((HTTP_PORT_BASE + 4))}
NOTIFICATION_URL=${NOTIFICATION_URL:-http://127.0.0.1:$((HTTP_PORT_BASE + 5))}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-60} # seconds for each order to finish
# The order service answers 503 after its --accept-timeout-ms (10 s by default);
# the client waits longer, so that the 503 arrives instead of a client timeout.
POST_TIMEOUT=${POST_TIMEOUT:-15}
POST_ATTEMPTS=${POST_ATTEMPTS:-5}
# The token POST /set needs (deployment/up writes it and passes it to the services).
ADMIN_TOKEN_FILE=${ADMIN_TOKEN_FILE:-${SAGAFLOW_VAR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/var}/admin-token}
POLL_INTERVAL=0.2
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR_DIR=${SAGAFLOW_VAR:-$REPO/var}
# The reference scenarios run against this system after the four orders
# (sagaflow scenario run --backend attached); CHECK_SCENARIOS= skips them.
CHECK_SCENARIOS=${CHECK_SCENARIOS-$REPO/deployment/scenarios/reference-all-ok.yaml $REPO/deployment/scenarios/reference-notification-fails.yaml $REPO/deployment/scenarios/reference-payment-fails.yaml $REPO/deployment/scenarios/reference-warehouse-fails.yaml}
SAGAFLOW_BIN=${SAGAFLOW_BIN:-$REPO/build/bin/sagaflow}
SAGAFLOW_BROKERS=${SAGAFLOW_BROKERS:-127.0.0.1:${SAGAFLOW_KAFKA_PORT:-9092}}
# The credentials the runner reads the topics with when the system runs with
# SASL (deployment/up writes them); none with a plaintext broker.
KAFKA_CONFIG_FILE=${KAFKA_CONFIG_FILE:-$VAR_DIR/credentials/admin.properties}

# Order statuses as the order service reports them.
STATUS_OK=3
STATUS_NOT_OK=4

ORDER_BODY='{"order_id":0,"user_id":2,"payment":1,"notification":1,"created_at":"2023-11-01T16:35:39.645580261+03:00","approved_at":"2023-11-01T16:35:39.645580311+03:00","sum":10000,"items":[{"item_id":10,"quantity":2,"price":45},{"item_id":15,"quantity":1,"price":10}],"status":1,"detail":""}'

usage() {
  cat <<USAGE
Usage: deployment/check.sh [--help]

Checks a running sagaflow system end to end with four scenarios. Each one
sets the failure rate ("mistakes", percent of requests a participant fails)
of warehouse, payment and notification with POST /set, places an order with
POST /neworder, polls GET /orders/{id} every ${POLL_INTERVAL} s (up to
$CHECK_TIMEOUT s) until the status is $STATUS_OK (OK) or $STATUS_NOT_OK (NOT OK), and prints the
order id, final status, detail and saga steps:

  1. no mistakes                 -> OK
  2. notification fails always   -> OK, with a detail that mentions the
                                    failed notification
  3. payment fails always        -> NOT OK (the saga is compensated), and
                                    the reservation is released: GET /stock
                                    on the warehouse shows the order's items
                                    back where they were before the order
  4. warehouse fails always      -> NOT OK

Every POST /neworder carries an Idempotency-Key of its own. The client
waits $POST_TIMEOUT s for the answer, longer than the order service's accept
timeout (10 s), so a 503 arrives rather than a client timeout; after a 503 or
a timeout the same request is sent again with the same key (up to
$POST_ATTEMPTS times), which answers the same order if the first attempt was
recorded.

Then the reference scenarios (deployment/scenarios/reference-*.yaml: the
same four settings, 20 to 40 orders each, checked for stock, charges,
duplicates, the dead-letter topic and sagaflow replay --verify) run against
this same system with 'sagaflow scenario run --backend attached', which
starts and stops nothing; its table per scenario follows the orders'
output, and a failed check fails check.sh.

With several instances of a service (deployment/up --instances N), the
mistakes are set on each instance found at the service's port + 10, + 20, ...
All mistakes are set back to 0 at the end, also when the script fails or
is interrupted.

Exit status: 0 if every scenario passed, 1 if one failed, 2 if a service
is not reachable (or the reference scenarios could not be run).

Environment (base URLs):
  ORDER_URL         default http://127.0.0.1:8281
  ORCHESTRATOR_URL  default http://127.0.0.1:8282
  WAREHOUSE_URL     default http://127.0.0.1:8283
  PAYMENT_URL       default http://127.0.0.1:8284
  NOTIFICATION_URL  default http://127.0.0.1:8285
  SAGAFLOW_HTTP_PORT_BASE
                    moves those defaults to base + 1 .. base + 5, as it
                    moves the services of deployment/up (default 8280)
  CHECK_TIMEOUT     seconds to wait for each order (default 60)
  POST_TIMEOUT      seconds the client waits for POST /neworder (default 15;
                    keep it above the order service's --accept-timeout-ms)
  POST_ATTEMPTS     POST /neworder attempts with one key (default 5)
  ADMIN_TOKEN_FILE  the admin token POST /set needs (default: the one
                    deployment/up wrote, \$SAGAFLOW_VAR/admin-token)
  CHECK_SCENARIOS   the scenario files run against the system (default:
                    the four deployment/scenarios/reference-*.yaml; empty: none)
  SAGAFLOW_BIN      the sagaflow binary that runs them (default build/bin/sagaflow)
  SAGAFLOW_BROKERS  the system's broker (default 127.0.0.1:\$SAGAFLOW_KAFKA_PORT,
                    port 9092 by default)
  KAFKA_CONFIG_FILE librdkafka properties to read the topics with (default:
                    \$SAGAFLOW_VAR/credentials/admin.properties, if it exists)
USAGE
}

case ${1:-} in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) echo "check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "check.sh: '$tool' not found: run deployment/install-deps" >&2; exit 2; }
done

# ------------------------------------------------------------ reachability
unreachable=0
for entry in order:"$ORDER_URL" orchestrator:"$ORCHESTRATOR_URL" warehouse:"$WAREHOUSE_URL" \
  payment:"$PAYMENT_URL" notification:"$NOTIFICATION_URL"; do
  name=${entry%%:*} url=${entry#*:}
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/" 2>/dev/null) || true
  if [[ $code != 200 ]]; then
    echo "$name service not reachable at $url: is the system up? run make up" >&2
    unreachable=1
  fi
done
((!unreachable)) || exit 2

# ------------------------------------------------------------- mistakes
if [[ ! -r $ADMIN_TOKEN_FILE ]]; then
  echo "check.sh: no admin token at $ADMIN_TOKEN_FILE (deployment/up writes it; or set ADMIN_TOKEN_FILE)" >&2
  exit 2
fi
ADMIN_TOKEN=$(head -n 1 "$ADMIN_TOKEN_FILE")
# instances_of NAME URL: URL, then the URL of every further instance of the
# service that answers GET / as NAME, at the ports deployment/up --instances N
# gives them (the service's port + 10, + 20, ...). Mistakes are a setting of
# each instance, so they are set on all of them.
instances_of() {
  local name=$1 url=$2 base port k next
  echo "$url"
  [[ $url =~ ^(.*):([0-9]+)$ ]] || return 0
  base=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
  for ((k = 1; k <= 8; k++)); do
    next="$base:$((port + 10 * k))"
    [[ $(curl -s --max-time 2 "$next/" 2>/dev/null | jq -r '.service // empty' 2>/dev/null) == "$name" ]] || break
    echo "$next"
  done
}

# set_mistakes NAME URL PERCENT: on every instance of the service.
set_mistakes() {
  local answer instance
  for instance in $(instances_of "$1" "$2"); do
    if ! answer=$(curl -sS --max-time 5 -X POST -H 'Content-Type: application/json' \
      -H "Authorization: Bearer $ADMIN_TOKEN" --data "{\"mistakes\": $3}" -w '\n%{http_code}' "$instance/set"); then
      echo "could not set mistakes=$3 on $1 ($instance/set)" >&2
      return 1
    fi
    if [[ ${answer##*$'\n'} != 200 ]]; then
      echo "could not set mistakes=$3 on $1 ($instance/set): ${answer%$'\n'*}" >&2
      return 1
    fi
  done
}

reset_mistakes() {
  local rc=$?
  trap - EXIT
  echo
  echo "resetting mistakes to 0 on warehouse, payment and notification"
  set_mistakes warehouse "$WAREHOUSE_URL" 0 || rc=1
  set_mistakes payment "$PAYMENT_URL" 0 || rc=1
  set_mistakes notification "$NOTIFICATION_URL" 0 || rc=1
  exit "$rc"
}
trap reset_mistakes EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------- orders
RUN_ID="$(date +%s)-$$"
order_seq=0

# place_order KEY: POST /neworder with Idempotency-Key KEY; prints the order
# id. A 503 (the order service could not record the order within its accept
# timeout) or a client timeout is retried with the same key, which answers the
# same order if an earlier attempt was recorded after all.
place_order() {
  local key=$1 attempt answer code body id
  for ((attempt = 1; attempt <= POST_ATTEMPTS; attempt++)); do
    answer=$(curl -sS --max-time "$POST_TIMEOUT" -X POST -H 'Content-Type: application/json' \
      -H "Idempotency-Key: $key" --data "$ORDER_BODY" -w '\n%{http_code}' "$ORDER_URL/neworder" 2>&1) ||
      answer=$'\n000'
    code=${answer##*$'\n'} body=${answer%$'\n'*}
    case $code in
      2??)
        id=$(jq -r '.order_id // empty' <<<"$body" 2>/dev/null) || id=""
        if [[ -z $id ]]; then
          echo "no order_id in the answer to POST /neworder: $body" >&2
          return 1
        fi
        ((attempt == 1)) || echo "POST /neworder accepted on attempt $attempt (Idempotency-Key $key)" >&2
        echo "$id"
        return 0
        ;;
      503 | 000)
        echo "POST $ORDER_URL/neworder: ${code/#000/no answer within $POST_TIMEOUT s} (attempt $attempt of $POST_ATTEMPTS); retrying with the same Idempotency-Key" >&2
        sleep 1
        ;;
      *)
        echo "POST $ORDER_URL/neworder answered $code: $body" >&2
        return 1
        ;;
    esac
  done
  echo "POST $ORDER_URL/neworder failed $POST_ATTEMPTS times (Idempotency-Key $key)" >&2
  return 1
}

# order_stock: "ITEM:AVAILABLE/RESERVED ..." for the items of ORDER_BODY, from
# GET /stock on the warehouse (an item it has not seen yet has the default stock).
order_stock() {
  local stock
  stock=$(curl -fsS --max-time 5 "$WAREHOUSE_URL/stock") || return 1
  jq -r --argjson order "$ORDER_BODY" '
    . as $s
    | [$order.items[].item_id]
    | map(. as $id | ($s.items // [] | map(select(.item_id == $id)) | first)
          // {item_id: $id, available: $s.default_stock, reserved: 0})
    | map("\(.item_id):\(.available)/\(.reserved)") | join(" ")' <<<"$stock"
}

# ------------------------------------------------------------- scenarios
# run_scenario TITLE WAREHOUSE PAYMENT NOTIFICATION EXPECTED_STATUS [DETAIL_REGEX [STOCK]]
# Returns 0 when the order ends with EXPECTED_STATUS and, if DETAIL_REGEX is
# given, a non-empty detail matching it (case-insensitive); with STOCK
# non-empty, when the order's items are back at their stock before the order.
run_scenario() {
  local title=$1 wh=$2 pay=$3 notif=$4 expected=$5 detail_re=${6:-} check_stock=${7:-}
  echo
  echo "=== $title"
  echo "mistakes: warehouse=$wh payment=$pay notification=$notif"
  set_mistakes warehouse "$WAREHOUSE_URL" "$wh" || return 1
  set_mistakes payment "$PAYMENT_URL" "$pay" || return 1
  set_mistakes notification "$NOTIFICATION_URL" "$notif" || return 1

  local before=""
  if [[ -n $check_stock ]]; then
    before=$(order_stock) || { echo "GET $WAREHOUSE_URL/stock failed" >&2; return 1; }
  fi

  local order_id
  order_seq=$((order_seq + 1)) # here, not inside $(...), which is a subshell
  order_id=$(place_order "check-$RUN_ID-$order_seq") || return 1
  echo "order id: $order_id"

  local order="" status="" end=$((SECONDS + CHECK_TIMEOUT))
  while :; do
    if order=$(curl -fsS --max-time 5 "$ORDER_URL/orders/$order_id" 2>/dev/null); then
      status=$(jq -r '.status // empty' <<<"$order" 2>/dev/null) || status=""
      [[ $status == "$STATUS_OK" || $status == "$STATUS_NOT_OK" ]] && break
    fi
    if ((SECONDS >= end)); then
      echo "order $order_id did not finish within $CHECK_TIMEOUT s (last status: ${status:-none})" >&2
      [[ -n $order ]] && echo "last answer: $order" >&2
      return 1
    fi
    sleep "$POLL_INTERVAL"
  done

  local status_text detail
  status_text=$(jq -r '.status_text // ""' <<<"$order")
  detail=$(jq -r '.detail // ""' <<<"$order")
  echo "status: $status_text ($status)"
  echo "detail: ${detail:-(empty)}"
  echo "steps:"
  jq -r '.steps // [] |
    if type == "array" then
      (if length == 0 then "  (none)" else .[] | "  - " + (if type == "string" then . else tojson end) end)
    else "  " + tostring end' <<<"$order"

  local ok=1
  if [[ $status != "$expected" ]]; then
    echo "expected status $expected, got $status" >&2
    ok=0
  fi
  if [[ -n $detail_re ]]; then
    if [[ -z $detail ]]; then
      echo "expected a non-empty detail" >&2
      ok=0
    elif ! grep -qiE "$detail_re" <<<"$detail"; then
      echo "expected the detail to match /$detail_re/ (case-insensitive)" >&2
      ok=0
    fi
  fi
  if [[ -n $check_stock ]]; then
    # The reservation is released when the saga is compensated; the stock
    # view may trail the order's end by a moment.
    local after="" stock_end=$((SECONDS + 10))
    while :; do
      after=$(order_stock) || after=""
      [[ $after == "$before" ]] && break
      ((SECONDS >= stock_end)) && break
      sleep "$POLL_INTERVAL"
    done
    echo "stock (item available/reserved) before: $before; after: ${after:-no answer}"
    if [[ $after != "$before" ]]; then
      echo "expected the reservation to be released (stock back to $before), got ${after:-no answer}" >&2
      ok=0
    fi
  fi
  ((ok))
}

results=()
failed=0
scenario() {
  if run_scenario "$@"; then
    results+=("PASS  $1")
    echo "PASS: $1"
  else
    results+=("FAIL  $1")
    echo "FAIL: $1"
    failed=1
  fi
}

scenario "1: no mistakes -> OK" 0 0 0 "$STATUS_OK"
scenario "2: notification always fails -> OK, detail mentions notify" 0 0 100 "$STATUS_OK" 'notif'
scenario "3: payment always fails -> NOT OK, reservation released" 0 100 0 "$STATUS_NOT_OK" "" stock
scenario "4: warehouse always fails -> NOT OK" 100 0 0 "$STATUS_NOT_OK"

# ------------------------------------------------- the reference scenarios
if [[ -n $CHECK_SCENARIOS ]]; then
  echo
  echo "=== reference scenarios against this system (sagaflow scenario run --backend attached)"
  if [[ ! -x $SAGAFLOW_BIN ]]; then
    echo "check.sh: $SAGAFLOW_BIN not found: build it (make build) or set SAGAFLOW_BIN" >&2
    exit 2
  fi
  [[ $ORDER_URL =~ :([0-9]+)/*$ ]] || { echo "check.sh: no port in ORDER_URL=$ORDER_URL" >&2; exit 2; }
  runner_args=(--backend attached --brokers "$SAGAFLOW_BROKERS" --http-port-base "$((BASH_REMATCH[1] - 1))"
    --admin-token-file "$ADMIN_TOKEN_FILE")
  [[ -r $KAFKA_CONFIG_FILE ]] && runner_args+=(--kafka-config-file "$KAFKA_CONFIG_FILE")
  # shellcheck disable=SC2086 # CHECK_SCENARIOS is a list of files
  set +e
  "$SAGAFLOW_BIN" scenario run "${runner_args[@]}" $CHECK_SCENARIOS
  rc=$?
  set -e
  case $rc in
    0) results+=("PASS  reference scenarios: $(wc -w <<<"$CHECK_SCENARIOS") file(s)") ;;
    1) results+=("FAIL  reference scenarios: a check failed (see the tables above)"); failed=1 ;;
    *) results+=("FAIL  reference scenarios: could not be run (exit $rc)"); failed=2 ;;
  esac
fi

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
exit "$failed"
