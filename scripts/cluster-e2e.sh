# scripts/cluster.sh e2e (sourced by scripts/cluster.sh: its variables and functions): a snapshot of
# the host, `up`, the checks, `down`, the snapshot again; prints `cluster e2e: N passed, M failed`.
# CAMPUS_CLUSTER_PLATFORM=1: also the chart (`platform`, the images of scripts/images.sh build), a post
# through the content Service, `helm uninstall`.

# ok, bad: scripts/lib.sh's (sourced by scripts/cluster.sh), failures on stdout like the rest.
checks_begin "cluster e2e" 1
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# host_snapshot DIR: what the cluster could leave behind on the host.
host_snapshot() {
  local s=$1; mkdir -p "$s"
  sort /proc/self/mounts >"$s/mounts"
  { ip netns list 2>/dev/null || true; } >"$s/netns"
  ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort >"$s/links"
  ip -o addr show | awk '{ print $2, $3, $4 }' | sort >"$s/addrs"
  { ip route show table all; ip -6 route show table all; } | sort >"$s/routes"
  { ip rule show; ip -6 rule show; } >"$s/rules"
  # Rules without their counters.
  { iptables-save; ip6tables-save; iptables-legacy-save; ip6tables-legacy-save; } 2>/dev/null |
    grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' >"$s/iptables" || true
  nft list ruleset >"$s/nft" 2>&1
  sysctl_dump >"$s/sysctl"
  # Every cgroup but those of the machine's own sessions (process_api) and of pods (kubepods).
  find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d -not -path '*/process_api/*' | sort >"$s/cgroups"
  # Files the daemons would write by default if they were not in the node's mount namespace.
  ls -d /run/* /var/lib/* /var/log/* /etc/cni /opt/cni /var/lib/kubelet /var/lib/containerd /var/lib/cni \
    /var/log/pods /var/log/containers /run/containerd /run/netns 2>/dev/null | sort >"$s/files" || true
  # Processes of the cluster: in its cgroups, in a network namespace the host did not have before, or
  # one of its binaries started with its data directory.
  local p exe known=${BEFORE:-$s}/netns-inodes
  : >"$s/procs"
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    if grep -q "/$CGROOT/" "$p/cgroup" 2>/dev/null; then echo "${p#/proc/} $exe (cgroup)"
    elif [ -f "$known" ] && ! grep -qxF "$(readlink "$p/ns/net")" "$known"; then echo "${p#/proc/} $exe (netns)"
    elif tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$CD"; then echo "${p#/proc/} $exe (cmdline)"
    fi >>"$s/procs"
  done
  for p in /proc/[0-9]*; do readlink "$p/ns/net" 2>/dev/null || true; done | sort -u >"$s/netns-inodes"
}

same() {
  local f=$1
  if diff -q "$BEFORE/$f" "$AFTER/$f" >/dev/null; then ok "host $f as before"
  else bad "host $f changed:"; diff "$BEFORE/$f" "$AFTER/$f" | head -n 20 | sed 's/^/    /'; fi
}

# node_gets_hello URL: the node's curl of URL answers the web pod's page.
node_gets_hello() { [[ $(node_exec curl -fsS -m 5 "$1") = hello-from-pod ]]; }

# in_pod POD CMD...
in_pod() { k exec "$1" -- "${@:2}"; }

e2e() {
  local t0; t0=$(now)
  holder_alive && die "the cluster is up: \`$0 down\` first"
  build_all
  # The host's servers, reached from pods: started (and stopped at the end) when not running, before
  # the first snapshot.
  # (By port: they may run from another checkout, whose pid files `servers.sh status` cannot see.)
  local started_servers=0 sv up_ports=0
  for sv in $HOST_SERVERS; do listening "${sv##*:}" && up_ports=1; done
  if [ "$WITH_HOST" != 0 ] && [ $up_ports = 0 ]; then
    bash "$ROOT/scripts/servers.sh" start; started_servers=1
  fi
  local snap=$ROOT/target/cluster-e2e
  rm -rf "$snap"; BEFORE=$snap/before AFTER=$snap/after
  host_snapshot "$BEFORE"
  [ -s "$BEFORE/procs" ] && { echo "cluster e2e: cluster processes before up:"; cat "$BEFORE/procs"; }

  local t1; t1=$(now)
  # Whatever ends the e2e early (a command that fails under set -e), the cluster goes down.
  trap 'if holder_alive; then echo "cluster e2e: ended early: down"; (down) >/dev/null 2>&1 || true; fi' EXIT
  # (a subshell: a failing `up` exits, the e2e still goes on to `down`)
  if (up); then ok "up ($(since "$t1") s)"; else bad "up"; fi
  if holder_alive; then
    e2e_checks
    if [ "${CAMPUS_CLUSTER_PLATFORM:-0}" = 1 ]; then platform_checks; fi
    host_snapshot "$snap/up"
    # While up: the host's iptables and mounts are untouched, the node's have the rules.
    if diff -q "$BEFORE/iptables" "$snap/up/iptables" >/dev/null && diff -q "$BEFORE/nft" "$snap/up/nft" >/dev/null; then
      ok "while up: the host's iptables/nftables unchanged"; else bad "while up: the host's iptables changed"; fi
    if diff -q "$BEFORE/mounts" "$snap/up/mounts" >/dev/null; then ok "while up: no mount on the host"
    else bad "while up: mounts on the host:"; diff "$BEFORE/mounts" "$snap/up/mounts" | head | sed 's/^/    /'; fi
    local kp; kp=$(node_exec iptables-save | grep -c '^-A KUBE-' || true)
    [ "$kp" -gt 0 ] && ok "kube-proxy's rules are in the node ($kp KUBE- rules)" || bad "no kube-proxy rules in the node"
    local changed; changed=$(diff "$BEFORE/sysctl" "$snap/up/sysctl" | grep '^[<>]' | grep -v "\.$HOST_IF\." || true)
    if [ -z "$changed" ]; then ok "while up: the host's sysctls as before (but the veth's own)"
    else bad "while up: sysctls changed:"; echo "$changed" | head | sed 's/^/    /'; fi
    rss_figures
    node_exec ctr --address /run/containerd/containerd.sock -n k8s.io images ls |
      awk 'NR > 1 && $1 !~ /^sha256:/ { printf "cluster e2e: image %-50s %s %s\n", $1, $4, $5 }'
  fi
  local t2; t2=$(now)
  if (down); then ok "down ($(since "$t2") s)"; else bad "down"; fi
  host_snapshot "$AFTER"
  local f
  for f in mounts netns links addrs routes rules iptables nft sysctl cgroups files; do same "$f"; done
  if [ -s "$AFTER/procs" ]; then bad "cluster processes left:"; sed 's/^/    /' "$AFTER/procs"; else ok "no cluster process left"; fi
  local extra; extra=$(comm -13 "$BEFORE/netns-inodes" "$AFTER/netns-inodes")
  if [ -z "$extra" ]; then ok "no network namespace left"; else bad "network namespaces left: $extra"; fi
  [ $started_servers = 1 ] && bash "$ROOT/scripts/servers.sh" stop >/dev/null
  echo "cluster e2e: total $(since "$t0") s"
  checks_end
}

e2e_checks() {
  local bb; bb=$(cat "$IMAGES/busybox.name")
  check "node $NODE Ready" node_ready
  k delete pod web client --ignore-not-found --wait=true >/dev/null 2>&1 || true
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: web
    image: $bb
    imagePullPolicy: Never
    command: [sh, -c, 'echo hello-from-pod > /tmp/index.html; exec httpd -f -p 8080 -h /tmp']
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - name: client
    image: $bb
    imagePullPolicy: Never
    command: [sleep, "3600"]
EOF
  local t; t=$(now)
  if k wait --for=condition=Ready pod/web pod/client --timeout=120s >/dev/null; then
    ok "two busybox pods (Debian busybox-static image, never pulled) Ready ($(since "$t") s)"
  else bad "pods not Ready"; k describe pod web client | tail -n 20; return 0; fi
  local ip; ip=$(k get pod web -o jsonpath='{.status.podIP}')
  local svc; svc=$(k get svc web -o jsonpath='{.spec.clusterIP}')
  # HTTP with nc (busybox-static's wget crashes in getaddrinfo: static glibc without NSS modules).
  local req='printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3'
  [[ $(node_exec curl -fsS -m 5 "http://$ip:8080/") = hello-from-pod ]] && ok "the node reaches the pod ($ip)" || bad "node -> pod $ip"
  # A new Service answers once kube-proxy has synced its rules (it may lag the pods by a second or so).
  (wait_for 30 "Service $svc" node_gets_hello "http://$svc/") && ok "the node reaches the Service ($svc, kube-proxy iptables)" || bad "node -> service $svc"
  [[ $(in_pod client sh -c "$req $ip 8080" | tail -n 1) = hello-from-pod ]] && ok "pod -> pod" || bad "pod -> pod"
  [[ $(in_pod client sh -c "$req $svc 80" | tail -n 1) = hello-from-pod ]] && ok "pod -> Service" || bad "pod -> Service"
  [[ $(in_pod web sh -c "$req $svc 80" | tail -n 1) = hello-from-pod ]] && ok "pod -> its own Service (hairpin)" || bad "hairpin"
  [[ $(k logs web 2>&1; echo x) ]] && ok "kubectl logs" || bad "kubectl logs"
  if [ "$WITH_DNS" != 0 ]; then
    local out; out=$(in_pod client nslookup kubernetes.default.svc.cluster.local 2>&1 || true)
    grep -q "Address: $API_SVC_IP" <<<"$out" && ok "DNS: kubernetes.default.svc.cluster.local -> $API_SVC_IP" || { bad "DNS kubernetes.default"; echo "$out" | sed 's/^/    /'; }
    out=$(in_pod client nslookup web 2>&1 || true)
    grep -q "Address: $svc" <<<"$out" && ok "DNS: web (search path) -> $svc" || { bad "DNS web"; echo "$out" | sed 's/^/    /'; }
    [[ $(in_pod client sh -c "$req web.default.svc.cluster.local 80" | tail -n 1) = hello-from-pod ]] && ok "pod -> Service by name" || bad "pod -> Service by name"
  fi
  debian_check
  [ "$WITH_HOST" != 0 ] && [ "$WITH_DNS" != 0 ] && host_checks
  k delete pod web client --wait=false >/dev/null
}

# A pod of the debootstrap Debian image: runs to completion, prints the Debian release.
debian_check() {
  local suite; suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: debian}
spec:
  restartPolicy: Never
  containers:
  - name: debian
    image: localhost/campus/debian:$suite-minbase
    imagePullPolicy: Never
    command: [bash, -c, 'echo "debian \$(cat /etc/debian_version) apt \$(apt-get --version | head -n 1)"']
EOF
  local out="" end=$(($(date +%s) + 60))
  until [ "$(k get pod debian -o jsonpath='{.status.phase}')" = Succeeded ]; do
    [ "$(date +%s)" -lt "$end" ] || break; sleep 1
  done
  out=$(k logs debian 2>&1 || true)
  grep -q "^debian $(cut -d. -f1 /etc/debian_version)\." <<<"$out" && ok "a pod of the Debian $suite image (debootstrap): $out" || bad "Debian pod: $out"
  k delete pod debian --wait=false >/dev/null
}

# The host's servers from a pod, by name (selector-less Services in $HOST_NS).
host_checks() {
  local h=svc.cluster.local out
  # A TCP connect (busybox nc has no -z): nc exits 1 at once when refused or unreachable; 0 when the
  # server closes, killed by timeout when it waits for the client: both mean connected.
  local connect='f() { timeout 4 nc -w 2 "$1" "$2" </dev/null >/dev/null 2>&1; [ $? = 1 ] && echo closed || echo open; }; f'
  out=$(in_pod client sh -c "printf 'PING\r\n' | nc -w 3 redis.$HOST_NS.$h 6379" 2>&1 | tr -d '\r' || true)
  [ "$out" = +PONG ] && ok "pod -> redis.$HOST_NS (the host's Redis): PONG" || bad "pod -> redis.$HOST_NS: $out"
  out=$(in_pod client sh -c "nc -w 3 mysql.$HOST_NS.$h 3306 </dev/null | head -c 64 | tr -dc 'A-Za-z0-9.-'" 2>&1 || true)
  grep -q MariaDB <<<"$out" && ok "pod -> mysql.$HOST_NS (the host's MariaDB): greeting $out" || bad "pod -> mysql.$HOST_NS: $out"
  out=$(in_pod client sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 elasticsearch.$HOST_NS.$h 9200" 2>&1 || true)
  grep -q '"cluster_name"' <<<"$out" && ok "pod -> elasticsearch.$HOST_NS (the host's OpenSearch)" || bad "pod -> elasticsearch.$HOST_NS: $(head -c 200 <<<"$out")"
  out=$(in_pod client sh -c "$connect mongodb.$HOST_NS.$h 27017" 2>&1 || true)
  [ "$out" = open ] && ok "pod -> mongodb.$HOST_NS (the host's FerretDB) accepts" || bad "pod -> mongodb.$HOST_NS: $out"
  local end=$(($(date +%s) + 60))
  until out=$(in_pod client sh -c "$connect kafka.$HOST_NS.$h $KAFKA_PORT" 2>&1) && [ "$out" = open ]; do
    [ "$(date +%s)" -lt "$end" ] || break; sleep 1
  done
  [ "$out" = open ] && ok "pod -> kafka.$HOST_NS (the cluster's Kafka node on $HOST_IP) accepts" || bad "pod -> kafka.$HOST_NS: $out"
  out=$(in_pod client sh -c "$connect $HOST_IP 2024" 2>&1 || true)
  [ "$out" = closed ] && ok "pod -> $HOST_IP:2024 (another listener of the host) refused" || bad "pod reaches $HOST_IP:2024"
}

# http_in_pod NS METHOD URL [BODY]: one HTTP/1.0 request with busybox nc from the pod `client` of NS;
# prints the response (status line, headers, body).
http_in_pod() {
  local ns=$1 method=$2 url=$3 body=${4:-}
  local hostport=${url#http://}; hostport=${hostport%%/*}
  local path=/${url#http://*/}
  local host=${hostport%:*} port=80
  [ "$host" != "$hostport" ] && port=${hostport##*:}
  local req="$method $path HTTP/1.0\r\nHost: $host\r\n"
  [ -n "$body" ] && req+="Content-Type: application/json\r\nContent-Length: ${#body}\r\n"
  req+="\r\n$body"
  # The client pod runs the Debian image: bash's /dev/tcp resolves the name with glibc (through
  # CoreDNS) and reads until the server closes (HTTP/1.0). (busybox nc quits at the end of its
  # input, before a slower server answers; busybox-static's wget crashes in getaddrinfo.)
  k -n "$ns" exec client -- bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "%b" "$2" >&3 && cat <&3' "$host" "$port" "$req"
}

