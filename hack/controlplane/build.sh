# Builds the pinned control-plane binaries from their Go modules (sourced by hack/control-plane).
#
# Each program is built from a small wrapper module that this file generates under the cache (never in the
# clone): a plain `go install k8s.io/kubernetes/cmd/...@v1.36.3` is refused because k8s.io/kubernetes' go.mod
# has replace directives, and keeping each program in its own module stops one program's dependencies from
# bumping another's (etcd and kubernetes disagree on grpc and otel versions).
#
# Expects: versions.env sourced, $root (the checkout), $prefix (the versioned cache directory) and $bin set.

# The module proxy, never a toolchain download: a toolchain we did not ask for must fail loudly.
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"

# write_module DIR MODULE_PATH REQUIREMENT [REPLACE_BLOCK]: a go.mod for a wrapper module.
write_module() {
  local dir=$1 module=$2 requirement=$3 replaces=${4:-}
  mkdir -p "$dir"
  {
    echo "module $module"
    echo
    echo "go 1.26.0"
    echo
    echo "require $requirement"
    if [ -n "$replaces" ]; then
      printf '\nreplace (\n%s\n)\n' "$replaces"
    fi
  } >"$dir/go.mod"
}

# write_tools DIR PACKAGE...: blank imports of the main packages, so `go mod tidy` records their dependencies.
write_tools() {
  local dir=$1
  shift
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins the programs this wrapper module builds."
    echo "package tools"
    echo
    echo "import ("
    printf '\t_ "%s"\n' "$@"
    echo ")"
  } >"$dir/tools.go"
}

