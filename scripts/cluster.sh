#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, the host left as it was after `down`.
#   scripts/cluster.sh up       start it (builds/caches what is missing); prints the figures
#   scripts/cluster.sh down     stop it: every process, mount, link, iptables rule, cgroup and sysctl goes
#   scripts/cluster.sh status   what runs, the node, the pods
#   scripts/cluster.sh e2e      host snapshot, up, checks, down, host snapshot again, compared
#   scripts/cluster.sh platform [--infra pods|host]  helm install of helm/campus on the running cluster,
#                               the images of scripts/images.sh imported; waits for Ready. pods (the
#                               default, CAMPUS_CLUSTER_INFRA): helm/dev-values.yaml's dev infrastructure
#                               in pods, as a user installs it (images of the real servers,
#                               scripts/infra-images.sh); host: the host's servers (scripts/servers.sh;
#                               `up` with CAMPUS_CLUSTER_INFRA=host bridges them in)
#   scripts/cluster.sh infra-images  build those images (cached)
#   scripts/cluster.sh env      print `export KUBECONFIG=…` (the cluster's admin) and kubectl on PATH
#   scripts/cluster.sh node [-n I] CMD  run CMD inside node I (1: the first; its network, mount
#                               and UTS namespaces)
#   scripts/cluster.sh add-node another node joins the running cluster (CAMPUS_CLUSTER_NODES=N up:
#                               N nodes from the start)
#
# The node: one process (the "holder", `unshare --net --mount --uts`) owns a network namespace, a mount
# namespace (a slave of the host's: nothing mounted inside shows on the host) and the hostname
# campus-node; every daemon joins it with nsenter. The holder and all its descendants live in the cgroup
# /campus-node/daemons of every cgroup v1 hierarchy, the pods in /campus-node/kubepods (the kubelet's
# cgroupRoot), so `down` finds every process of the cluster by cgroup, kills it, and removes the cgroups.
# Inside the mount namespace: a fresh sysfs (of the node's network namespace) with the cgroup hierarchies
# mounted again, tmpfs on /run and /tmp, and /var/lib and /var/log bound from $CD/node: the daemons use
# their default paths and write nothing on the host outside $CD.
# Network: a veth pair, $HOST_IF ($HOST_IP) on the host, eth0 ($NODE_IP) in the node; the API server
# answers on https://$NODE_IP:6443; pods get $POD_CIDR on the bridge cni0 inside the node, Services
# $SVC_CIDR; kube-proxy's iptables rules and the CNI's live in the node's namespace. The host gets no
# route, no rule, no forwarding: only the veth (gone with the namespace).
# Further nodes (add-node): node I (2..$MAX_NODES) is campus-node-I, its own holder and namespaces
# ($CD/node-I: the same layout), its own containerd, kubelet (cgroupRoot /campus-node/node-I) and
# kube-proxy; a veth links it to the first node (10.213.<I-1>.1 there, 10.213.<I-1>.2 in node I),
# its pods get 10.214.<I-1>.0/24. The first node routes: between the nodes' pod ranges (no NAT, the
# Kubernetes network model) and, masqueraded, to the host. The host sees none of it.
# Kernel settings the kubelet writes are global (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory,
# vm.panic_on_oom, kernel.keys.*): `up` records every sysctl, `down` writes back those that changed.
# Images: never pulled (no registry). scripts/oci-image.py writes OCI archives from directories, imported
# with `ctr -n k8s.io images import`: the pause image (pause.c of k8s.io/kubernetes, gcc -static), a Debian
# busybox image (Debian's busybox-static package), CoreDNS and Filebeat (built from the Go module proxy),
# a Debian minbase (debootstrap). Cached in
# $CAMPUS_CACHE/cluster-images keyed by version.
# The host's servers (scripts/servers.sh) are Services of the namespace campus-host (bridge_host_servers).
# Components: Kubernetes v$KUBE_VERSION and etcd from scripts/kube.sh (build node); Debian's containerd
# 1.6, runc and containernetworking-plugins (bridge, host-local, loopback, portmap); cgroup v1 here
# (kubelet failCgroupV1: false, cgroupfs driver).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/kube.sh" # BIN, KUBE_VERSION, build, kube_* (and ROOT, CAMPUS_CACHE)
. "$ROOT/scripts/lib.sh"
. "$ROOT/scripts/install/filebeat.sh" # FILEBEAT_VERSION, FILEBEAT_BIN, install_filebeat
CD=${CAMPUS_CLUSTER_DATA:-$ROOT/target/cluster}
NODE=campus-node
HOST_IF=campus-h0
HOST_IP=10.213.0.1
NODE_IP=10.213.0.2
POD_CIDR=10.214.0.0/24
CLUSTER_CIDR=10.214.0.0/16
SVC_CIDR=10.215.0.0/24
API_SVC_IP=10.215.0.1
DNS_IP=10.215.0.10
API=https://$NODE_IP:6443
MAX_NODES=4
# The node the node-specific functions act on (use_node I): its directory, name, address, pod range,
# kubelet cgroup root and certificate; the first node's by default.
ND=$CD NODE_CGROOT=campus-node KUBELET_CERT=kubelet
COREDNS_VERSION=1.15.0
# CAMPUS_CLUSTER_DNS=0: no CoreDNS (a quicker cluster without names).
WITH_DNS=${CAMPUS_CLUSTER_DNS:-1}
# CAMPUS_CLUSTER_INFRA: where the platform's servers are — pods (the default: the chart's dev
# infrastructure, from images of the real servers built here, scripts/infra-images.sh) or host (the
# host's servers of scripts/servers.sh as Services of the namespace campus-host, bridge_host_servers;
# Kafka outlives the release there, so the e2e also sees the topics deletionPolicy Delete removed).
INFRA=${CAMPUS_CLUSTER_INFRA:-pods}
# CAMPUS_CLUSTER_HOST=1|0: the host's servers bridged into the cluster or not (default: with INFRA=host).
WITH_HOST=${CAMPUS_CLUSTER_HOST:-$([ "$INFRA" = host ] && echo 1 || echo 0)}
IMAGES=$CAMPUS_CACHE/cluster-images
CGROOT=campus-node
KUBECTL=$BIN/kubectl
# The daemons, in start order (down stops them in reverse, then everything left in the cgroups).
DAEMONS=(etcd apiserver controller-manager scheduler containerd kubelet kube-proxy kafka)

