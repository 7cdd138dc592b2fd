#!/bin/sh
# leaderd promote hook: runs when this replica becomes primary, e.g.
#   leaderd run --election db --on-promote /etc/leaderd/promote.sh
# Copy it and replace the APP_URL call with what promotes your app
# (pg_ctl promote, start the singleton job, claim the VIP, ...).
#
# Contract: exit 0 = promoted. Anything else (or running past
# --promote-timeout, when leaderd kills the hook's whole process group) makes
# leaderd demote, resign and campaign again. Do not leave daemons behind with
# `&`: leaderd kills the rest of the process group when the script ends.
set -eu

# Optional timeline for `leaderd demo` and the end-to-end tests: one line per
# event, appended in a single write so replicas sharing the file do not
# interleave. Nanosecond stamps order the tenures; an empty fencing token
# (never the case for promote) is written as "-" to keep the columns.
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
echo "promote: event=$LEADERD_EVENT role=$LEADERD_ROLE previous_role=$LEADERD_PREVIOUS_ROLE reason=$LEADERD_REASON id=$LEADERD_ID election=$LEADERD_ELECTION leader=$LEADERD_LEADER fencing_token=$LEADERD_FENCING_TOKEN lease_id=$LEADERD_LEASE_ID" >&2

# This is how the docker compose demo app is switched to primary. The fencing
# token lets the app reject writes stamped by an older (stale) primary.
if [ -n "${APP_URL:-}" ]; then
	wget -q -O- --post-data "" "$APP_URL/promote?token=$LEADERD_FENCING_TOKEN"
fi

timeline end