# first_id: the first `"id":N` of an answer on stdin.
first_id() { sed -n 's/.*"id":\([0-9]*\).*/\1/p' | head -n 1; }

# answers PATTERN METHOD URL: the answer to the request from the client pod matches PATTERN.
answers() { grep -q -- "$1" <<<"$(http_in_pod "$RELEASE_NS" "$2" "$3" 2>&1)"; }
# until_in_pod SECONDS PATTERN METHOD URL: repeats the request until its answer matches PATTERN
# (wait_for in a subshell: its timeout fails the check instead of ending the e2e).
until_in_pod() { local secs=$1; shift; (wait_for "$secs" "$3 answering $1" answers "$@"); }

# The chart (scripts/cluster.sh platform) and a post through the content Service, then uninstall.
platform_checks() {
  local ns=$RELEASE_NS t; t=$(now)
  if (platform); then ok "helm install to CampusPlatform Ready ($(since "$t") s)"
  else bad "CampusPlatform not Ready"; k -n "$ns" get campusplatform,deploy,pods -o wide 2>&1 | sed 's/^/    /'
    # (why: its conditions, the topics not ready with their messages, the operator's last words)
    k -n "$ns" get campusplatform -o jsonpath='{range .items[*].status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' 2>&1 | sed 's/^/    /'
    k -n "$ns" get campusplatform -o jsonpath='{range .items[*].status.topics[?(@.ready==false)]}{.name}: {.message}{"\n"}{end}' 2>&1 | sed 's/^/    topic not ready: /'
    k -n "$ns" logs deploy/"$RELEASE"-operator --tail=25 2>&1 | cut -c1-400 | sed 's/^/    /'
    return 0; fi
  local unavailable
  unavailable=$(k -n "$ns" get deploy -o jsonpath='{range .items[*]}{.metadata.name} {.status.availableReplicas} {.spec.replicas}{"\n"}{end}' | awk '$2 != $3')
  [ -z "$unavailable" ] && ok "every Deployment of $ns Available ($(k -n "$ns" get deploy -o name | wc -l))" || bad "Deployments not Available: $unavailable"
  local pdbs
  pdbs=$(k -n "$ns" get pdb -o jsonpath='{range .items[*]}{.metadata.name}={.status.disruptionsAllowed} {end}')
  [ "$(wc -w <<<"$pdbs")" = 3 ] && ! grep -q '=0' <<<"$pdbs" &&
    ok "a PodDisruptionBudget per API, each allowing a disruption: $pdbs" || bad "PodDisruptionBudgets: '$pdbs'"
  local op holder
  op=$(k -n "$ns" get pod -l app.kubernetes.io/component=operator -o jsonpath='{.items[0].metadata.name}')
  holder=$(k -n "$ns" get lease -o jsonpath='{.items[*].spec.holderIdentity}')
  grep -qw "$op" <<<"$holder" && ok "the operator pod $op holds the Lease" || bad "Lease holder '$holder', operator pod '$op'"
  local sa; sa=$(k -n "$ns" get pod "$op" -o jsonpath='{.spec.serviceAccountName}')
  # (Its rights: a RoleBinding in $ns, Filebeat's objects in $FILEBEAT_NS, the Filebeat binding by name.)
  local as="system:serviceaccount:$ns:$sa" denied="" q
  for q in "create clusterroles" "bind clusterrole/cluster-admin" "delete clusterrole/cluster-admin" \
      "-n kube-system get secrets" "-n kube-system update leases/kube-scheduler" "-n kube-system create deployments" \
      "-n $FILEBEAT_NS create deployments" "create clusterrolebindings" "delete clusterrolebinding/cluster-admin"; do
    # shellcheck disable=SC2086
    [ "$(k auth can-i --as="$as" $q 2>/dev/null)" = no ] || denied+=" [$q]"
  done
  for q in "-n $ns create deployments" "-n $FILEBEAT_NS patch daemonsets" "update clusterrolebinding/$sa-filebeat"; do
    # shellcheck disable=SC2086
    [ "$(k auth can-i --as="$as" $q 2>/dev/null)" = yes ] || denied+=" [cannot: $q]"
  done
  [ -z "$denied" ] && ok "RBAC enforced: $sa cannot create ClusterRoles or ClusterRoleBindings, touch cluster-admin, kube-system (Secrets, a Lease, Deployments) or more than Filebeat in $FILEBEAT_NS; it can what it needs" ||
    bad "RBAC: $sa:$denied"
  # Pod Security: the release namespace enforces restricted (every pod the chart and the operator
  # made was admitted under it), Filebeat's namespace privileged.
  local levels; levels=$(k get namespace "$ns" "$FILEBEAT_NS" -o jsonpath='{range .items[*]}{.metadata.labels.pod-security\.kubernetes\.io/enforce} {end}')
  [ "$levels" = "restricted privileged " ] && ok "Pod Security: $ns enforces restricted, $FILEBEAT_NS (Filebeat) privileged" ||
    bad "Pod Security levels of $ns and $FILEBEAT_NS: '$levels'"
  # A client pod in the release namespace: names resolve through CoreDNS there too.
  k -n "$ns" delete pod client --ignore-not-found --wait=true >/dev/null 2>&1 || true
  # (The namespace enforces restricted: the client runs as nobody, as every pod there must.)
  k -n "$ns" run client --image="localhost/campus/debian:$(. /etc/os-release && echo "$VERSION_CODENAME")-minbase" \
    --image-pull-policy=Never --restart=Never --override-type=strategic --overrides="$(restricted_overrides client "" 65534)" \
    -- sleep 3600 >/dev/null
  k -n "$ns" wait --for=condition=Ready pod/client --timeout=60s >/dev/null
  # (the dev infrastructure's checks ask OpenSearch through its Service from the client pod)
  if [ "$INFRA" = pods ]; then infra_checks "$ns"; expose_checks "$ns"; fi
  local svcs content coupon admin
  # (The operator's Services; the chart's `expose` Services of helm/dev-values.yaml, in pods mode,
  # are checked on their own: expose_checks.)
  svcs=$(k -n "$ns" get svc -o name | sed 's|^service/||' | grep -v -- '-expose-')
  content=$(grep -- '-content-api$' <<<"$svcs" | head -n 1)
  coupon=$(grep -- '-coupon-api$' <<<"$svcs" | head -n 1)
  admin=$(grep -- '-coupon-admin$' <<<"$svcs" | head -n 1)
  local out id
  out=$(http_in_pod "$ns" POST "http://$content/posts" '{"title":"Hello cluster","userId":1,"content":"Kafka in pods","categoryId":2}' 2>&1 || true)
  id=$(first_id <<<"$out")
  [ -n "$id" ] && ok "POST /posts through Service $content: post $id" || bad "POST /posts: $(tail -n 3 <<<"$out")"
  if [ -n "$id" ]; then
    until_in_pod 60 '"title":"Hello cluster"' GET "http://$content/posts/$id/detail" &&
      ok "GET /posts/$id/detail (the cache worker's Redis)" || bad "post $id has no detail after 60 s"
    until_in_pod 120 "\"id\":$id," GET "http://$content/list/search?keyword=pods" &&
      ok "post $id searchable ($(since "$t") s after helm install)" || bad "post $id not in search after 120 s"
    until_in_pod 60 "\"id\":$id," GET "http://$content/list/inbox/2" &&
      ok "post $id in follower 2's inbox (MongoDB)" || bad "post $id not in the inbox after 60 s"
    out=$(http_in_pod "$ns" PUT "http://$content/posts/$id" '{"title":"Hello again","userId":1,"content":"Updated in pods","categoryId":2}' 2>&1 || true)
    grep -q '"version":2' <<<"$out" && ok "PUT /posts/$id: version 2" || bad "PUT /posts/$id: $(tail -n 1 <<<"$out")"
    until_in_pod 60 '"title":"Hello again"' GET "http://$content/posts/$id/detail" &&
      until_in_pod 60 "\"id\":$id," GET "http://$content/list/search?keyword=updated" &&
      ok "the update reached detail and search" || bad "the update of post $id did not reach detail and search"
    out=$(http_in_pod "$ns" DELETE "http://$content/posts/$id" 2>&1 || true)
    grep -q '^HTTP/1.[01] 204' <<<"$out" && ok "DELETE /posts/$id: 204" || bad "DELETE /posts/$id: $(head -n 1 <<<"$out")"
    until_in_pod 60 '^HTTP/1.[01] 404' GET "http://$content/posts/$id/detail" &&
      until_in_pod 60 '^\[\]$' GET "http://$content/list/search?keyword=updated" &&
      ok "the delete reached detail (404) and search (no hit)" || bad "the delete of post $id did not reach detail and search"
  fi
  kafka_restart "$ns" "$content"
  # Filebeat (the DaemonSet) ships the pods' access logs to Kafka, the native indexer to OpenSearch,
  # the log API finds the requests above.
  local logapi ds
  logapi=$(grep -- '-log-api$' <<<"$svcs" | head -n 1)
  # (Filebeat lives in a namespace of its own, Pod Security privileged: its hostPath volumes.)
  (wait_for 60 "Filebeat ready" filebeat_ready "$FILEBEAT_NS") || true
  ds=$(filebeat_ds "$FILEBEAT_NS")
  filebeat_ready "$FILEBEAT_NS" && ok "Filebeat DaemonSet ready in $FILEBEAT_NS ($ds, image $(k -n "$FILEBEAT_NS" get ds -o jsonpath='{.items[0].spec.template.spec.containers[0].image}'))" ||
    { bad "Filebeat DaemonSet in $FILEBEAT_NS: '$ds'"; k -n "$FILEBEAT_NS" logs ds/"${ds%% *}" --tail=20 2>&1 | sed 's/^/    /'; }
  [ -z "$(k -n "$ns" get ds -o name 2>/dev/null)" ] && ok "no DaemonSet in $ns (restricted)" || bad "DaemonSets in $ns: $(k -n "$ns" get ds -o name | tr '\n' ' ')"
  if [ -n "$id" ] && [ -n "$logapi" ]; then
    until_in_pod 180 '"total":[1-9]' GET "http://$logapi/logs/search?path=/posts/$id&method=PUT" &&
      ok "the PUT of post $id found by /logs/search (Filebeat -> Kafka -> campus-log index -> OpenSearch)" ||
      { bad "the PUT of post $id not in /logs/search after 180 s: $(http_in_pod "$ns" GET "http://$logapi/logs/search?path=/posts/$id" 2>&1 | tail -n 1 | head -c 300)";
        k -n "$FILEBEAT_NS" logs ds/"${ds%% *}" --tail=15 2>&1 | grep -v 'no valid /etc/<distrib>-release' | sed 's/^/    /'
        # (which hop lost it: every request the indexer stored, the indexer's own log and lag)
        echo "    all access logs: $(http_in_pod "$ns" GET "http://$logapi/logs/search?size=1" 2>&1 | tail -n 1 | head -c 300)"
        worker_diag "$ns" log-index; }
  else bad "no log API Service or no post: '$logapi' '$id'"; fi
  # Coupons: an event on the admin Service (never the public one), a request, the coupon issued.
  local ev; ev=$(new_event "$ns" "$admin" Cluster 5)
  if [ -n "$ev" ]; then
    ok "coupon event $ev created on Service $admin"
    out=$(http_in_pod "$ns" POST "http://$coupon/coupons" "{\"userId\":7,\"couponEventId\":$ev}" 2>&1 || true)
    grep -q '^HTTP/1.[01] 20[0-2]' <<<"$out" && ok "POST /coupons through Service $coupon: $(head -n 1 <<<"$out" | tr -d '\r')" || bad "POST /coupons: $(tail -n 1 <<<"$out")"
    until_in_pod 60 "\"couponEventId\":$ev" GET "http://$coupon/coupons?userId=7" &&
      ok "the coupon reached MySQL through Kafka (GET /coupons?userId=7)" || bad "no coupon of event $ev for user 7 after 60 s"
  else bad "POST /admin/coupon-events on Service $admin: no event id"; fi
  coupon_burst "$ns" "$coupon" "$admin"
  topic_partitions_grow "$ns" "$admin" "$coupon"
  logstash_path "$ns"
  hand_edit_reverted "$ns" "$content"
  coupon_roll "$ns" "$coupon" "$admin"
  coupon_pods_deleted "$ns" "$coupon" "$admin"
  coupon_autoscale "$ns" "$coupon" "$admin"
  second_node_checks "$ns" "$coupon" "$admin" "$content" "$logapi"
  k -n "$ns" delete pod client --wait=false >/dev/null
  rss_figures # (the platform's pods, before uninstall)
  # Topics as the deletion policy says: Delete (the CRD's default is Retain). INFRA=host: Kafka
  # outlives the release, asked afterwards; pods: Kafka goes with the release, so the operator's
  # TopicsDeleted event (written once Kafka acknowledged the deletion, before the pre-delete hook
  # lets helm delete Kafka) must name every topic the platform had.
  local prefix topics_before="" topic_names=""
  prefix=$(k -n "$ns" get campusplatform "$RELEASE" -o jsonpath='{.status.kafkaPrefix}')
  k -n "$ns" patch campusplatform "$RELEASE" --type merge -p '{"spec":{"topics":{"deletionPolicy":"Delete"}}}' >/dev/null
  topic_names=$(kafka_topics "$prefix" 2>&1)
  topics_before=$(wc -w <<<"$topic_names")
  t=$(now)
  if KUBECONFIG=$CD/kubeconfig "$HELM" uninstall "$RELEASE" -n "$ns" --wait --timeout 3m >/dev/null; then ok "helm uninstall ($(since "$t") s)"; else bad "helm uninstall"; fi
  # (The garbage collector deletes the platform's last children just after the platform: a minute.)
  local left end=$(($(date +%s) + 60))
  while left=$(k -n "$ns" get campusplatform,deploy,sts,ds,svc,cm,secret,job,pdb,sa,role,rolebinding -o name 2>/dev/null |
    grep -v -e kube-root-ca -e campus-host-credentials -e serviceaccount/default -e "secret/$RELEASE-infra-credentials" || true); [ -n "$left" ]; do
    [ "$(date +%s)" -lt "$end" ] || break; sleep 2
  done
  [ -z "$left" ] && ok "helm uninstall leaves no Campus object in $ns (the pre-delete hook deleted the platform$([ "$INFRA" = pods ] && echo "; the dev infrastructure's credentials are kept on purpose: helm.sh/resource-policy keep"))" ||
    bad "left after uninstall: $(echo $left)"
  if [ "$INFRA" = pods ]; then
    (wait_for 120 "the dev infrastructure's pods gone" none_left "$ns" pod) &&
      ok "no pod left in $ns (the dev infrastructure's too)" || bad "pods left in $ns: $(k -n "$ns" get pod -o name | tr '\n' ' ')"
    k -n "$ns" delete secret "$RELEASE-infra-credentials" --ignore-not-found >/dev/null
  fi
  # Filebeat's objects in its namespace carry no owner reference: the platform's finalizer deleted them.
  left=$(k -n "$FILEBEAT_NS" get ds,cm,sa -l app.kubernetes.io/managed-by=campus-operator -o name 2>/dev/null || true)
  [ -z "$left" ] && ok "helm uninstall leaves no Filebeat object in $FILEBEAT_NS (deleted by the platform's finalizer)" ||
    bad "left in $FILEBEAT_NS after uninstall: $(echo $left)"
  left=$(k get clusterrolebinding -o name | grep -i campus || true)
  [ -z "$left" ] && ok "no Campus ClusterRoleBinding left" || bad "ClusterRoleBindings left: $(echo $left)"
  if [ "$INFRA" != pods ]; then
    left=$(kafka_topics "$prefix" 2>&1)
    [ "$topics_before" -gt 0 ] && [ -z "$left" ] &&
      ok "deletionPolicy Delete: the platform's $topics_before topics $prefix.* deleted with it" ||
      bad "deletionPolicy Delete: $topics_before topics before, left: $(echo $left | head -c 300)"
  else
    local said missing="" t
    said=$(k -n "$ns" get events --field-selector reason=TopicsDeleted -o jsonpath='{.items[*].message}' 2>&1)
    for t in $topic_names; do tr ', ' '\n\n' <<<"$said" | grep -qFx -- "$t" || missing+=" $t"; done
    [ "$topics_before" -gt 0 ] && [ -z "$missing" ] &&
      ok "deletionPolicy Delete: the operator deleted the platform's $topics_before topics $prefix.* before Kafka went (its TopicsDeleted event)" ||
      bad "deletionPolicy Delete: $topics_before topics before ($(echo $topic_names | head -c 200)); not in a TopicsDeleted event:$missing (events: $(head -c 300 <<<"$said"))"
  fi
}

