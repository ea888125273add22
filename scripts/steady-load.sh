#!/usr/bin/env bash
# A steady load on the content and log APIs, run inside a pod of the cluster by scripts/cluster-e2e.sh
# (`kubectl exec -i client -- bash -s TAG SECONDS CONTENT_SVC LOG_SVC < scripts/steady-load.sh`):
# for SECONDS, over and over, a POST /posts (a post of its own, its content "steadyTAG ...") and a
# GET /logs/search, each on a new connection (HTTP/1.0, as a client that resolves the Service and
# connects anew: the path a roll or a drain breaks first), at most 10 s each, then 0.2 s of rest.
# One line per request: `post CODE ID` or `log CODE` (CODE empty: no answer).
set -u
tag=$1 secs=$2 content=$3 logapi=$4
# req HOST REQUEST: the answer of HOST:80 to REQUEST (printf %b: \r\n in REQUEST).
req() { timeout 10 bash -c 'exec 3<>"/dev/tcp/$0/80" && printf "%b" "$1" >&3 && cat <&3' "$1" "$2" 2>/dev/null; }
code() { head -n 1 | tr -d '\r' | cut -d' ' -f2; }
end=$((SECONDS + secs)) i=0
while [ "$SECONDS" -lt "$end" ]; do
  i=$((i + 1))
  body="{\"title\":\"Steady $i\",\"userId\":1,\"content\":\"steady$tag request $i\",\"categoryId\":2}"
  r=$(req "$content" "POST /posts HTTP/1.0\r\nHost: $content\r\nContent-Type: application/json\r\nContent-Length: ${#body}\r\n\r\n$body")
  echo "post $(code <<<"$r") $(tail -n 1 <<<"$r" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')"
  r=$(req "$logapi" "GET /logs/search?path=/posts&size=1 HTTP/1.0\r\nHost: $logapi\r\n\r\n")
  echo "log $(code <<<"$r")"
  sleep 0.2
done
