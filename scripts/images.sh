#!/usr/bin/env bash
# Builds the docker compose demo's images without any image registry:
#
#   1. static Go binaries on the host: leaderd (-tags nodemo: without the
#      embedded etcd of `leaderd demo`; grpcnotrace: without gRPC's unused
#      request tracing, as `make build`), demo-app, and etcd (from
#      go.etcd.io/etcd/server/v3, the version in go.mod), into a private
#      build context laid out like the repository (bin/..., examples/hooks),
#      so a concurrent `make clean` cannot break the build;
#   2. unless BASE_IMAGE says otherwise, the base image leaderd-base:local,
#      a `docker import` of Debian's busybox-static (/bin/sh, wget, ...);
#   3. the images leaderd:local, leaderd-demo-app:local, leaderd-etcd:local
#      FROM that base.
#
# Idempotent: re-running rebuilds only what changed (the base image is
# re-imported only when its busybox version or recipe changes).
#
# Environment:
#   BASE_IMAGE     base of all three images (default leaderd-base:local,
#                  made here offline; e.g. BASE_IMAGE=busybox:1.36 to use
#                  the public image where a registry is reachable)
#   LEADERD_IMAGE  APP_IMAGE  ETCD_IMAGE   image names to build
#   BUSYBOX        path of a static busybox to use instead of the
#                  busybox-static Debian package
#   LEADERD_CACHE_DIR  where the downloaded package is kept (default
#                  ${XDG_CACHE_HOME:-~/.cache}/leaderd)
#   GO             go command (default go)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${BASE_IMAGE:-leaderd-base:local}
LEADERD_IMAGE=${LEADERD_IMAGE:-leaderd:local}
APP_IMAGE=${APP_IMAGE:-leaderd-demo-app:local}
ETCD_IMAGE=${ETCD_IMAGE:-leaderd-etcd:local}
GO=${GO:-go}
LOCAL_BASE=leaderd-base:local
# Bump when the root filesystem recipe below changes, to force a re-import.
BASE_RECIPE=1
CACHE=${LEADERD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leaderd}

