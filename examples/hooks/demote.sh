#!/bin/sh
# leaderd demote hook: runs when this replica stops being primary (lease lost,
# etcd unreachable, shutdown, ...) and once at start-up, so an app left
# primary by a crash is brought back to standby. E.g.
#   leaderd run --election db --on-demote /etc/leaderd/demote.sh
# Copy it and replace the APP_URL call with what demotes your app (stop
# accepting writes, stop the singleton job, release the VIP, ...).
#
# Contract: exit 0 = demoted. Keep it fast: it must end within
# --demote-timeout (default 5s), budgeted against the etcd lease, after which
# leaderd kills the hook's whole process group. A failed demote is retried and
# the replica does not campaign until one succeeds.
set -eu

# Optional timeline for `leaderd demo` and the end-to-end tests: one line per
# event, appended in a single write so replicas sharing the file do not
# interleave. The fencing token is empty at start-up; it is written as "-" to
# keep the columns.
timeline() {
	[ -n "${HOOK_TIMELINE:-}" ] || return 0
	# busybox's date has no %N and prints it literally: fall back to whole
	# seconds in nanoseconds, so the line still parses.
	now=$(date +%s%N)
	case $now in *N) now="${now%\%N}000000000" ;; esac
	echo "$now $LEADERD_EVENT-$1 $LEADERD_ID ${LEADERD_FENCING_TOKEN:--} $LEADERD_REASON" >>"$HOOK_TIMELINE"
}

timeline start
# stderr goes to leaderd's log (as a warning), tagged with the hook's name.
echo "demote: event=$LEADERD_EVENT role=$LEADERD_ROLE previous_role=$LEADERD_PREVIOUS_ROLE reason=$LEADERD_REASON id=$LEADERD_ID election=$LEADERD_ELECTION leader=$LEADERD_LEADER fencing_token=$LEADERD_FENCING_TOKEN lease_id=$LEADERD_LEASE_ID" >&2

# This is how the docker compose demo app is switched to standby. The token
# names the tenure that ends (empty at start-up).
if [ -n "${APP_URL:-}" ]; then
	wget -q -O- --post-data "" "$APP_URL/demote?token=$LEADERD_FENCING_TOKEN"
fi

timeline end