# expose_checks NS: the chart's `expose` Services (helm/dev-values.yaml: NodePorts, the ports
# kind-config.yaml maps to the host) answer /readyz on the node's address and NodePort, through
# kube-proxy, where kind's port mapping sends a user's `curl localhost:30081`.
expose_checks() {
  local ns=$1 svc port bad_ones="" n=0 ip
  ip=$(k get node -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
  while read -r svc port; do
    [ -n "$svc" ] || continue
    n=$((n + 1))
    node_exec curl -fsS -m 5 -o /dev/null "http://$ip:$port/readyz" || bad_ones+=" $svc:$port"
  done < <(k -n "$ns" get svc -o jsonpath='{range .items[*]}{.metadata.name} {.spec.ports[0].nodePort}{"\n"}{end}' | grep -- '-expose-')
  [ "$n" = 3 ] && [ -z "$bad_ones" ] && ok "the chart's 3 expose NodePorts answer /readyz on the node ($ip)" ||
    bad "expose NodePorts: $n Services, not answering:$bad_ones"
}

# es_addr: the platform's Elasticsearch API as pods reach it (the host's OpenSearch through the
# Service of campus-host, or the dev infrastructure's pod).
es_addr() { if [ "$INFRA" = pods ]; then echo "$RELEASE-elasticsearch:9200"; else echo "elasticsearch.$HOST_NS:9200"; fi; }

# logstash_path NS: with Logstash selected, the access-log index template and alias of its
# pipeline exist before the first document, though Logstash itself cannot run here (no image):
# the Logstash pod's init container (`campus-log prepare`, the log image) installs them. A prefix
# of its own (no document ever), then back to the native indexer.
logstash_path() {
  local ns=$1 prefix t es; prefix=e2e-logstash-$(date +%s); t=$(now); es=$(es_addr)
  k -n "$ns" patch campusplatform "$RELEASE" --type merge -p "{\"spec\":{\"logging\":{\"processor\":\"Logstash\",\"logstash\":{\"pipelines\":[{\"name\":\"access-log\",\"indexPrefix\":\"$prefix\"}]}}}}" >/dev/null
  if (wait_for 120 "Logstash's init container done" logstash_prepared "$ns") &&
    answers '"name":"'"$prefix"'"' GET "http://$es/_index_template/$prefix" &&
    answers "\"$prefix\"" GET "http://$es/_alias/$prefix"; then
    ok "Logstash selected: the index template and alias $prefix exist before any document, Logstash not running ($(since "$t") s; its init container campus-log prepare)"
  else
    bad "Logstash selected: no template/alias $prefix: init $(k -n "$ns" get pod -l app.kubernetes.io/component=logstash -o jsonpath='{range .items[*]}{.status.initContainerStatuses}{end}' 2>&1 | head -c 300); $(http_in_pod "$ns" GET "http://$es/_index_template/$prefix" 2>&1 | tail -n 1 | head -c 200)"
  fi
  k -n "$ns" patch campusplatform "$RELEASE" --type json -p '[{"op":"replace","path":"/spec/logging/processor","value":"Native"},{"op":"remove","path":"/spec/logging/logstash"}]' >/dev/null
  (wait_for 120 "the native indexer back, Logstash gone" native_back "$ns") &&
    ok "back to the native indexer (the Logstash Deployment pruned)" || bad "the native indexer did not come back: $(k -n "$ns" get deploy -o name | tr '\n' ' ')"
  http_in_pod "$ns" DELETE "http://$es/$prefix-*" >/dev/null 2>&1 || true
  http_in_pod "$ns" DELETE "http://$es/_index_template/$prefix" >/dev/null 2>&1 || true
}
# (any Logstash pod: one of an older ReplicaSet may linger, never Ready without its image)
logstash_prepared() {
  k -n "$1" get pod -l app.kubernetes.io/component=logstash \
    -o jsonpath='{range .items[*]}{.status.initContainerStatuses[0].state.terminated.exitCode}{"\n"}{end}' 2>/dev/null | grep -x 0 >/dev/null
}
native_back() {
  [ -z "$(k -n "$1" get deploy -l app.kubernetes.io/component=logstash -o name 2>/dev/null)" ] &&
    deploy_ready_is "$1" "$(deploy_named "$1" log-index)" 1
}

# topic_partitions_grow NS: a topic's partitions raised in the CampusPlatform reach Kafka (the
# operator's status reads them back) and the coupon path goes on working on the wider topic.
topic_partitions_grow() {
  local ns=$1 admin=$2 coupon=$3 topic have want t ev
  topic=$(k -n "$ns" get campusplatform "$RELEASE" -o jsonpath='{.status.kafkaPrefix}').coupon.request
  have=$(topic_partitions "$ns" "$topic"); want=$((${have:-0} + 2)); t=$(now)
  k -n "$ns" patch campusplatform "$RELEASE" --type merge -p "{\"spec\":{\"topics\":{\"overrides\":[{\"name\":\"coupon.request\",\"partitions\":$want}]}}}" >/dev/null
  if [ -n "$have" ] && (wait_for 60 "$topic has $want partitions" topic_has "$ns" "$topic" "$want"); then
    ok "topic $topic grown from $have to $want partitions through the CampusPlatform ($(since "$t") s)"
  else bad "topic $topic: $(topic_partitions "$ns" "$topic") partitions, want $want (was '$have')"; fi
  local phase report
  ev=$(new_event "$ns" "$admin" Partitions 50)
  [ -n "$ev" ] || { bad "partitions: no coupon event created"; return 0; }
  burst_start "$ns" burst-partitions "$coupon" --event "$ev" --requests 600 --users 120 --first-user 5000 \
    --concurrency 16 --expect-issued 50
  { read -r phase; report=$(cat); } < <(burst_wait "$ns" burst-partitions)
  if [ "$phase" = Succeeded ] && stored "$ns" "$admin" "$ev" 50; then
    ok "a burst on the wider topic: event $ev of 50, all stored: $(burst_summary "$report")"
  else bad "burst on the wider topic ($phase): $(burst_summary "$report"); $(reconcile_line "$ns" "$admin" "$ev")"; fi
}
topic_partitions() { k -n "$1" get campusplatform "$RELEASE" -o jsonpath="{.status.topics[?(@.name==\"$2\")].partitions}"; }
topic_has() { [ "$(topic_partitions "$1" "$2")" = "$3" ]; }

# kafka_topics PREFIX: the cluster's Kafka topics named PREFIX.* (host mode: its node on the veth).
kafka_topics() {
  if [ "$INFRA" = pods ]; then
    # (Kafka's own TopicCommand in the broker's pod: the image has its jars and a JRE.)
    k -n "$RELEASE_NS" exec "$RELEASE-kafka-0" -- java -cp '/opt/kafka/libs/*' org.apache.kafka.tools.TopicCommand \
      --bootstrap-server localhost:9092 --list 2>/dev/null | grep "^$1\." | sort | tr '\n' ' '
    return
  fi
  "$VENV/bin/python" - "$HOST_IP:$KAFKA_PORT" "$1" <<'PY'
import sys
from kafka.admin import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], client_id="campus-e2e")
print(" ".join(sorted(t for t in admin.list_topics() if t.startswith(sys.argv[2] + "."))))
PY
}

