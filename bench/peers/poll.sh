#!/bin/sh
# What users run today (REFERENCE.md §3), as they write it in a sidecar: every PERIOD seconds,
# checksum the mounted files, and when the sums differ send SIGHUP to every process named NAME.
#   poll.sh PERIOD DIR NAME
period=$1 dir=$2 name=$3
old=$(md5sum "$dir"/* 2>/dev/null)
echo "ready" >&2
while sleep "$period"; do
	new=$(md5sum "$dir"/* 2>/dev/null)
	if [ "$new" != "$old" ]; then
		old=$new
		kill -HUP $(pgrep -x "$name")
	fi
done
