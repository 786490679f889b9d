#!/usr/bin/env bash
#
# End-to-end check of a running sagaflow system: places orders under
# different failure settings of the saga participants and verifies how each
# saga ends. Needs the system up (deployment/up or make up).
set -euo pipefail

ORDER_URL=${ORDER_URL:-http://127.0.0.1:8281}
ORCHESTRATOR_URL=${ORCHESTRATOR_URL:-http://127.0.0.1:8282}
WAREHOUSE_URL=${WAREHOUSE_URL:-http://127.0.0.1:8283}
PAYMENT_URL=${PAYMENT_URL:-http://127.0.0.1:8284}
NOTIFICATION_URL=${NOTIFICATION_URL:-http://127.0.0.1:8285}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-60} # seconds for each order to finish
# The token POST /set needs (deployment/up writes it and passes it to the services).
ADMIN_TOKEN_FILE=${ADMIN_TOKEN_FILE:-${SAGAFLOW_VAR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/var}/admin-token}
POLL_INTERVAL=0.2

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
  3. payment fails always        -> NOT OK (the saga is compensated)
  4. warehouse fails always      -> NOT OK

With several instances of a service (deployment/up --instances N), the
mistakes are set on each instance found at the service's port + 10, + 20, ...
All mistakes are set back to 0 at the end, also when the script fails or
is interrupted.

Exit status: 0 if every scenario passed, 1 if one failed, 2 if a service
is not reachable.

Environment (base URLs):
  ORDER_URL         default http://127.0.0.1:8281
  ORCHESTRATOR_URL  default http://127.0.0.1:8282
  WAREHOUSE_URL     default http://127.0.0.1:8283
  PAYMENT_URL       default http://127.0.0.1:8284
  NOTIFICATION_URL  default http://127.0.0.1:8285
  CHECK_TIMEOUT     seconds to wait for each order (default 60)
  ADMIN_TOKEN_FILE  the admin token POST /set needs (default: the one
                    deployment/up wrote, \$SAGAFLOW_VAR/admin-token)
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

# ------------------------------------------------------------- scenarios
# run_scenario TITLE WAREHOUSE PAYMENT NOTIFICATION EXPECTED_STATUS [DETAIL_REGEX]
# Returns 0 when the order ends with EXPECTED_STATUS and, if DETAIL_REGEX is
# given, a non-empty detail matching it (case-insensitive).
run_scenario() {
  local title=$1 wh=$2 pay=$3 notif=$4 expected=$5 detail_re=${6:-}
  echo
  echo "=== $title"
  echo "mistakes: warehouse=$wh payment=$pay notification=$notif"
  set_mistakes warehouse "$WAREHOUSE_URL" "$wh" || return 1
  set_mistakes payment "$PAYMENT_URL" "$pay" || return 1
  set_mistakes notification "$NOTIFICATION_URL" "$notif" || return 1

  local response order_id
  if ! response=$(curl -fsS --max-time 10 -X POST -H 'Content-Type: application/json' \
    --data "$ORDER_BODY" "$ORDER_URL/neworder"); then
    echo "POST $ORDER_URL/neworder failed" >&2
    return 1
  fi
  order_id=$(jq -r '.order_id // empty' <<<"$response" 2>/dev/null) || true
  if [[ -z $order_id ]]; then
    echo "no order_id in the answer to POST /neworder: $response" >&2
    return 1
  fi
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
scenario "3: payment always fails -> NOT OK" 0 100 0 "$STATUS_NOT_OK"
scenario "4: warehouse always fails -> NOT OK" 100 0 0 "$STATUS_NOT_OK"

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
exit "$failed"
