#!/bin/sh
# What users run today (REFERENCE.md §3), as they write it in a sidecar: watch the mounted
# directory with inotifywait and send SIGHUP to every process named NAME on each event.
#   inotify.sh DIR NAME
dir=$1 name=$2
inotifywait -m -e modify,create,delete,move "$dir" |
while read -r path events file; do
	pkill -HUP -x "$name"
done