log() { echo "cluster: $*"; }
die() { echo "cluster: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
k() { "$KUBECTL" --kubeconfig "$CD/kubeconfig" "$@"; }
holder() { cat "$ND/holder.pid" 2>/dev/null; }
holder_alive() { local p; p=$(holder) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
# node_exec CMD...: CMD in the node's network, mount and UTS namespaces.
node_exec() { nsenter -t "$(holder)" -n -m -u -- "$@"; }
# use_node I: the node-specific functions (holder, node_exec, spawn, start_holder, write_configs, ...)
# act on node I from now on.
use_node() {
  local i=$1
  if [ "$i" = 1 ]; then
    ND=$CD NODE=campus-node NODE_IP=10.213.0.2 POD_CIDR=10.214.0.0/24 NODE_CGROOT=$CGROOT KUBELET_CERT=kubelet
  else
    ND=$CD/node-$i NODE=campus-node-$i NODE_IP=10.213.$((i - 1)).2 POD_CIDR=10.214.$((i - 1)).0/24
    NODE_CGROOT=$CGROOT/node-$i KUBELET_CERT=kubelet-$i
  fi
}
# node_indexes: the nodes of the cluster (1, then those add-node started).
node_indexes() {
  echo 1
  local d; for d in "$CD"/node-[0-9]*; do [ -d "$d" ] && echo "${d##*/node-}"; done | sort -n
}
# spawn NAME CMD...: a daemon in the node (own session, the cgroups /campus-node/daemons), log
# $CD/NAME.log, PID in $CD/NAME.pid.
spawn() {
  local n=$1; shift
  setsid bash -c 'for f in $0; do echo $$ >"$f"; done; exec "$@"' "$(daemon_cgroups)" \
    nsenter -t "$(holder)" -n -m -u -- "$@" >"$CD/$n.log" 2>&1 </dev/null &
  echo $! >"$CD/$n.pid"
  disown $! # (no job notice when `down` kills it from the same shell)
}
daemon_cgroups() { local h; for h in $(cg_hierarchies); do echo "$h/$CGROOT/daemons/cgroup.procs"; done; }
alive() { running_pidfile "$CD/$1.pid"; }
# wait_for SECONDS WHAT CMD...: until CMD succeeds; fails with WHAT after SECONDS.
wait_for() {
  local s=$1 what=$2; shift 2
  local end=$(($(date +%s) + s))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${s}s waiting for $what"
    sleep 0.5
  done
}

# The cgroup hierarchies (mount points) of the host: v1, and the v2 one of a hybrid setup (runc puts
# containers there too).
cg_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts; }

# Sysctls, without the counters that change on their own.
VOLATILE='^(fs\.(dentry-state|file-nr|inode-nr|inode-state|quota\.)|kernel\.(ns_last_pid|random\.|pty\.nr|sched_domain)|net\.netfilter\.nf_conntrack_count|vm\.(stat_refresh|drop_caches)|fs\.binfmt_misc)'
sysctl_dump() { sysctl -a 2>/dev/null | grep -Ev "$VOLATILE" | sort; }

# ---------------------------------------------------------------- build: binaries and images

need_tools() {
  local t
  for t in containerd runc /usr/lib/cni/bridge iptables conntrack nft socat gcc podman openssl; do
    command -v "$t" >/dev/null || [ -x "$t" ] || { bash "$ROOT/scripts/deps.sh" cluster; return; }
  done
  # (Debian's containerd package starts no daemon here, no systemd; its config is never used.)
}

# build_coredns: CoreDNS v$COREDNS_VERSION with the plugins a cluster DNS uses (a throwaway main module
# importing coremain and those plugins; the full plugin set pulls every cloud SDK).
build_coredns() {
  local out=$CAMPUS_CACHE/coredns-v$COREDNS_VERSION/coredns
  [ -x "$out" ] && return 0
  go_env static
  local work; work=$(mktemp -d)
  cat >"$work/main.go" <<'GO'
// CoreDNS with the plugins of the kubeadm / kind Corefile.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"
)

func main() { coremain.Run() }
GO
  printf 'module campus.dev/coredns-build\ngo 1.26.0\nrequire github.com/coredns/coredns v%s\n' "$COREDNS_VERSION" >"$work/go.mod"
  log "go build coredns v$COREDNS_VERSION (log $CAMPUS_CACHE/coredns-build.log)"
  mkdir -p "$(dirname "$out")"
  local t0; t0=$(now)
  (cd "$work" && nice go build -trimpath -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=v$COREDNS_VERSION" -o "$out.tmp" .) \
    >"$CAMPUS_CACHE/coredns-build.log" 2>&1 || { tail -n 30 "$CAMPUS_CACHE/coredns-build.log" >&2; rm -rf "$work"; exit 1; }
  mv "$out.tmp" "$out"; rm -rf "$work"
  log "coredns built in $(since "$t0") s"
}

# image_pause: pause.c of k8s.io/kubernetes v$KUBE_VERSION, static.
image_pause() {
  local tar=$IMAGES/pause-k8s-v$KUBE_VERSION.tar
  [ -f "$tar" ] && return 0
  go_env
  local src; src=$(cd "$CAMPUS_CACHE" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  local r; r=$(mktemp -d)
  gcc -Os -static -DVERSION="v$KUBE_VERSION-campus" -o "$r/pause" "$src/build/pause/linux/pause.c"
  strip "$r/pause"
  python3 "$ROOT/scripts/oci-image.py" "$tar" "$PAUSE_IMAGE" "$r" --entrypoint '["/pause"]' --user 65535:65535
  rm -rf "$r"
}

# image_busybox: Debian's busybox-static on an empty root (a shell, wget, nslookup, httpd).
image_busybox() {
  local ver; ver=$(apt-cache policy busybox-static | sed -n 's/^  Candidate: //p')
  [ -n "$ver" ] || die "apt knows no busybox-static"
  local tag=${ver#*:}; tag=${tag//[^A-Za-z0-9_.-]/_}
  BUSYBOX_IMAGE=localhost/campus/debian-busybox:$tag
  local tar=$IMAGES/debian-busybox-$tag.tar
  echo "$BUSYBOX_IMAGE" >"$IMAGES/busybox.name"
  [ -f "$tar" ] && return 0
  local r; r=$(mktemp -d); chmod 777 "$r" # (apt downloads as _apt)
  (cd "$r" && apt-get download -q "busybox-static=$ver" >/dev/null && dpkg-deb -x busybox-static_*.deb root)
  mkdir -p "$r/root/"{tmp,etc,root,www}
  chmod 1777 "$r/root/tmp"
  local a
  for a in $("$r/root/bin/busybox" --list); do [ -e "$r/root/bin/$a" ] || ln -s busybox "$r/root/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/root/etc/group"
  rm -rf "$r/root/usr/share"
  python3 "$ROOT/scripts/oci-image.py" "$tar" "$BUSYBOX_IMAGE" "$r/root" --cmd '["/bin/sh"]'
  rm -rf "$r"
}

# image_debian: a Debian base (debootstrap --variant=minbase of the host's suite, from the mirror the
# host's apt uses), for images that need a distribution (a JRE for Kafka, ...).
image_debian() {
  local suite; suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  local tar=$IMAGES/debian-$suite-minbase.tar rootfs=$IMAGES/rootfs/debian-$suite-minbase.tar
  [ -f "$tar" ] && [ -f "$rootfs" ] && return 0
  need_apt debootstrap
  local mirror
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || die "no Debian mirror in the host's apt sources"
  local r t0; r=$(mktemp -d); t0=$(now)
  debootstrap --variant=minbase "$suite" "$r/root" "$mirror" >"$IMAGES/debootstrap.log" 2>&1 ||
    { tail -n 20 "$IMAGES/debootstrap.log" >&2; rm -rf "$r"; exit 1; }
  rm -rf "$r/root/var/cache/apt/archives/"*.deb "$r/root/var/lib/apt/lists/"* "$r/root/dev/"* "$r/root/proc/"* "$r/root/sys/"*
  python3 "$ROOT/scripts/oci-image.py" "$tar" "localhost/campus/debian:$suite-minbase" "$r/root" --cmd '["/bin/bash"]'
  # (and the root itself, the base of the infrastructure images (scripts/infra-images.sh): in a
  # directory of its own, every *.tar of $IMAGES is imported as an image)
  mkdir -p "$(dirname "$rootfs")"; tar -C "$r/root" -cf "$rootfs.tmp" . && mv "$rootfs.tmp" "$rootfs"
  rm -rf "$r"
  log "Debian $suite minbase image in $(since "$t0") s ($(du -m "$tar" | cut -f1) MB)"
}

image_coredns() {
  local tar=$IMAGES/coredns-v$COREDNS_VERSION.tar
  [ -f "$tar" ] && return 0
  build_coredns
  local r; r=$(mktemp -d)
  cp "$CAMPUS_CACHE/coredns-v$COREDNS_VERSION/coredns" "$r/coredns"
  mkdir -p "$r/etc"
  python3 "$ROOT/scripts/oci-image.py" "$tar" "$COREDNS_IMAGE" "$r" --entrypoint '["/coredns"]'
  rm -rf "$r"
}

# image_filebeat: the Filebeat the suite runs (scripts/install/filebeat.sh: pure Go, built from the Go
# module proxy) on an empty root laid out as the upstream image: home /usr/share/filebeat, data/ below
# it (the DaemonSet mounts its registry there). The CampusPlatform's logging.filebeat.image names it.
image_filebeat() {
  local tar=$IMAGES/filebeat-$FILEBEAT_VERSION.tar
  [ -f "$tar" ] && return 0
  install_filebeat
  local r; r=$(mktemp -d)
  mkdir -p "$r/usr/share/filebeat/data" "$r/etc" "$r/tmp"
  chmod 1777 "$r/tmp"
  cp "$FILEBEAT_BIN" "$r/usr/share/filebeat/filebeat"
  printf 'root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  python3 "$ROOT/scripts/oci-image.py" "$tar" "$FILEBEAT_IMAGE" "$r" --workdir /usr/share/filebeat \
    --entrypoint '["/usr/share/filebeat/filebeat", "--path.home", "/usr/share/filebeat", "-environment", "container"]'
  rm -rf "$r"
}

PAUSE_IMAGE=localhost/campus/pause:k8s-v$KUBE_VERSION
FILEBEAT_IMAGE=localhost/campus/filebeat:$FILEBEAT_VERSION
COREDNS_IMAGE=localhost/campus/coredns:v$COREDNS_VERSION

. "$ROOT/scripts/infra-images.sh" # infra_images, infra_image_name: the dev infrastructure's images

build_all() {
  need_tools
  bash "$ROOT/scripts/kube.sh" build node
  mkdir -p "$IMAGES"
  image_pause
  image_busybox
  image_debian
  [ "$WITH_DNS" = 0 ] || image_coredns
  image_filebeat
}

# ---------------------------------------------------------------- certificates and kubeconfigs

# cert NAME CN O [SAN]: NAME.key/NAME.crt in $CD/pki signed by the cluster CA.
cert() {
  local p=$CD/pki name=$1 cn=$2 o=$3 san=${4:-}
  openssl genrsa -out "$p/$name.key" 2048 2>/dev/null
  local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o/CN=$cn"
  openssl req -new -key "$p/$name.key" -subj "$subj" -out "$p/$name.csr" 2>/dev/null
  local ext; ext=$(mktemp)
  if [ -n "$san" ]; then
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$san" >"$ext"
  else
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 365 \
    -extfile "$ext" -out "$p/$name.crt" 2>/dev/null
  rm -f "$ext" "$p/$name.csr"
}

make_pki() {
  local p=$CD/pki; mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 365 \
    -subj "/CN=campus-cluster-ca" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "IP:$NODE_IP,IP:$API_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert kubelet "$NODE" "" "IP:$NODE_IP,DNS:$NODE"
  kube_sa_keys "$p"
  # Token users: name, uid, groups (the API server's bootstrap RBAC binds the system:kube-* users).
  # The API server reads them once: the kubelets of nodes that may join later have theirs already.
  : >"$p/tokens.csv"
  local u file user group token users=() i
  for ((i = 2; i <= MAX_NODES; i++)); do users+=("node-$i|system:node:campus-node-$i|system:nodes"); done
  for u in "admin|admin|system:masters" "node|system:node:$NODE|system:nodes" "proxy|system:kube-proxy|" \
    "scheduler|system:kube-scheduler|" "controller-manager|system:kube-controller-manager|" "${users[@]}"; do
    IFS='|' read -r file user group <<<"$u"
    token=$(kube_token "$p/$file.token")
    echo "$token,$user,$user${group:+,\"$group\"}" >>"$p/tokens.csv"
    # In the node the API server is 127.0.0.1:6443; the host's admin uses $API (and so do the other
    # nodes: node_pki).
    [[ $file = node-* ]] || kube_kubeconfig "$CD/$file.kubeconfig" campus-cluster https://127.0.0.1:6443 "$token" "$p/ca.crt"
  done
  kube_kubeconfig "$CD/kubeconfig" campus-cluster "$API" "$(cat "$p/admin.token")" "$p/ca.crt"
}

# node_pki I: node I's kubelet serving certificate and the kubeconfigs of its kubelet and kube-proxy
# (the API server at $API, reached through the first node).
node_pki() {
  local i=$1 p=$CD/pki
  cert "kubelet-$i" "$NODE" "" "IP:$NODE_IP,DNS:$NODE"
  kube_kubeconfig "$ND/node.kubeconfig" campus-cluster "$API" "$(cat "$p/node-$i.token")" "$p/ca.crt"
  kube_kubeconfig "$ND/proxy.kubeconfig" campus-cluster "$API" "$(cat "$p/proxy.token")" "$p/ca.crt"
}

# ---------------------------------------------------------------- the node's namespaces

# The holder's first steps inside its new namespaces (arguments: the node's directory, its name).
HOLDER_INIT='set -e
cd=$1
hostname "$2"
cg=$(awk '"'"'$3 == "cgroup" || $3 == "cgroup2" { print $2, $3, $4 }'"'"' /proc/self/mounts)
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
while read -r dir type opts; do mkdir -p "$dir"; mount -t "$type" -o "$opts" "$type" "$dir"; done <<EOF
$cg
EOF
# A tmpfs over /run and /tmp, unless the cluster directory is under it (a clone in /tmp: the tmpfs
# would hide it from every daemon); then the node shares that directory with the host.
case "$cd/" in /run/*) ;; *) mount -t tmpfs -o mode=755 tmpfs /run ;; esac
case "$cd/" in /tmp/*) ;; *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;; esac
mount --bind "$cd/node/var-lib" /var/lib
mount --bind "$cd/node/var-log" /var/log
ip link set lo up
exec -a "$2-holder" sleep infinity'

# make_cgroups: /campus-node/daemons and the node's kubelet root in every v1 hierarchy (cpuset: the
# parent's cpus and mems).
make_cgroups() {
  local h d
  for h in $(cg_hierarchies); do
    for d in "$CGROOT" "$CGROOT/daemons" "$NODE_CGROOT"; do
      mkdir -p "$h/$d"
      if [ -f "$h/cpuset.cpus" ]; then cat "$h/cpuset.cpus" >"$h/$d/cpuset.cpus"; cat "$h/cpuset.mems" >"$h/$d/cpuset.mems"; fi
    done
  done
}

own_netns() { local ns; ns=$(readlink "/proc/$1/ns/net") && [ "$ns" != "$(readlink /proc/self/ns/net)" ]; }

# start_holder I: node I's namespaces and its link (node 1: to the host; others: to node 1).
start_holder() {
  local i=$1
  mkdir -p "$ND/node/var-lib" "$ND/node/var-log"
  make_cgroups
  # The subshell joins the cgroups, then becomes the holder (exec: same PID).
  setsid bash -c 'for f in $3; do echo $$ >"$f"; done; exec unshare --net --mount --uts --propagation slave -- bash -c "$0" holder "$1" "$2"' \
    "$HOLDER_INIT" "$ND" "$NODE" "$(daemon_cgroups)" >"$ND/holder.log" 2>&1 </dev/null &
  echo $! >"$ND/holder.pid"
  disown $!
  local pid=$!
  wait_for 10 "the node's namespaces" own_netns "$pid"
  wait_for 10 "the node's mounts" node_exec mountpoint -q /var/log
  readlink "/proc/$pid/ns/net" >"$ND/netns"
  if [ "$i" = 1 ]; then
    # The veth pair: host end here, node end moved into the node and named eth0.
    ip link add "$HOST_IF" type veth peer name eth0 netns "$pid"
    ip addr add "$HOST_IP/30" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    node_exec ip addr add "$NODE_IP/30" dev eth0
    node_exec ip link set eth0 up
    node_exec ip route add default via "$HOST_IP"
    # Pods' traffic to the host leaves with the node's address (the host has no route to the pods),
    # that of the other nodes' pods too.
    node_exec iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE
  else
    # A veth made inside node 1 (the host's namespace never holds either end): eth-nI there, eth0 here.
    local link=eth-n$i net=10.213.$((i - 1)) pods=$POD_CIDR ip=$NODE_IP
    (use_node 1; node_exec ip link add "$link" type veth peer name eth0 netns "$pid"
      node_exec ip addr add "$net.1/30" dev "$link"
      node_exec ip link set "$link" up
      node_exec ip route add "$pods" via "$ip" dev "$link")
    node_exec ip addr add "$NODE_IP/30" dev eth0
    node_exec ip link set eth0 up
    node_exec ip route add default via "$net.1"
  fi
  # Per-namespace settings of the node: routing between pods and out of the node, iptables on bridged
  # pod-to-pod traffic (Service replies), IPv6 off.
  node_exec sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
    net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  echo "# no upstream: CoreDNS answers the cluster's names only" >"$ND/node/resolv.conf"
}

# ---------------------------------------------------------------- configuration files

write_configs() {
  mkdir -p "$ND/node/cni"
  cat >"$ND/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  disable_apparmor = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  # No CAP_SYS_RESOURCE here (the machine's bounding set lacks it): no oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$ND/node/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
  # (No ipMasq: pods reach pods on other nodes with their own addresses; start_holder masquerades
  # what leaves for the host.)
  cat >"$ND/node/cni/10-campus.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "campus",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$ND/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROOT
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $CD/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $CD/pki/$KUBELET_CERT.crt
tlsPrivateKeyFile: $CD/pki/$KUBELET_CERT.key
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $ND/node/resolv.conf
failSwapOn: false
# A machine shared with others: no eviction for its disk, no image garbage collection (the images
# cannot be pulled again).
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
evictionPressureTransitionPeriod: 30s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
  cat >"$ND/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $ND/proxy.kubeconfig}
hostnameOverride: $NODE
mode: iptables
clusterCIDR: $CLUSTER_CIDR
metricsBindAddress: 127.0.0.1:10249
# conntrack limits are global (the host's): left alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# ---------------------------------------------------------------- up / down

up() {
  local i
  if holder_alive; then log "already up (KUBECONFIG=$CD/kubeconfig)"; return 0; fi
  [ -e "$CD" ] && die "$CD exists but the cluster is not running: run \`$0 down\` first"
  build_all
  local t0; t0=$(now)
  mkdir -p "$CD"
  sysctl_dump >"$CD/host-sysctl.before"
  start_holder 1
  make_pki
  write_configs
  kube_etcd_args /var/lib/etcd 127.0.0.1 2379
  spawn etcd "$BIN/etcd" "${ETCD_ARGS[@]}"
  wait_for 20 etcd node_exec bash -c '(exec 3<>/dev/tcp/127.0.0.1/2379)'
  kube_apiserver_args http://127.0.0.1:2379 "$CD/pki"
  spawn apiserver "$BIN/kube-apiserver" "${APISERVER_ARGS[@]}" --bind-address=0.0.0.0 \
    --advertise-address="$NODE_IP" --secure-port=6443 --tls-cert-file="$CD/pki/apiserver.crt" \
    --tls-private-key-file="$CD/pki/apiserver.key" --client-ca-file="$CD/pki/ca.crt" \
    --token-auth-file="$CD/pki/tokens.csv" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --service-cluster-ip-range="$SVC_CIDR" \
    --kubelet-client-certificate="$CD/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$CD/pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$CD/pki/ca.crt" --kubelet-preferred-address-types=InternalIP
  kube_wait_ready "$CD/kubeconfig" "$CD/apiserver.pid" "$CD/apiserver.log"
  spawn controller-manager "$BIN/kube-controller-manager" --kubeconfig="$CD/controller-manager.kubeconfig" \
    --leader-elect=false --controllers='*' --use-service-account-credentials=true \
    --service-account-private-key-file="$CD/pki/sa.key" --root-ca-file="$CD/pki/ca.crt" \
    --cluster-signing-cert-file="$CD/pki/ca.crt" --cluster-signing-key-file="$CD/pki/ca.key" \
    --bind-address=127.0.0.1 --secure-port=0 --cluster-name=campus-cluster
  spawn scheduler "$BIN/kube-scheduler" --kubeconfig="$CD/scheduler.kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0
  node_daemons ""
  wait_for 120 "node $NODE Ready" node_ready
  local ready; ready=$(since "$t0")
  # The kubelet has set its kernel tunables (once, at start); the host gets its own back at once
  # (kernel.panic=10 and panic_on_oops=1 would reboot a shared machine on any oops).
  restore_sysctls
  log "node $NODE Ready in $ready s from cold start"
  for ((i = 2; i <= ${CAMPUS_CLUSTER_NODES:-1}; i++)); do add_node; done
  if [ "$WITH_DNS" != 0 ]; then
    deploy_coredns
    wait_for 120 "CoreDNS Available" k -n kube-system wait --for=condition=Available deployment/coredns --timeout=5s
    log "CoreDNS Available at $(since "$t0") s"
  fi
  if [ "$WITH_HOST" != 0 ]; then
    bridge_host_servers
    log "the host's servers as Services in $HOST_NS: $(k -n "$HOST_NS" get svc -o name | sed 's|service/||' | tr '\n' ' ')"
  fi
  log "KUBECONFIG=$CD/kubeconfig (API $API)"
}

# node_daemons PREFIX: the node's containerd (the images imported), kubelet and kube-proxy; their
# logs and PIDs $CD/PREFIX<daemon>.{log,pid}.
node_daemons() {
  local pre=$1
  spawn "${pre}containerd" /usr/bin/containerd --config "$ND/containerd.toml"
  wait_for 30 containerd node_exec ctr --address /run/containerd/containerd.sock version
  import_images
  [ -f "$CD/campus-images" ] && import_campus_images
  [ -f "$CD/infra-images" ] && import_infra_images
  spawn "${pre}kubelet" "$BIN/kubelet" --config="$ND/kubelet.yaml" --kubeconfig="$ND/node.kubeconfig" \
    --hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
  spawn "${pre}kube-proxy" "$BIN/kube-proxy" --config="$ND/kube-proxy.yaml" --v=1
}

# add_node: the next node (2..$MAX_NODES) joins the running cluster; waits for it to be Ready.
add_node() {
  holder_alive || die "the cluster is down: \`$0 up\` first"
  local i=2 t0; t0=$(now)
  while [ -e "$CD/node-$i" ]; do i=$((i + 1)); done
  [ "$i" -le "$MAX_NODES" ] || die "$MAX_NODES nodes already"
  use_node "$i"
  mkdir -p "$ND"
  start_holder "$i"
  node_pki "$i"
  write_configs
  node_daemons "node-$i/"
  wait_for 120 "node $NODE Ready" node_ready
  restore_sysctls
  log "node $NODE Ready in $(since "$t0") s (joined; pods $POD_CIDR)"
  use_node 1
}

node_ready() { [ "$(k get node "${1:-$NODE}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }

import_images() {
  local f
  for f in "$IMAGES"/*.tar; do
    # (a directory the node sees: the host's /tmp is not)
    node_exec ctr --address /run/containerd/containerd.sock -n k8s.io images import "$f" >/dev/null
  done
  node_exec ctr --address /run/containerd/containerd.sock -n k8s.io images ls -q | grep -v '^sha256:' | sed 's/^/cluster: image /'
}

deploy_coredns() {
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: system:coredns}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: system:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
           lameduck 5s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
           pods insecure
           fallthrough in-addr.arpa ip6.arpa
           ttl 30
        }
        prometheus :9153
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
        livenessProbe: {httpGet: {path: /health, port: 8080}, initialDelaySeconds: 10}
        readinessProbe: {httpGet: {path: /ready, port: 8181}}
        resources: {requests: {cpu: 50m, memory: 40Mi}, limits: {memory: 170Mi}}
      volumes:
      - name: config
        configMap: {name: coredns, items: [{key: Corefile, path: Corefile}]}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

# ---------------------------------------------------------------- the host's servers, from pods

# The suite's servers (scripts/servers.sh) listen on 127.0.0.1 of the host, which pods cannot reach.
# `up` puts a socat forwarder on the host end of the veth for each ($HOST_IP:PORT -> 127.0.0.1:PORT:
# the server sees a local client) and, since Kafka tells its clients to connect to the address it
# advertises (127.0.0.1), a Kafka node of the cluster's own on $HOST_IP:9092 (scripts/kafka-node.sh).
# Selector-less Services with EndpointSlices on $HOST_IP give them names in the namespace $HOST_NS:
# mysql, redis, mongodb, elasticsearch, kafka. (For the shared servers themselves to be reached, they
# would listen on $HOST_IP or 0.0.0.0 too, and Kafka have a second listener advertised as $HOST_IP.)
HOST_NS=campus-host
HOST_SERVERS="mysql:3306 redis:6379 mongodb:27017 elasticsearch:9200"
KAFKA_PORT=9092

# spawn_host NAME CMD...: a process of the cluster in the host's namespaces (the cluster's cgroups).
spawn_host() {
  local n=$1; shift
  setsid bash -c 'for f in $0; do echo $$ >"$f"; done; exec "$@"' "$(daemon_cgroups)" "$@" \
    >"$CD/$n.log" 2>&1 </dev/null &
  echo $! >"$CD/$n.pid"
  disown $!
}

bridge_host_servers() {
  local sv name port ports=$KAFKA_PORT
  for sv in $HOST_SERVERS; do
    name=${sv%%:*} port=${sv##*:}
    if ! listening "$port"; then log "no $name on 127.0.0.1:$port (scripts/servers.sh): no Service $name"; continue; fi
    spawn_host "bridge-$name" socat "TCP-LISTEN:$port,bind=$HOST_IP,reuseaddr,fork" "TCP:127.0.0.1:$port"
    ports+=,$port
    host_service "$name" "$port"
  done
  start_kafka
  host_service kafka "$KAFKA_PORT"
  # Pods reach the host on these ports only (the host has other listeners on 0.0.0.0): a chain of the
  # node's own, before kube-proxy's.
  node_exec iptables -N CAMPUS-HOST
  node_exec iptables -A CAMPUS-HOST -p tcp -m multiport --dports "$ports" -j ACCEPT
  node_exec iptables -A CAMPUS-HOST -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  node_exec iptables -A CAMPUS-HOST -j REJECT
  node_exec iptables -I FORWARD 1 -o eth0 -j CAMPUS-HOST
}

# start_kafka: the cluster's Kafka node (its data in $CD/kafka: a restart comes back with it).
start_kafka() {
  spawn_host kafka bash "$ROOT/scripts/kafka-node.sh" --dir "$CD/kafka" --port "$KAFKA_PORT" \
    --controller-port $((KAFKA_PORT + 1)) --voters "1@$HOST_IP:$((KAFKA_PORT + 1))" \
    --set "listeners=PLAINTEXT://$HOST_IP:$KAFKA_PORT,CONTROLLER://$HOST_IP:$((KAFKA_PORT + 1))" \
    --set "advertised.listeners=PLAINTEXT://$HOST_IP:$KAFKA_PORT"
}

# host_service NAME PORT: Service NAME in $HOST_NS, its one endpoint $HOST_IP:PORT.
host_service() {
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $HOST_NS}
---
apiVersion: v1
kind: Service
metadata: {name: $1, namespace: $HOST_NS}
spec:
  ports: [{name: tcp, port: $2, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $1-host
  namespace: $HOST_NS
  labels: {kubernetes.io/service-name: $1, endpointslice.kubernetes.io/managed-by: campus-cluster.sh}
addressType: IPv4
ports: [{name: tcp, port: $2, protocol: TCP}]
endpoints: [{addresses: [$HOST_IP], conditions: {ready: true}}]
YAML
}

# ---------------------------------------------------------------- the chart

CAMPUS_IMAGES="operator content coupon log"
RELEASE=campus
RELEASE_NS=campus
# Filebeat's namespace: helm/cluster-values.yaml's platform.extraSpec.logging.filebeat.namespace and
# operator.filebeatNamespaces name it too.
FILEBEAT_NS=campus-logging
HELM=$CAMPUS_CACHE/bin/helm
CLUSTER_DBS="campus_cluster_content campus_cluster_coupon"

# import_campus_images: the images scripts/images.sh built (podman), into the node's containerd.
import_campus_images() {
  local i tar
  mkdir -p "$CD/images"
  for i in $CAMPUS_IMAGES; do
    podman image exists "localhost/campus-$i:${TAG:-dev}" || die "no image localhost/campus-$i:${TAG:-dev}: run scripts/images.sh build"
    tar=$CD/images/campus-$i.tar
    podman save -q --format docker-archive -o "$tar" "localhost/campus-$i:${TAG:-dev}"
    node_exec ctr --address /run/containerd/containerd.sock -n k8s.io images import "$tar" >/dev/null
    rm -f "$tar"
  done
  touch "$CD/campus-images" # (nodes that join later import them too)
}

# import_infra_images: the dev infrastructure's images (scripts/infra-images.sh), into the node's
# containerd.
import_infra_images() {
  local f
  for f in "$INFRA_IMAGES"/*.tar; do
    node_exec ctr --address /run/containerd/containerd.sock -n k8s.io images import "$f" >/dev/null
  done
  touch "$CD/infra-images"
}

# release_namespaces: the release namespace enforcing the `restricted` Pod Security Standard (every
# pod the chart and the operator make there meets it), and Filebeat's, `privileged` (its hostPath
# volumes, the nodes' logs, are allowed by no other level). Both exist before the install: the chart
# binds the operator's rights in them.
release_namespaces() {
  local ns level
  for ns in "$RELEASE_NS:restricted" "$FILEBEAT_NS:privileged"; do
    level=${ns#*:} ns=${ns%%:*}
    k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
    k label --overwrite namespace "$ns" "pod-security.kubernetes.io/enforce=$level" \
      "pod-security.kubernetes.io/enforce-version=latest" "pod-security.kubernetes.io/warn=$level" >/dev/null
  done
}

# platform: `helm install` of helm/campus with helm/cluster-values.yaml; waits for the CampusPlatform
# to be Ready. INFRA=host: against the host's servers (the cluster up with INFRA=host); INFRA=pods
# (`platform --infra pods`): the chart's dev infrastructure in pods (see helm_campus).
platform() {
  holder_alive || die "the cluster is down: \`$0 up\` first"
  [ -x "$HELM" ] || bash "$ROOT/scripts/deps.sh"
  local t0 i; t0=$(now)
  [ "$INFRA" = pods ] && infra_images
  for i in $(node_indexes); do
    (use_node "$i"; import_campus_images; if [ "$INFRA" = pods ]; then import_infra_images; fi)
  done
  log "Campus images imported ($(since "$t0") s)"
  if [ "$INFRA" = pods ]; then
    local t1; t1=$(now)
    release_namespaces
    helm_campus
    wait_for 600 "CampusPlatform Ready" platform_ready
    log "helm install (dev infrastructure in pods) to CampusPlatform Ready: $(since "$t1") s"
    return 0
  fi
  k -n "$HOST_NS" get service mysql >/dev/null 2>&1 ||
    die "no host servers in the cluster (namespace $HOST_NS): \`up\` with CAMPUS_CLUSTER_INFRA=host"
  local db sql=""
  for db in $CLUSTER_DBS; do sql+="CREATE DATABASE IF NOT EXISTS \`$db\`; "; done
  mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot -e "$sql"
  local h=campus-host.svc
  release_namespaces
  k -n "$RELEASE_NS" create secret generic campus-host-credentials --dry-run=client -o yaml \
    --from-literal=mysql-url-content="mysql://root@mysql.$h:3306/campus_cluster_content" \
    --from-literal=mysql-url-coupon="mysql://root@mysql.$h:3306/campus_cluster_coupon" \
    --from-literal=mongo-url="mongodb://mongodb.$h:27017" \
    --from-literal=redis-url="redis://redis.$h:6379" | k apply -f - >/dev/null
  local t1; t1=$(now)
  helm_campus
  wait_for 600 "CampusPlatform Ready" platform_ready
  log "helm install to CampusPlatform Ready: $(since "$t1") s"
}

# helm_campus [ARGS...]: `helm upgrade --install` of the chart with the cluster's values (and ARGS).
# INFRA=pods: helm/dev-values.yaml first (what a user installs), then the cluster's values, then
# helm/cluster-dev-values.yaml with the images of the real servers built here.
helm_campus() {
  local values=(-f "$ROOT/helm/cluster-values.yaml")
  if [ "$INFRA" = pods ]; then
    values=(-f "$ROOT/helm/dev-values.yaml" "${values[@]}" -f "$ROOT/helm/cluster-dev-values.yaml")
    local c img
    for c in kafka:kafka mysql:mariadb redis:redis mongodb:ferretdb elasticsearch:opensearch; do
      img=$(infra_image_name "${c#*:}")
      values+=(--set "infrastructure.${c%%:*}.image=$img")
    done
  fi
  KUBECONFIG=$CD/kubeconfig "$HELM" upgrade --install "$RELEASE" "$ROOT/helm/campus" -n "$RELEASE_NS" \
    "${values[@]}" --set "platform.extraSpec.logging.filebeat.image=$FILEBEAT_IMAGE" \
    --wait --timeout 5m "$@"
}

platform_ready() {
  [ "$(k -n "$RELEASE_NS" get campusplatform campus -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# restore_sysctls: every sysctl that differs from the record `up` made is written back.
restore_sysctls() {
  [ -f "$CD/host-sysctl.before" ] || return 0
  local line key val
  while IFS= read -r line; do
    key=${line%% = *}; val=${line#* = }
    if sysctl -qw "$key=$val" 2>/dev/null; then log "sysctl $key restored to $val"; else log "sysctl $key: cannot restore $val"; fi
  done < <(comm -23 "$CD/host-sysctl.before" <(sysctl_dump) | grep ' = ')
}

# cluster_pids: every process of the cluster: in the cgroups /campus-node/**, or in the node's network
# namespace (a shell someone entered with `node`).
cluster_pids() {
  {
    local h
    for h in $(cg_hierarchies); do
      [ -d "$h/$CGROOT" ] && find "$h/$CGROOT" -name cgroup.procs -exec cat {} + 2>/dev/null
    done
    local nets; nets=$(cat "$CD/netns" "$CD"/node-*/netns 2>/dev/null | tr '\n' ' ')
    if [ -n "$nets" ]; then
      # (one find for all processes: a readlink per process takes seconds on a loaded machine)
      find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -printf '%h %l\n' 2>/dev/null |
        awk -v nets=" $nets" 'index(nets, " " $2 " ") { split($1, a, "/"); print a[3] }'
    fi
  } | sort -un | grep -vx "$$" || true
}