# module_dir MODULE@VERSION: where the module's source lies in the module cache (downloading it if needed).
module_dir() {
  go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# staging_replaces: k8s.io/kubernetes maps its staging modules to ./staging/src/...; a consumer maps each
# one to its published v0.x.y release instead. The list is read from the pinned release's own go.mod.
staging_replaces() {
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  sed -n 's#^\t\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*$#\t\1 => \1 '"$KUBERNETES_STAGING_VERSION"'#p' "$gomod"
}

build_kubernetes() {
  local dir=$prefix/src/kubernetes version=${KUBERNETES_VERSION#v} pkg
  local -a pkgs=()
  for pkg in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    pkgs+=("k8s.io/kubernetes/cmd/$pkg")
  done
  write_module "$dir" kubechat.dev/controlplane/kubernetes "k8s.io/kubernetes $KUBERNETES_VERSION" "$(staging_replaces)"
  write_tools "$dir" "${pkgs[@]}"
  # The version stamps that the release build (hack/lib/version.sh) sets, so `kubectl version` tells the truth.
  local x
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $x.gitVersion=$KUBERNETES_VERSION -X $x.gitMajor=${version%%.*}"
    ldflags+=" -X $x.gitMinor=$(echo "$version" | cut -d. -f2) -X $x.gitTreeState=clean"
  done
  (cd "$dir" && go mod tidy && go build -ldflags "$ldflags" -o "$bin/" "${pkgs[@]}")
}

build_etcd() {
  local dir=$prefix/src/etcd
  write_module "$dir" kubechat.dev/controlplane/etcd "go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  cat >"$dir/main.go" <<'GO'
// Command etcd is etcd's own entry point, built from the published go.etcd.io/etcd/server/v3 module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
GO
  (cd "$dir" && go mod tidy && go build -ldflags "$ldflags" -o "$bin/etcd" .)
}

build_kwok() {
  local dir=$prefix/src/kwok
  write_module "$dir" kubechat.dev/controlplane/kwok "sigs.k8s.io/kwok $KWOK_VERSION"
  write_tools "$dir" sigs.k8s.io/kwok/cmd/kwok
  (cd "$dir" && go mod tidy && go build -ldflags "$ldflags" -o "$bin/kwok" sigs.k8s.io/kwok/cmd/kwok)
  write_kwok_stages "$(cd "$dir" && module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")/kustomize/stage"
}

# write_kwok_stages STAGE_DIR: since v0.8 the kwok binary simulates nothing unless given Stages. Take the
# release's own "fast" node and pod stages (and the lease heartbeat, as kwokctl does) from the pinned module.
write_kwok_stages() {
  local stages=$1 file
  mkdir -p "$prefix/etc"
  for file in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    echo "# from sigs.k8s.io/kwok@$KWOK_VERSION kustomize/stage/$file"
    cat "$stages/$file"
  done >"$prefix/etc/kwok-stages.yaml"
}

build_helm() {
  local dir=$prefix/src/helm
  write_module "$dir" kubechat.dev/controlplane/helm "helm.sh/helm/v3 $HELM_VERSION"
  write_tools "$dir" helm.sh/helm/v3/cmd/helm
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  (cd "$dir" && go mod tidy && go build -ldflags "$ldflags" -o "$bin/helm" helm.sh/helm/v3/cmd/helm)
}

# build_node: kubelet and kube-proxy for the real node (hack/node), from the same pinned Kubernetes. A module of
# their own with the same go.mod as the control plane's, so every shared package comes from Go's build cache.
build_node() {
  local dir=$prefix/src/kubernetes-node version=${KUBERNETES_VERSION#v} x
  mkdir -p "$dir"
  cp "$prefix/src/kubernetes/go.mod" "$prefix/src/kubernetes/go.sum" "$dir/"
  sed -i 's#^module .*#module kubechat.dev/controlplane/kubernetes-node#' "$dir/go.mod"
  write_tools "$dir" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $x.gitVersion=$KUBERNETES_VERSION -X $x.gitMajor=${version%%.*}"
    ldflags+=" -X $x.gitMinor=$(echo "$version" | cut -d. -f2) -X $x.gitTreeState=clean"
  done
  (cd "$dir" && go mod tidy && go build -ldflags "$ldflags" -o "$bin/" k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy)
}

# build_coredns: the cluster DNS, with only the plugins hack/node's Corefile names (CoreDNS' own main links
# all ~60 plugins and their cloud SDKs: minutes of compiling for nothing). Static, for a from-scratch image.
build_coredns() {
  local dir=$prefix/src/coredns plugin
  write_module "$dir" kubechat.dev/controlplane/coredns "github.com/coredns/coredns $COREDNS_VERSION"
  {
    echo "// Command coredns is CoreDNS' own main with the plugins a cluster's DNS needs."
    echo "package main"
    echo
    echo "import ("
    printf '\t"github.com/coredns/coredns/coremain"\n'
    for plugin in $COREDNS_PLUGINS; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$plugin"; done
    echo ")"
    echo
    echo "func main() { coremain.Run() }"
  } >"$dir/main.go"
  gofmt -w "$dir/main.go"
  (cd "$dir" && go mod tidy && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$bin/coredns" .)
}

build_metrics_server() {
  local dir=$prefix/src/metrics-server
  write_module "$dir" kubechat.dev/controlplane/metrics-server "sigs.k8s.io/metrics-server $METRICS_SERVER_VERSION"
  write_tools "$dir" sigs.k8s.io/metrics-server/cmd/metrics-server
  (cd "$dir" && go mod tidy && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$bin/metrics-server" \
    sigs.k8s.io/metrics-server/cmd/metrics-server)
}

# build_pause: the pod sandbox's process. No registry is reachable for registry.k8s.io/pause; this does what
# it does (sleep until signalled, reap nothing: the sandbox has no children) in a static binary.
build_pause() {
  local dir=$prefix/src/pause
  mkdir -p "$dir"
  printf 'module kubechat.dev/controlplane/pause\n\ngo 1.26.0\n' >"$dir/go.mod"
  cat >"$dir/main.go" <<'GO'
// Command pause holds a pod's namespaces open until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
GO
  (cd "$dir" && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$bin/pause" .)
}

# The programs of the control plane and of the node, in build order (node needs kubernetes' go.mod). A program's
# build leaves a marker; the node's markers carry the hash of node-versions.env, so a cache built before the
# node existed (or for other add-on versions) builds just the node's programs.
# shellcheck source=node-versions.env
source "$here/node-versions.env"
node_key=$(sha256sum <"$here/node-versions.env" | cut -c1-12)
PROGRAMS=(etcd kwok helm kubernetes "node-$node_key" "coredns-$node_key" "metrics_server-$node_key" "pause-$node_key")

# built: whether every program is built.
built() {
  local name
  for name in "${PROGRAMS[@]}"; do
    [ -e "$prefix/.built-$name" ] || return 1
  done
}

# build_all: every program, each in a subshell so that a failure names the program; -s -w drop the
# symbol tables (link-time only, so Go's build cache is still shared with other builds of the same code).
build_all() {
  local name start
  mkdir -p "$bin"
  for name in "${PROGRAMS[@]}"; do
    if [ -e "$prefix/.built-$name" ]; then
      continue
    fi
    start=$(date +%s)
    echo "control-plane: building $name" >&2
    if ! (ldflags="-s -w" && "build_${name%-"$node_key"}"); then
      echo "control-plane: building $name failed" >&2
      return 1
    fi
    touch "$prefix/.built-$name"
    echo "control-plane: built $name in $(($(date +%s) - start)) s" >&2
  done
}