die() { echo "images.sh: $*" >&2; exit 1; }
step() { echo "== $*"; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start it or set DOCKER_HOST"
command -v "$GO" >/dev/null || die "$GO is not installed (Go is needed to build the binaries)"

# --- 1. binaries -----------------------------------------------------------
stage=$(mktemp -d) # the build context; removed by the EXIT trap
rootfs_tmp=        # set by make_base
trap 'rm -rf "$stage" ${rootfs_tmp:+"$rootfs_tmp"}' EXIT
mkdir -p "$stage/bin" "$stage/examples/hooks"
cp -p examples/hooks/promote.sh examples/hooks/demote.sh "$stage/examples/hooks/"

step "binaries (static, CGO_ENABLED=0)"
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
export CGO_ENABLED=0
"$GO" build -tags nodemo,grpcnotrace -trimpath -ldflags "-s -w -X main.version=$version" -o "$stage/bin/leaderd" ./cmd/leaderd
"$GO" build -trimpath -ldflags "-s -w" -o "$stage/bin/demo-app" ./examples/app

# etcd is its own module (examples/compose/etcd/go.mod) so that etcdmain's
# extra dependencies (cobra, ...) stay out of leaderd's module graph; it must
# pin the same etcd server version as leaderd.
want=$("$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
got=$(cd examples/compose/etcd && "$GO" list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
[ "$want" = "$got" ] || die "examples/compose/etcd/go.mod has go.etcd.io/etcd/server/v3 $got but go.mod has $want; run: (cd examples/compose/etcd && go get go.etcd.io/etcd/server/v3@$want && go mod tidy)"
(cd examples/compose/etcd && "$GO" build -trimpath -ldflags "-s -w" -o "$stage/bin/etcd" .)

# --- 2. base image ---------------------------------------------------------
# busybox_binary prints the path of a static busybox: $BUSYBOX, the
# installed busybox-static package, or the package downloaded into $CACHE.
busybox_binary() {
	if [ -n "${BUSYBOX:-}" ]; then
		[ -x "$BUSYBOX" ] || die "BUSYBOX=$BUSYBOX is not an executable"
		echo "$BUSYBOX"
		return
	fi
	if [ "$(dpkg-query -W -f '${Status}' busybox-static 2>/dev/null)" = "install ok installed" ]; then
		echo /bin/busybox
		return
	fi
	command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "no busybox-static: install Debian's busybox-static, or set BUSYBOX to a static busybox, or BASE_IMAGE=busybox:1.36"
	local deb debs
	debs=("$CACHE"/busybox-static_*.deb)
	deb=${debs[0]}
	if [ ! -f "$deb" ]; then
		mkdir -p "$CACHE"
		if ! (cd "$CACHE" && apt-get download busybox-static >/dev/null 2>&1); then
			[ "$(id -u)" = 0 ] || die "apt-get download busybox-static failed; run 'apt-get update' as root, or set BUSYBOX"
			echo "apt-get update (package lists missing?)" >&2
			apt-get update -qq >/dev/null || die "apt-get update failed"
			(cd "$CACHE" && apt-get download busybox-static >/dev/null 2>&1) || die "apt-get download busybox-static failed"
		fi
		debs=("$CACHE"/busybox-static_*.deb)
		deb=${debs[0]}
		[ -f "$deb" ] || die "apt-get download left no busybox-static_*.deb in $CACHE"
	fi
	rm -rf "$CACHE/busybox-static"
	dpkg-deb -x "$deb" "$CACHE/busybox-static" || die "cannot unpack $deb"
	echo "$CACHE/busybox-static/bin/busybox"
}

make_base() {
	local bb version label have root
	bb=$(busybox_binary)
	# sed reads all of the help (head would SIGPIPE busybox under pipefail).
	version=$("$bb" --help 2>&1 | sed -n '1s/ multi-call binary.*//p')
	[ -n "$version" ] || die "$bb does not run"
	label="$version recipe $BASE_RECIPE"
	have=$(docker image inspect -f '{{index .Config.Labels "org.leaderd.base"}}' "$LOCAL_BASE" 2>/dev/null || true)
	if [ "$have" = "$label" ]; then
		echo "$LOCAL_BASE is up to date ($label)"
		return
	fi
	step "base image $LOCAL_BASE from $bb ($version)"
	root=$(mktemp -d)
	rootfs_tmp=$root # removed by the EXIT trap
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/tmp}
	chmod 1777 "$root/tmp" "$root/var/tmp"
	install -m 0755 "$bb" "$root/bin/busybox"
	# One symlink per applet, where busybox itself would install it.
	"$bb" --list-full | while read -r applet; do
		[ "$applet" = bin/busybox ] || [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
	done
	[ -L "$root/bin/sh" ] && [ -L "$root/usr/bin/wget" ] || die "$bb lacks sh or wget"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
		docker import \
			--change 'CMD ["/bin/sh"]' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change "LABEL org.leaderd.base=\"$label\"" \
			- "$LOCAL_BASE" >/dev/null
}

if [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
	make_base
fi

# --- 3. images ---------------------------------------------------------------
build() { # image dockerfile
	step "image $1 ($2, FROM $BASE_IMAGE)"
	local out old new
	old=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true)
	if ! out=$(docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$2" -t "$1" "$stage" 2>&1); then
		echo "$out" >&2
		die "docker build of $1 failed"
	fi
	# Drop the image this one replaced, unless a container still uses it.
	new=$(docker image inspect -f '{{.Id}}' "$1")
	if [ -n "$old" ] && [ "$old" != "$new" ]; then
		docker image rm "$old" >/dev/null 2>&1 || true
	fi
}
build "$LEADERD_IMAGE" Dockerfile
build "$APP_IMAGE" examples/app/Dockerfile
build "$ETCD_IMAGE" examples/compose/etcd/Dockerfile

step "sizes"
for image in "$LEADERD_IMAGE" "$APP_IMAGE" "$ETCD_IMAGE"; do
	docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' "$image"
done