# all_daemons: the first node's daemons, then those of every node that joined (node-I/<daemon>).
all_daemons() {
  echo "${DAEMONS[@]}"
  local i d
  for i in $(node_indexes); do
    [ "$i" = 1 ] && continue
    echo "node-$i/holder"
    for d in containerd kubelet kube-proxy; do echo "node-$i/$d"; done
  done
}

down() {
  local t0; t0=$(now)
  # The daemons by PID (each leads its process group), all at once, given 10 s to exit.
  local pids=() names=() d i
  for d in $(all_daemons); do alive "$d" && { pids+=("$(cat "$CD/$d.pid")"); names+=("$d"); }; done
  for d in "${pids[@]}"; do term_group "$d"; done
  for _ in $(seq 1 100); do
    local any=0
    for d in "${pids[@]}"; do kill -0 "$d" 2>/dev/null && any=1; done
    [ $any = 0 ] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do kill -0 "${pids[i]}" 2>/dev/null && log "${names[i]} did not stop in 10 s: killed"; done
  log "daemons stopped ($(since "$t0") s)"
  # Then whatever is left: shims, containers, the holder.
  local left
  for _ in $(seq 1 50); do
    left=$(cluster_pids)
    [ -z "$left" ] && break
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    sleep 0.2
  done
  [ -z "$(cluster_pids)" ] || die "processes left: $(cluster_pids | tr '\n' ' ')"
  # The veth goes with the namespace; the host end, if the namespace never got it.
  ip link show "$HOST_IF" >/dev/null 2>&1 && ip link del "$HOST_IF"
  # The cgroups, deepest first.
  local h
  for h in $(cg_hierarchies); do
    [ -d "$h/$CGROOT" ] && find "$h/$CGROOT" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$h/$CGROOT" ] && die "cgroup $h/$CGROOT cannot be removed"
  done
  # The sysctls the kubelet changed (global ones; the node's own went with its namespace).
  restore_sysctls
  # Nothing of the namespace can still be mounted (it is gone): the data goes.
  rm -rf "$CD"
  log "down in $(since "$t0") s"
}