# new_event NS ADMIN_SVC NAME LIMIT: a coupon event open now; prints its id (nothing on failure).
new_event() {
  http_in_pod "$1" POST "http://$2:8081/admin/coupon-events" "{\"name\":\"$3\",\"limit\":$4,\"startsAt\":\"2026-01-01T00:00:00Z\",\"endsAt\":\"2030-01-01T00:00:00Z\",\"couponValidSeconds\":3600}" 2>&1 | first_id || true
}

# burst_start NS POD COUPON_SVC ARGS...: `campus-coupon burst --url http://COUPON_SVC ARGS` in a pod
# POD of the coupon image (through the Service, as a client in the cluster would).
# BURST_NODE: the pod runs on that node.
burst_start() {
  local ns=$1 pod=$2 svc=$3; shift 3
  k -n "$ns" delete pod "$pod" --ignore-not-found --wait=true >/dev/null 2>&1 || true
  k -n "$ns" run "$pod" --image="localhost/campus-coupon:${TAG:-dev}" --image-pull-policy=Never --restart=Never \
    --override-type=strategic --overrides="$(restricted_overrides "$pod" "${BURST_NODE:-}")" -- \
    burst --url "http://$svc" "$@" >/dev/null
}

# restricted_overrides CONTAINER [NODE] [UID]: `kubectl run --override-type=strategic --overrides` for a
# pod the release namespace (Pod Security restricted) admits: non-root (UID when the image runs as
# root), RuntimeDefault seccomp, no capabilities, no privilege escalation; on NODE when given.
restricted_overrides() {
  python3 -c 'import json, sys
name, node, uid = sys.argv[1], sys.argv[2], sys.argv[3]
pod = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
if uid: pod["runAsUser"] = pod["runAsGroup"] = int(uid)
spec = {"securityContext": pod, "containers": [{"name": name, "securityContext": {
    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}
if node: spec["nodeName"] = node
print(json.dumps({"apiVersion": "v1", "spec": spec}))' "$1" "${2:-}" "${3:-}"
}

# burst_wait NS POD: waits (3 min) for the burst pod to end; prints its phase, then its JSON report.
burst_wait() {
  local ns=$1 pod=$2
  (wait_for 180 "pod $pod ended" pod_ended "$ns" "$pod") || true
  k -n "$ns" get pod "$pod" -o jsonpath='{.status.phase}{"\n"}' 2>/dev/null || echo unknown
  k -n "$ns" logs "$pod" 2>&1 | sed -n '/^{/,/^}/p'
  k -n "$ns" logs "$pod" 2>&1 | grep -v '^[ {}]' | tail -n 3 >&2 || true
  k -n "$ns" delete pod "$pod" --wait=false >/dev/null 2>&1 || true
}

# burst_summary REPORT_JSON [FIELD]: one line of the report, or one field of it.
burst_summary() {
  python3 -c 'import json,sys
r = json.loads(sys.argv[1])
if len(sys.argv) > 2: print(r[sys.argv[2]]); sys.exit()
print("%d requests in %.1f s (%.0f/s, p50 %.0f ms, p99 %.0f ms): %d issued, %d already_issued, %d sold_out, %d rate_limited, other %s, %d errors, %d users twice%s" % (
  r["requests"], r["seconds"], r["requestsPerSecond"], r["p50Ms"], r["p99Ms"], r["issued"], r["alreadyIssued"], r["soldOut"], r["rateLimited"], r["other"], r["errors"], r["usersIssuedTwice"],
  "; first failure: " + r["firstFailure"] if r.get("firstFailure") else ""))' "$@" 2>/dev/null || echo "(no report)"
}

# stored NS ADMIN_SVC EVENT N: within 2 min MySQL holds N coupons of EVENT and Redis agrees.
stored() {
  until_in_pod 120 "\"mysqlCoupons\":$4," GET "http://$2:8081/admin/reconcile?couponEventId=$3" &&
    until_in_pod 60 '"drifted":0' GET "http://$2:8081/admin/reconcile?couponEventId=$3"
}
reconcile_line() { http_in_pod "$1" GET "http://$2:8081/admin/reconcile?couponEventId=$3" 2>&1 | tail -n 1 | head -c 400; }

# coupon_burst NS COUPON_SVC ADMIN_SVC: a first-come-first-served burst through the coupon Service
# (BURST_REQUESTS over BURST_USERS users, BURST_CONCURRENCY at once, for an event of BURST_LIMIT):
# exactly the limit issued, nobody twice, no request failed; then the worker's MySQL coupons equal
# the limit with no drift.
coupon_burst() {
  local ns=$1 coupon=$2 admin=$3 ev phase report
  local requests=${BURST_REQUESTS:-3000} users=${BURST_USERS:-300} limit=${BURST_LIMIT:-100}
  ev=$(new_event "$ns" "$admin" Burst "$limit")
  [ -n "$ev" ] || { bad "burst: no coupon event created"; return 0; }
  burst_start "$ns" burst "$coupon" --event "$ev" --requests "$requests" --users "$users" --first-user 1000 \
    --concurrency "${BURST_CONCURRENCY:-32}" --expect-issued "$limit"
  { read -r phase; report=$(cat); } < <(burst_wait "$ns" burst)
  if [ "$phase" = Succeeded ]; then ok "coupon burst through Service $coupon, event $ev of $limit: $(burst_summary "$report")"
  else bad "coupon burst ($phase): $(burst_summary "$report")"; fi
  stored "$ns" "$admin" "$ev" "$limit" && ok "burst event $ev: $limit coupons in MySQL, no drift (GET /admin/reconcile)" ||
    bad "burst event $ev: $(reconcile_line "$ns" "$admin" "$ev")"
}

# coupon_roll NS COUPON_SVC ADMIN_SVC: a steady load on the coupon API (ROLL_RATE requests/s, every
# request a new user) while a CampusPlatform change rolls the coupon API and its issue worker: no
# request fails (drain after SIGTERM, readiness, surge) and every coupon answered 201 is stored.
coupon_roll() {
  local ns=$1 coupon=$2 admin=$3 ev phase report rate=${ROLL_RATE:-40} secs=${ROLL_SECONDS:-40}
  local n=$((rate * secs)) api=${coupon} worker
  worker=$(deploy_named "$ns" coupon-issue)
  ev=$(new_event "$ns" "$admin" Roll "$n")
  [ -n "$ev" ] || { bad "roll: no coupon event created"; return 0; }
  local before; before=$(k -n "$ns" get pod -l "app.kubernetes.io/component in (coupon-api,coupon-issue)" -o name | sort)
  burst_start "$ns" load "$coupon" --event "$ev" --requests "$n" --users "$n" --first-user 200000 --rate "$rate" \
    --concurrency 16 --expect-issued "$n"
  (wait_for 60 "the load pod running" pod_running "$ns" load) || true
  sleep 3
  local stamp; stamp=$(date +%s)
  # (Appended: the chart's platform has the coupon service's MYSQL_URL in this list.)
  k -n "$ns" patch campusplatform campus --type json \
    -p '[{"op":"add","path":"/spec/coupon/env/-","value":{"name":"CAMPUS_E2E_ROLL","value":"'"$stamp"'"}}]' >/dev/null
  local t; t=$(now) rolled=1
  # (rollout status only once the operator has applied the change)
  (wait_for 60 "the operator applying the change" template_env_is "$ns" "$api" CAMPUS_E2E_ROLL "$stamp") || rolled=0
  k -n "$ns" rollout status "deploy/$api" --timeout=150s >/dev/null || rolled=0
  [ -n "$worker" ] && { k -n "$ns" rollout status "deploy/$worker" --timeout=150s >/dev/null || rolled=0; }
  # (The old pods drain for 5 s after the rollout is complete.)
  (wait_for 60 "the old coupon pods gone" none_left "$ns" "$before") || true
  local after; after=$(k -n "$ns" get pod -l "app.kubernetes.io/component in (coupon-api,coupon-issue)" -o name | sort)
  if [ $rolled = 1 ] && [ -z "$(comm -12 <(echo "$before") <(echo "$after"))" ]; then
    ok "a CampusPlatform change rolled $api and $worker ($(since "$t") s, every pod replaced)"
  else bad "the roll of $api/$worker (before: $(echo $before); after: $(echo $after))"; fi
  { read -r phase; report=$(cat); } < <(burst_wait "$ns" load)
  if [ "$phase" = Succeeded ]; then ok "0 failed requests during the roll: $(burst_summary "$report")"
  else bad "requests failed during the roll ($phase): $(burst_summary "$report")"; fi
  if stored "$ns" "$admin" "$ev" "$n"; then ok "roll event $ev: all $n coupons in MySQL, no drift"
  else bad "roll event $ev: $(reconcile_line "$ns" "$admin" "$ev")"; worker_diag "$ns" coupon-issue; fi
}

# worker_diag NS COMPONENT: what the worker pods of COMPONENT say about their consumer (lag per
# partition, records by outcome, dead letters) and their last warnings, for a failed check.
worker_diag() {
  local ns=$1 c=$2 pod ip
  for pod in $(k -n "$ns" get pod -l "app.kubernetes.io/component=$c" -o name); do
    ip=$(k -n "$ns" get "$pod" -o jsonpath='{.status.podIP}')
    echo "    $pod ($ip):"
    k -n "$ns" exec client -- bash -c 'exec 3<>"/dev/tcp/$0/9090" && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' "$ip" 2>&1 |
      grep -E '^campus_(consumer_(lag|records_total|dlq_records_total)|coupon_issue_requests_total)' | sed 's/^/      /'
    k -n "$ns" logs "$pod" --tail=200 2>&1 | grep -v '"level":"INFO"' | tail -n 8 | cut -c1-300 | sed 's/^/      /'
  done
}

# coupon_pods_deleted NS COUPON_SVC ADMIN_SVC: with two coupon API replicas, one API pod and the issue
# worker's pod deleted mid-load: both replaced, no request failed (the other replica serves, the
# deleted one drains) and every coupon answered 201 is in MySQL.
coupon_pods_deleted() {
  local ns=$1 coupon=$2 admin=$3 ev phase report rate=${ROLL_RATE:-40} n=$((${ROLL_RATE:-40} * 20))
  k -n "$ns" patch campusplatform campus --type merge -p '{"spec":{"coupon":{"replicas":2}}}' >/dev/null
  (wait_for 120 "two coupon API replicas" deploy_ready_is "$ns" "$coupon" 2) || { bad "no second coupon API replica"; return 0; }
  ev=$(new_event "$ns" "$admin" Deleted "$n")
  [ -n "$ev" ] || { bad "pod delete: no coupon event created"; return 0; }
  burst_start "$ns" load2 "$coupon" --event "$ev" --requests "$n" --users "$n" --first-user 400000 --rate "$rate" \
    --concurrency 16 --expect-issued "$n"
  (wait_for 60 "the load pod running" pod_running "$ns" load2) || true
  sleep 3
  local victims
  victims="$(k -n "$ns" get pod -l app.kubernetes.io/component=coupon-api -o name | head -n 1) $(k -n "$ns" get pod -l app.kubernetes.io/component=coupon-issue -o name)"
  k -n "$ns" delete $victims --wait=false >/dev/null
  { read -r phase; report=$(cat); } < <(burst_wait "$ns" load2)
  (wait_for 60 "the deleted pods gone" none_left "$ns" "$victims") || true
  local ready
  ready=$(k -n "$ns" get deploy -o jsonpath='{range .items[*]}{.metadata.name} {.status.readyReplicas}/{.spec.replicas}{"\n"}{end}' | grep -e '-coupon-api ' -e '-coupon-issue ')
  ! awk '{ split($2, a, "/"); if (a[1] != a[2]) bad = 1 } END { exit !bad }' <<<"$ready" && none_left "$ns" "$victims" &&
    ok "a coupon API pod (of 2) and the worker pod deleted mid-load were replaced ($(echo $ready))" || bad "not replaced: $(echo $ready)"
  if [ "$phase" = Succeeded ]; then ok "0 failed requests while the pods were deleted: $(burst_summary "$report")"
  else bad "requests failed while the pods were deleted ($phase): $(burst_summary "$report")"; fi
  local issued; issued=$(burst_summary "$report" issued)
  [[ $issued =~ ^[0-9]+$ ]] && [ "$issued" -gt 0 ] && stored "$ns" "$admin" "$ev" "$issued" &&
    ok "pods deleted mid-load: every coupon answered 201 ($issued) is in MySQL, no drift" ||
    bad "pods deleted mid-load: $(reconcile_line "$ns" "$admin" "$ev")"
}

# hand_edit_reverted NS DEPLOYMENT: `kubectl` changes a child Deployment's replicas and image by
# hand; the operator puts both back.
hand_edit_reverted() {
  local ns=$1 d=$2 want
  want=$(k -n "$ns" get deploy "$d" -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].image}')
  k -n "$ns" patch deploy "$d" --type json -p '[{"op":"replace","path":"/spec/replicas","value":3},
    {"op":"replace","path":"/spec/template/spec/containers/0/image","value":"localhost/hand-edited:1"}]' >/dev/null
  local t; t=$(now)
  if (wait_for 60 "$d put back" deploy_is "$ns" "$d" "$want"); then ok "a hand edit of Deployment $d (replicas 3, another image) put back by the operator ($(since "$t") s)"
  else bad "hand edit of $d not put back: $(k -n "$ns" get deploy "$d" -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].image}')"; fi
  k -n "$ns" rollout status "deploy/$d" --timeout=120s >/dev/null || true
}
deploy_is() { [ "$(k -n "$1" get deploy "$2" -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].image}')" = "$3" ]; }

# filebeat_ds NS: "NAME READY/DESIRED" of the Filebeat DaemonSet.
filebeat_ds() { k -n "$1" get ds -o jsonpath='{range .items[*]}{.metadata.name} {.status.numberReady}/{.status.desiredNumberScheduled}{"\n"}{end}' | grep -- '-filebeat ' || true; }
filebeat_ready() { local name frac; read -r name frac <<<"$(filebeat_ds "$1")"; [ -n "$frac" ] && [ "${frac%/*}" = "${frac#*/}" ] && [ "${frac%/*}" -gt 0 ]; }

# infra_checks NS: the dev infrastructure's pods (images of the real servers built here) are Ready, and
# each answers as the server it is.
infra_checks() {
  local ns=$1 c pods notready="" images=""
  for c in kafka mysql redis mongodb elasticsearch; do
    pods=$(k -n "$ns" get pod -l "app.kubernetes.io/component=$c" -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].ready} {.spec.containers[0].image}{"\n"}{end}')
    grep -q ' true ' <<<"$pods" || notready+=" $c(${pods:-no pod})"
    images+=" $c=$(awk '{ print $3 }' <<<"$pods" | head -n 1)"
  done
  [ -z "$notready" ] && ok "the dev infrastructure in pods, every one Ready:$images" || bad "dev infrastructure not Ready:$notready"
  local out
  out=$(k -n "$ns" exec "$RELEASE-mysql-0" -- sh -c 'mariadb --protocol=tcp -h127.0.0.1 -uroot -p"$MARIADB_ROOT_PASSWORD" -N -e "SELECT VERSION(); SHOW DATABASES"' 2>&1 | tr '\n' ' ')
  grep -q MariaDB <<<"$out" && grep -q campus_coupon <<<"$out" && ok "MariaDB in its pod: $out" || bad "MariaDB in its pod: $out"
  out=$(http_in_pod "$ns" GET "http://$RELEASE-elasticsearch:9200/" 2>&1 | tr -d ' \n' | grep -o '"distribution":"[a-z]*","number":"[0-9.]*"' || true)
  [ -n "$out" ] && ok "OpenSearch through its Service: $out" || bad "OpenSearch through its Service: $(http_in_pod "$ns" GET "http://$RELEASE-elasticsearch:9200/" 2>&1 | tail -n 3 | head -c 300)"
}

