#!/usr/bin/env bash
# End-to-end suite on docker compose (called by `make e2e`):
#   1. build the images offline (scripts/images.sh);
#   2. bring the stack up as project leaderd-e2e;
#   3. go test -tags e2e -count=1 -v ./e2e/... (bounded by E2E_TIMEOUT);
#   4. ALWAYS tear it down (containers, networks, volumes): on success,
#      failure, Ctrl-C or SIGTERM. On failure the stack's logs are printed
#      first.
#
# Environment: E2E_TIMEOUT (go test -timeout, default 10m), E2E_RUN (go test
# -run), COMPOSE_CMD (force "docker compose" or "docker-compose"),
# E2E_REQUIRE_DOCKER=1 (fail instead of skipping when no Docker engine
# answers), and the variables of scripts/images.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

E2E_TIMEOUT=${E2E_TIMEOUT:-10m}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-leaderd-e2e}
export PATH="$PATH:/usr/local/go/bin"

die() { echo "e2e.sh: $*" >&2; exit 1; }

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
	[ "${E2E_REQUIRE_DOCKER:-0}" = 1 ] && die "no Docker engine answers (docker info failed)"
	echo "e2e.sh: SKIP: no Docker engine answers (docker info failed); set E2E_REQUIRE_DOCKER=1 to fail instead" >&2
	exit 0
fi

# The images need a static busybox: scripts/images.sh fetches Debian's
# busybox-static with `apt-get download` (running apt-get update first if
# needed) when neither it nor $BUSYBOX is there; nothing is installed.
command -v go >/dev/null || die "go is not installed"

if [ -z "${COMPOSE_CMD:-}" ]; then
	if docker compose version >/dev/null 2>&1; then
		COMPOSE_CMD="docker compose"
	elif command -v docker-compose >/dev/null 2>&1; then
		COMPOSE_CMD=docker-compose
	else
		die "neither 'docker compose' nor 'docker-compose' is installed"
	fi
fi
export COMPOSE_CMD
compose() { scripts/compose.sh "$@"; }

start=$SECONDS
step() { printf '== [%3ds] %s\n' $((SECONDS - start)) "$*"; }

step "images"
scripts/images.sh

# Compile the suite before the stack starts, so that timing checks measured
# from the containers' start are not eaten by the compiler.
step "compile the e2e suite"
go test -tags e2e -count=1 -run '^$' ./e2e/... >/dev/null

torn_down=0
teardown() {
	local rc=$?
	trap - EXIT INT TERM
	[ "$torn_down" = 1 ] && return
	torn_down=1
	if [ "$rc" != 0 ]; then
		echo "== stack state at failure (rc $rc)"
		timeout 30 scripts/compose.sh ps || true
		timeout 30 scripts/compose.sh logs --no-color --tail 80 || true
	fi
	step "teardown: down -v --remove-orphans ($COMPOSE_CMD, project $COMPOSE_PROJECT_NAME)"
	# Bounded: a wedged engine must not hang CI. Paused containers cannot be
	# stopped: unpause whatever a test left paused first.
	local paused
	paused=$(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter status=paused || true)
	[ -z "$paused" ] || docker unpause $paused >/dev/null || true
	timeout 120 scripts/compose.sh down -v --remove-orphans --timeout 5 || echo "e2e.sh: teardown failed; run: COMPOSE_PROJECT_NAME=$COMPOSE_PROJECT_NAME scripts/compose.sh down -v --remove-orphans" >&2
	step "done (rc $rc)"
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "compose up ($COMPOSE_CMD, project $COMPOSE_PROJECT_NAME)"
if ! compose up -d; then
	die "compose up failed (ports 8081-8083, 18001-18003, 12379/22379/32379 busy? is 'make compose-up' running? then: make compose-down)"
fi

step "go test -tags e2e (timeout $E2E_TIMEOUT)"
go test -tags e2e -count=1 -v -timeout "$E2E_TIMEOUT" ${E2E_RUN:+-run "$E2E_RUN"} ./e2e/...