status() {
  holder_alive || { log "down"; return 0; }
  local d
  for d in holder $(all_daemons); do
    if alive "$d"; then log "$d running (pid $(cat "$CD/$d.pid"))"; else log "$d NOT running"; fi
  done
  k get nodes -o wide || true
  k get pods -A -o wide || true
}

case ${1:-} in
  build) build_all ;;
  up) up ;;
  down) down ;;
  status) status ;;
  e2e) . "$ROOT/scripts/cluster-e2e.sh"; e2e ;;
  platform) if [ "${2:-}" = --infra ]; then INFRA=${3:?--infra host|pods}; fi; platform ;;
  infra-images) need_tools; mkdir -p "$IMAGES"; infra_images ;;
  node) shift; if [ "${1:-}" = -n ]; then use_node "$2"; shift 2; fi; node_exec "$@" ;;
  add-node) add_node ;;
  fn) shift; . "$ROOT/scripts/cluster-e2e.sh"; "$@" ;; # (debugging: one function of this file or of the e2e)
  env) echo "export KUBECONFIG=$CD/kubeconfig"; echo "export PATH=$BIN:\$PATH" ;;
  *) echo "usage: $0 build|up|down|status|e2e|platform|add-node|env|node [-n I] CMD..." >&2; exit 2 ;;
esac