# kafka_stop NS / kafka_start: the platform's Kafka stopped and started again on its data — with
# INFRA=pods the broker of the pod (SIGTERM to its PID 1: the container ends, the kubelet starts it
# again on the pod's volume), otherwise the cluster's Kafka node on the host's veth.
kafka_stop() {
  if [ "$INFRA" = pods ]; then
    KAFKA_RESTARTS=$(kafka_restarts "$1")
    k -n "$1" exec "$RELEASE-kafka-0" -- sh -c 'kill -TERM 1' && (wait_for 60 "Kafka stopped" kafka_restarted "$1")
  else
    local pid; pid=$(cat "$CD/kafka.pid" 2>/dev/null) || return 1
    kill -TERM "$pid" 2>/dev/null || true
    (wait_for 60 "Kafka stopped" stopped kafka)
  fi
}
kafka_start() { [ "$INFRA" = pods ] || start_kafka; }
kafka_restarts() { k -n "$1" get pod "$RELEASE-kafka-0" -o jsonpath='{.status.containerStatuses[0].restartCount}'; }
# (the broker's container has ended: its restart count went up, or it is not running)
kafka_restarted() {
  [ "$(kafka_restarts "$1")" != "$KAFKA_RESTARTS" ] ||
    [ -z "$(k -n "$1" get pod "$RELEASE-kafka-0" -o jsonpath='{.status.containerStatuses[0].state.running}')" ]
}

