#!/bin/sh
# Scheduled pgBackRest backups for the compose stack (the `backup` service), as user postgres.
#   backup.sh init        stanza-create (idempotent), check, a first full backup if there is none
#   backup.sh full|diff   one backup of that type (crontab), then expire by the retention settings
# After each run it rewrites /var/lib/esp-backup-info/info.json (`pgbackrest info --output=json`),
# which esp-ingest reads as BACKUP_INFO_FILE (metric esp_ingest_backup_newest_timestamp_seconds).
set -eu
STANZA=esp
INFO_DIR=/var/lib/esp-backup-info

write_info() {
	pgbackrest --stanza="$STANZA" info --output=json >"$INFO_DIR/info.json.tmp"
	chmod 0644 "$INFO_DIR/info.json.tmp"
	mv "$INFO_DIR/info.json.tmp" "$INFO_DIR/info.json"
}

case "${1:-}" in
init)
	pgbackrest --stanza="$STANZA" stanza-create
	pgbackrest --stanza="$STANZA" check
	if ! pgbackrest --stanza="$STANZA" info --output=json | grep -q '"label"'; then
		pgbackrest --stanza="$STANZA" --type=full backup
	fi
	write_info
	;;
full | diff | incr)
	pgbackrest --stanza="$STANZA" --type="$1" backup
	write_info
	;;
*)
	echo "usage: backup.sh init|full|diff|incr" >&2
	exit 2
	;;
esac
