#!/usr/bin/env bash
# Runs docker compose on this repository's docker-compose.yml with either
# `docker compose` (v2 plugin) or `docker-compose` (v1.29), whichever is
# installed, and a fixed project name, so containers are found again:
#
#   scripts/compose.sh up -d
#   scripts/compose.sh ps
#   scripts/compose.sh down -v --remove-orphans
#
# COMPOSE_PROJECT_NAME: project (default leaderd; `make e2e` uses leaderd-e2e).
# COMPOSE_CMD: force the command, e.g. COMPOSE_CMD=docker-compose.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${COMPOSE_CMD:-}" ]; then
	if docker compose version >/dev/null 2>&1; then
		COMPOSE_CMD="docker compose"
	elif command -v docker-compose >/dev/null 2>&1; then
		COMPOSE_CMD=docker-compose
	else
		echo "compose.sh: neither 'docker compose' nor 'docker-compose' is installed" >&2
		exit 1
	fi
fi
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-leaderd}
# shellcheck disable=SC2086 # COMPOSE_CMD may be two words
exec $COMPOSE_CMD -f docker-compose.yml "$@"