# kafka_restart NS CONTENT_SVC: Kafka stopped; a post created meanwhile is answered 201 (it waits in
# the outbox), Kafka started again on its data, the post reaches search.
kafka_restart() {
  local ns=$1 content=$2 out id t
  t=$(now)
  kafka_stop "$ns" || { bad "Kafka did not stop in 60 s"; return 0; }
  out=$(http_in_pod "$ns" POST "http://$content/posts" '{"title":"While Kafka was down","userId":1,"content":"outbox waits","categoryId":2}' 2>&1 || true)
  id=$(first_id <<<"$out")
  [ -n "$id" ] && ok "Kafka stopped: POST /posts answered $(head -n 1 <<<"$out" | tr -d '\r' | cut -d' ' -f2) (post $id waits in the outbox)" ||
    bad "Kafka stopped: POST /posts: $(head -n 1 <<<"$out") $(tail -n 1 <<<"$out" | head -c 200)"
  [ "$INFRA" = pods ] || sleep 5
  kafka_start
  if [ -n "$id" ]; then
    until_in_pod 240 "\"id\":$id," GET "http://$content/list/search?keyword=outbox" &&
      ok "Kafka back: post $id reached search ($(since "$t") s after the stop$([ "$INFRA" = pods ] && echo ", the broker's container restarted: restart count $(kafka_restarts "$ns")"))" ||
      bad "post $id not in search 240 s after Kafka came back"
  fi
  # (The APIs whose readiness asks Kafka are back before the next checks use them.)
  k -n "$ns" wait --for=condition=Available deploy --all --timeout=180s >/dev/null ||
    bad "Deployments not Available after Kafka came back: $(k -n "$ns" get deploy --no-headers 2>&1 | awk '{ print $1, $2 }' | tr '\n' ' ')"
}

