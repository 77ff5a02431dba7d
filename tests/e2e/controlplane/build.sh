#!/usr/bin/env bash
# Build the binaries the e2e tests run, compiled from the Go modules pinned in
# ./etcd/go.mod and ./kube/go.mod: etcd, kube-apiserver and kubectl (the
# control plane), kube-controller-manager, kube-scheduler and kubelet (the
# node), and `pause` (the sandbox binary of the pause image, from pause.c in
# the same k8s.io/kubernetes module, with `gcc -static`).
#
#   build.sh [name ...]    the names to have (default: all of them)
#
# Output: <cache>/<k8s-version>-<etcd-version>/<name>, where <cache> is
# $CONTROLPLANE_CACHE or <repo>/.cache/controlplane. A binary already there is
# not built again; each one lands in the folder by an atomic rename once built.
#
# Needs Go (and network access to the Go module proxy on the first run), and
# gcc with a static libc for `pause`. The last line on stdout is the folder
# holding the binaries; progress and timings go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${CONTROLPLANE_CACHE:-$repo/.cache/controlplane}"

# The version a go.mod requires of a module ("require <mod> <ver>", single line
# or inside a require block).
modversion() {
    awk -v mod="$2" '$1 == mod && $2 ~ /^v/ { print $2; exit }
                     $1 == "require" && $2 == mod { print $3; exit }' "$1"
}

k8s_version="$(modversion "$here/kube/go.mod" k8s.io/kubernetes)"
etcd_version="$(modversion "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
if [[ -z "$k8s_version" || -z "$etcd_version" ]]; then
    echo "build.sh: cannot read the pinned versions from $here/{kube,etcd}/go.mod" >&2
    exit 2
fi
out="$cache/${k8s_version}-${etcd_version}"
all=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy pause)
if (($#)); then
    bins=("$@")
else
    bins=("${all[@]}")
fi
for b in "${bins[@]}"; do
    [[ " ${all[*]} " == *" $b "* ]] || { echo "build.sh: unknown binary '$b' (known: ${all[*]})" >&2; exit 2; }
done

complete() {
    local b
    for b in "${bins[@]}"; do
        [[ -x "$1/$b" ]] || return 1
    done
}

if complete "$out"; then
    echo "build.sh: cached: $out" >&2
    echo "$out"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    wanted="$(awk '$1 == "go" {print $2}' "$here/kube/go.mod")"
    echo "build.sh: 'go' is not on PATH; install Go $wanted or newer" >&2
    exit 3
fi

mkdir -p "$cache"
# One build at a time per cache (parallel pytest sessions, a bench run ...).
exec 9>"$cache/.build.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if complete "$out"; then  # somebody else built it while we waited
    echo "$out"
    exit 0
fi

mkdir -p "$out"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export CGO_ENABLED="${CGO_ENABLED:-0}"

# What `kubectl version` and the apiserver's /version report; the release
# build sets the same variables (hack/lib/version.sh in kubernetes).
minor="${k8s_version#v*.}"
minor="${minor%%.*}"
major="${k8s_version#v}"
major="${major%%.*}"
xflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    xflags+=" -X $pkg.gitVersion=$k8s_version"
    xflags+=" -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    xflags+=" -X $pkg.gitTreeState=clean"
done

build() {  # <module dir> <binary name> <package> [extra ldflags]
    local start=$SECONDS
    [[ -x "$out/$2" ]] && return 0
    echo "build.sh: go build $3 ($2)" >&2
    (cd "$here/$1" && go build -ldflags="-s -w ${4:-}" -o "$tmp/$2" "$3")
    mv "$tmp/$2" "$out/$2"
    echo "build.sh: built $2 in $((SECONDS - start))s" >&2
}

# The pause image's only binary: a static C program that sleeps until a signal.
build_pause() {
    [[ -x "$out/pause" ]] && return 0
    local src
    src="$(cd "$here/kube" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    echo "build.sh: gcc -static $src (pause)" >&2
    gcc -Os -Wall -Werror -static -DVERSION="$k8s_version" -o "$tmp/pause" "$src"
    strip "$tmp/pause"
    mv "$tmp/pause" "$out/pause"
    echo "build.sh: built pause" >&2
}

total=$SECONDS
for b in "${bins[@]}"; do
    case "$b" in
        etcd) build etcd etcd go.etcd.io/etcd/server/v3 ;;
        pause) build_pause ;;
        *) build kube "$b" "k8s.io/kubernetes/cmd/$b" "$xflags" ;;
    esac
done
chmod 755 "$out"
echo "build.sh: $out has ${bins[*]} ($((SECONDS - total))s)" >&2
echo "$out"