# none_left NS NAMES: none of the objects NAMES (`pod/x` lines) exists any more in NS.
none_left() { [ -z "$(k -n "$1" get $2 --ignore-not-found -o name 2>/dev/null)" ]; }

template_env_is() {
  [ "$(k -n "$1" get deploy "$2" -o jsonpath="{.spec.template.spec.containers[0].env[?(@.name==\"$3\")].value}")" = "$4" ]
}

# coupon_autoscale NS COUPON_SVC ADMIN_SVC: lag-based scaling with real pods. The issue worker's
# container paused (containerd's freezer), a burst piles AUTOSCALE_REQUESTS records up on
# coupon.request; the operator (LAG_INTERVAL_SECONDS 5 in helm/cluster-values.yaml) scales the
# group to its maxReplicas; resumed, the workers drain the lag, it scales back to minReplicas and
# every coupon is in MySQL.
coupon_autoscale() {
  local ns=$1 coupon=$2 admin=$3 n=${AUTOSCALE_REQUESTS:-1000} ev phase report cid
  local d; d=$(deploy_named "$ns" coupon-issue)
  [ -n "$d" ] || { bad "autoscale: no coupon-issue Deployment"; return 0; }
  k -n "$ns" patch campusplatform campus --type merge \
    -p '{"spec":{"coupon":{"groups":{"issue":{"autoscaling":{"minReplicas":1,"maxReplicas":3,"lagPerReplica":100,"scaleDownStabilizationSeconds":10}}}}}}' >/dev/null
  (wait_for 60 "one ready worker" deploy_ready_is "$ns" "$d" 1) || true
  cid=$(k -n "$ns" get pod -l app.kubernetes.io/component=coupon-issue -o jsonpath='{.items[0].status.containerStatuses[0].containerID}')
  cid=${cid#containerd://}
  local ctr=(ctr --address /run/containerd/containerd.sock -n k8s.io)
  node_exec "${ctr[@]}" tasks pause "$cid" >/dev/null 2>&1 || { bad "autoscale: cannot pause the worker container '$cid'"; return 0; }
  ev=$(new_event "$ns" "$admin" Autoscale "$n")
  burst_start "$ns" lag "$coupon" --event "$ev" --requests "$n" --users "$n" --first-user 600000 --concurrency 16 --expect-issued "$n"
  { read -r phase; report=$(cat); } < <(burst_wait "$ns" lag)
  [ "$phase" = Succeeded ] || bad "autoscale burst ($phase): $(burst_summary "$report")"
  local t; t=$(now) up=0
  (wait_for 90 "$d scaled to 3" deploy_replicas_is "$ns" "$d" 3) && up=1
  local lag; lag=$(k -n "$ns" get campusplatform campus -o jsonpath="{.status.workloads[?(@.name==\"$d\")]}" 2>/dev/null | head -c 300)
  [ $up = 1 ] && ok "lag of $n records on coupon.request (worker paused): $d scaled 1 -> 3 in $(since "$t") s ($lag)" ||
    bad "$d not scaled up: replicas $(k -n "$ns" get deploy "$d" -o jsonpath='{.spec.replicas}'), $lag"
  node_exec "${ctr[@]}" tasks resume "$cid" >/dev/null 2>&1 || true
  t=$(now)
  (wait_for 180 "$d back to 1" deploy_replicas_is "$ns" "$d" 1) &&
    ok "lag drained: $d scaled back to 1 in $(since "$t") s" || bad "$d not scaled down: replicas $(k -n "$ns" get deploy "$d" -o jsonpath='{.spec.replicas}')"
  stored "$ns" "$admin" "$ev" "$n" && ok "autoscale event $ev: all $n coupons in MySQL, no drift" ||
    bad "autoscale event $ev: $(reconcile_line "$ns" "$admin" "$ev")"
}
# deploy_named NS SUFFIX: the Deployment of NS whose name ends in -SUFFIX.
deploy_named() { k -n "$1" get deploy -o name | sed -n "s|^deployment[^/]*/\(.*-$2\)\$|\1|p" | head -n 1; }
deploy_replicas_is() { [ "$(k -n "$1" get deploy "$2" -o jsonpath='{.spec.replicas}')" = "$3" ]; }
deploy_ready_is() { [ "$(k -n "$1" get deploy "$2" -o jsonpath='{.status.readyReplicas}')" = "$3" ]; }

stopped() { ! alive "$1"; }

pod_ended() { [[ $(k -n "$1" get pod "$2" -o jsonpath='{.status.phase}' 2>/dev/null) =~ ^(Succeeded|Failed)$ ]]; }
pod_running() { [ "$(k -n "$1" get pod "$2" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; }

# RSS per pod from the kubelets' stats (/stats/summary through the API server), node by node.
rss_figures() {
  local n
  for n in $(k get nodes -o jsonpath='{.items[*].metadata.name}'); do
    k get --raw "/api/v1/nodes/$n/proxy/stats/summary" 2>/dev/null |
      python3 -c 'import json,sys
d = json.load(sys.stdin)
for p in d.get("pods", []):
    rss = sum(c.get("memory", {}).get("rssBytes", 0) for c in p.get("containers", []))
    print("cluster e2e: rss %-40s %6.1f MB  (%s)" % (p["podRef"]["namespace"] + "/" + p["podRef"]["name"], rss / 1e6, sys.argv[1]))' "$n" || true
  done
}

# steady_start NS COUPON_SVC ADMIN_SVC CONTENT_SVC LOG_SVC NAME SECONDS: a steady load on every API
# for SECONDS: ROLL_RATE coupon requests/s (every one a new user, an event of its own) from a pod
# NAME of the coupon image, and scripts/steady-load.sh (posts, log searches) from the pod `client`.
# Both on the first node: a drain of another must not take them. steady_wait judges it.
steady_start() {
  local ns=$1 coupon=$2 admin=$3 content=$4 logapi=$5 name=$6 secs=$7 rate=${ROLL_RATE:-40}
  STEADY_N=$((rate * secs)) STEADY_TAG=$name$(date +%s) STEADY_OUT=$CD/steady-$name.out
  STEADY_EVENT=$(new_event "$ns" "$admin" "$name" "$STEADY_N")
  [ -n "$STEADY_EVENT" ] || bad "$name: no coupon event created"
  BURST_NODE=campus-node burst_start "$ns" "$name" "$coupon" --event "${STEADY_EVENT:-0}" --requests "$STEADY_N" \
    --users "$STEADY_N" --first-user 800000 --rate "$rate" --concurrency 16 --expect-issued "$STEADY_N"
  k -n "$ns" exec -i client -- bash -s "$STEADY_TAG" "$secs" "$content" "$logapi" \
    <"$ROOT/scripts/steady-load.sh" >"$STEADY_OUT" 2>&1 &
  STEADY_PID=$!
  (wait_for 60 "the load pod running" pod_running "$ns" "$name") || true
}

# steady_wait NS ADMIN_SVC CONTENT_SVC NAME WHAT: the load of steady_start ended: no request failed
# on any API, every coupon answered 201 is in MySQL, every post answered 201 is in search.
steady_wait() {
  local ns=$1 admin=$2 content=$3 name=$4 what=$5 phase report
  { read -r phase; report=$(cat); } < <(burst_wait "$ns" "$name")
  wait "$STEADY_PID" || true
  if [ "$phase" = Succeeded ]; then ok "$what: 0 failed coupon requests: $(burst_summary "$report")"
  else bad "$what: coupon requests failed ($phase): $(burst_summary "$report")"; fi
  local posts ok_posts logs ok_logs
  posts=$(grep -c '^post ' "$STEADY_OUT" || true) ok_posts=$(grep -c '^post 201 [0-9]' "$STEADY_OUT" || true)
  logs=$(grep -c '^log ' "$STEADY_OUT" || true) ok_logs=$(grep -c '^log 200$' "$STEADY_OUT" || true)
  if [ "$posts" -gt 0 ] && [ "$posts" = "$ok_posts" ] && [ "$logs" = "$ok_logs" ]; then
    ok "$what: 0 failed content and log requests ($posts POST /posts answered 201, $logs GET /logs/search 200)"
  else bad "$what: POST /posts $ok_posts/$posts 201, GET /logs/search $ok_logs/$logs 200: $(grep -v -e '^post 201 [0-9]' -e '^log 200$' "$STEADY_OUT" | head -n 5 | tr '\n' ';')"; fi
  if [ -n "$STEADY_EVENT" ]; then
    local issued; issued=$(burst_summary "$report" issued)
    [[ $issued =~ ^[0-9]+$ ]] && [ "$issued" -gt 0 ] && stored "$ns" "$admin" "$STEADY_EVENT" "$issued" &&
      ok "$what: every coupon answered 201 ($issued) is in MySQL, no drift" ||
      bad "$what: coupons: $(reconcile_line "$ns" "$admin" "$STEADY_EVENT")"
  fi
  sed -n 's/^post 201 \([0-9]*\)$/\1/p' "$STEADY_OUT" | sort -u >"$STEADY_OUT.ids"
  if (wait_for 120 "every post in search" all_searchable "$ns" "$content" "steady$STEADY_TAG" "$STEADY_OUT.ids"); then
    ok "$what: all $(wc -l <"$STEADY_OUT.ids") posts answered 201 are in search"
  else bad "$what: posts not in search: $(all_searchable "$ns" "$content" "steady$STEADY_TAG" "$STEADY_OUT.ids" 2>&1 | head -c 300)"; fi
}

# all_searchable NS CONTENT_SVC KEYWORD IDS_FILE: every id of IDS_FILE is found by
# /list/search?keyword=KEYWORD (paged); prints those missing.
all_searchable() {
  local ns=$1 content=$2 kw=$3 ids=$4 page=0 found="" out
  while :; do
    out=$(http_in_pod "$ns" GET "http://$content/list/search?keyword=$kw&size=100&page=$page" 2>/dev/null | tail -n 1)
    found+=$(grep -o '"id":[0-9]*' <<<"$out" | cut -d: -f2)$'\n'
    [ "$(grep -o '"id":[0-9]*' <<<"$out" | wc -l)" = 100 ] || break
    page=$((page + 1))
  done
  local missing; missing=$(comm -23 "$ids" <(grep . <<<"$found" | sort -u))
  [ -z "$missing" ] || { echo "$missing" | tr '\n' ' '; return 1; }
}

# platform_deploys NS: the platform's Deployments (deployment/NAME lines).
platform_deploys() { k -n "$1" get deploy -l campus.dev/platform=campus -o name; }
# images_are NS TAG: every platform Deployment's image has the tag TAG.
images_are() {
  local images; images=$(k -n "$1" get deploy -l campus.dev/platform=campus -o jsonpath='{range .items[*]}{.spec.template.spec.containers[0].image}{"\n"}{end}')
  [ -n "$images" ] && [ "$(grep -vc ":$2\$" <<<"$images")" = 0 ]
}
# nodes_of NS COMPONENT: the nodes the pods of COMPONENT run on, sorted, comma-separated.
nodes_of() { k -n "$1" get pod -l "app.kubernetes.io/component=$2" -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | paste -sd, -; }

# second_node_checks NS COUPON_SVC ADMIN_SVC CONTENT_SVC LOG_SVC: a second node joins; Filebeat runs
# on both; `helm upgrade` to a new version (new image tags) with two replicas per API rolls every
# Deployment under a steady load on every API, 0 failed; the APIs spread over both nodes; the second
# node drained under the same load: 0 failed requests, 0 lost coupons or posts.
second_node_checks() {
  local ns=$1 coupon=$2 admin=$3 content=$4 logapi=$5 n2=campus-node-2 t i d
  t=$(now)
  if (add_node); then ok "a second node joined: $n2 Ready ($(since "$t") s, its images imported)"
  else bad "a second node: add-node failed"; return 0; fi
  (wait_for 60 "kube-proxy's Service rules in node 2" node2_service_rules) || true
  local kp; kp=$( (use_node 2; node_exec iptables-save) | grep -c '^-A KUBE-' || true)
  node2_service_rules && ok "node 2 has kube-proxy's rules of its own ($kp KUBE- rules)" || bad "no kube-proxy Service rules in node 2 ($kp KUBE- rules)"
  (wait_for 120 "Filebeat on both nodes" filebeat_on "$FILEBEAT_NS" 2) && ok "Filebeat on both nodes ($(filebeat_ds "$FILEBEAT_NS"))" ||
    bad "Filebeat not on both nodes: $(filebeat_ds "$FILEBEAT_NS")"
  # A new version of the images, as a user upgrades: the same images under a new tag on every node.
  local tag=e2e-upgrade ctr=(ctr --address /run/containerd/containerd.sock -n k8s.io)
  for i in $(node_indexes); do
    for d in content coupon log; do
      (use_node "$i"; node_exec "${ctr[@]}" images tag --force "localhost/campus-$d:${TAG:-dev}" "localhost/campus-$d:$tag" >/dev/null)
    done
  done
  local before; before=$(k -n "$ns" get pod -l campus.dev/platform=campus -o name | grep -v -e -filebeat- | sort)
  steady_start "$ns" "$coupon" "$admin" "$content" "$logapi" upgrade 60
  sleep 3
  t=$(now)
  local upgraded=1
  # (The chart rolls the operator, which applies the changed platform: see platform.yaml.)
  helm_campus --set "images.content.tag=$tag" --set "images.coupon.tag=$tag" --set "images.log.tag=$tag" \
    --set platform.extraSpec.content.replicas=2 --set platform.extraSpec.coupon.replicas=2 \
    --set platform.extraSpec.log.replicas=2 >/dev/null || upgraded=0
  (wait_for 120 "the operator applying the upgrade" images_are "$ns" "$tag") || upgraded=0
  for d in $(platform_deploys "$ns"); do k -n "$ns" rollout status "$d" --timeout=180s >/dev/null || upgraded=0; done
  (wait_for 60 "the old pods gone" none_left "$ns" "$before") || upgraded=0
  if [ $upgraded = 1 ]; then ok "helm upgrade (image tags -> $tag, 2 replicas per API) rolled all $(platform_deploys "$ns" | wc -l) Deployments ($(since "$t") s, every pod replaced)"
  else bad "helm upgrade: $(k -n "$ns" get deploy --no-headers 2>&1 | awk '{ print $1, $2 }' | tr '\n' ' ')"; fi
  steady_wait "$ns" "$admin" "$content" upgrade "during the helm upgrade"
  local spread="" c one=0
  for c in content-api coupon-api log-api; do
    spread+=" $c: $(nodes_of "$ns" "$c")"
    [[ $(nodes_of "$ns" "$c") = *,* ]] || one=1
  done
  [ $one = 0 ] && ok "the APIs spread over both nodes:$spread" || bad "the APIs not spread over both nodes:$spread"
  # The drain: everything on node 2 but Filebeat is evicted (PDBs respected) under load.
  local on2; on2=$(k -n "$ns" get pod --field-selector "spec.nodeName=$n2" -o name | { grep -v -e -filebeat- || true; } | sed 's|pod/||' | sort)
  grep -q -- '-api-' <<<"$on2" || bad "no API pod on $n2 to drain: $(echo $on2)"
  steady_start "$ns" "$coupon" "$admin" "$content" "$logapi" drain 60
  sleep 5
  t=$(now)
  if k drain "$n2" --ignore-daemonsets --delete-emptydir-data --timeout=180s >"$CD/drain.log" 2>&1; then
    ok "kubectl drain $n2 under load ($(since "$t") s): evicted $(echo $on2)"
  else bad "kubectl drain $n2: $(tail -n 3 "$CD/drain.log" | tr '\n' ' ')"; fi
  local left; left=$(k -n "$ns" get pod --field-selector "spec.nodeName=$n2" -o name | grep -v -e -filebeat- || true)
  [ -z "$left" ] && ok "only Filebeat is left on $n2" || bad "pods left on $n2: $(echo $left)"
  steady_wait "$ns" "$admin" "$content" drain "during the drain of $n2"
  k uncordon "$n2" >/dev/null || true
}
# (grep -c, not -q: -q stops reading, and iptables-save's SIGPIPE fails the pipeline under pipefail)
node2_service_rules() { [ "$( (use_node 2; node_exec iptables-save) | grep -c '^-A KUBE-SVC-' || true)" -gt 0 ]; }
filebeat_on() { local name frac; read -r name frac <<<"$(filebeat_ds "$1")"; [ "$frac" = "$2/$2" ]; }
