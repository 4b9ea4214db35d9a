#!/usr/bin/env bash
# Provision a private PostgreSQL 15 cluster with TimescaleDB (Apache-2 edition)
# for esp-ingest, without touching the machine's own PostgreSQL server (5432).
#
#   scripts/timescaledb.sh [start]   build/install TimescaleDB if needed, initdb if
#                                    needed, start if not running (restart if
#                                    running without track_commit_timestamp),
#                                    ensure role `root`, database `esp` and the
#                                    extension; the last stdout line is the
#                                    connection URL
#   scripts/timescaledb.sh stop      pg_ctl stop -m fast (no-op if not running)
#   scripts/timescaledb.sh status    exit 0 if the private cluster is running
#   scripts/timescaledb.sh url       print the connection URL
#
# Environment (all optional):
#   ESP_PGDATA                data dir        (default /var/tmp/esp-ingest/pgdata)
#   ESP_PGPORT                TCP port        (default 55432, on 127.0.0.1 only)
#   ESP_WORKDIR               build dir/logs  (default /var/tmp/esp-ingest)
#   ESP_TIMESCALEDB_VERSION   upstream version expected (default 2.19.3)
#   ESP_DEBIAN_MIRROR         Debian archive URI for the trixie deb-src line
#                             (default: the bookworm archive apt already uses)
#
# Debian 12 ships no TimescaleDB package, so on first use this builds Debian
# trixie's source package against the installed PostgreSQL 15, using server
# headers unpacked privately from postgresql-server-dev-15's .deb (installing
# that package would pull clang/llvm and could upgrade the running server).
# The trixie deb-src line lives in a private apt list: the system's apt config
# is left as it is. Progress goes to stderr, build output to the build log.
set -Eeuo pipefail

PG_MAJOR=15
TSDB_VERSION="${ESP_TIMESCALEDB_VERSION:-2.19.3}"
WORKDIR="${ESP_WORKDIR:-/var/tmp/esp-ingest}"
PGDATA_DIR="${ESP_PGDATA:-$WORKDIR/pgdata}"
PGPORT_NUM="${ESP_PGPORT:-55432}"
DB_NAME=esp

case "$WORKDIR" in /*) ;; *) WORKDIR="$PWD/$WORKDIR" ;; esac
case "$PGDATA_DIR" in /*) ;; *) PGDATA_DIR="$PWD/$PGDATA_DIR" ;; esac
PGDATA_DIR="${PGDATA_DIR%/}"

PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
PG_PKGLIBDIR="/usr/lib/postgresql/$PG_MAJOR/lib"
PG_EXTDIR="/usr/share/postgresql/$PG_MAJOR/extension"
RUN_DIR="$(dirname "$PGDATA_DIR")"
SOCK_DIR="$RUN_DIR/sock"
PG_LOG="$RUN_DIR/postgres.log"
BUILD_DIR="$WORKDIR/timescaledb-build"
BUILD_LOG="$WORKDIR/timescaledb-build.log"
LOCK_FILE="$WORKDIR/timescaledb.lock"
PG_OWNER=postgres

say() { printf '[timescaledb.sh] %s\n' "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}
trap 'rc=$?; ((BASH_SUBSHELL)) || say "ERROR: command failed (exit $rc) at line $LINENO: $BASH_COMMAND"; exit $rc' ERR

url() { printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$PGPORT_NUM" "$DB_NAME"; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# Run a command as the cluster owner (initdb and postgres refuse to run as root),
# without the lock's fd 9: a postmaster inheriting it would hold the lock forever.
as_owner() {
	if is_root; then
		(cd / && exec runuser -u "$PG_OWNER" -- "$@") 9>&-
	else
		(cd / && exec "$@") 9>&-
	fi
}

# Run a build step with its output appended to the build log; on failure show
# the tail of the log and stop.
run_logged() {
	printf '\n+ %s\n' "$*" >>"$BUILD_LOG"
	"$@" >>"$BUILD_LOG" 2>&1 || {
		local rc=$?
		say "ERROR: '$*' failed (exit $rc); last lines of $BUILD_LOG:"
		tail -n 30 "$BUILD_LOG" | sed 's/^/    /' >&2
		exit "$rc"
	}
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- build ----

extension_installed() {
	local ctl="$PG_EXTDIR/timescaledb.control"
	[[ -f "$ctl" ]] &&
		grep -qF "default_version = '$TSDB_VERSION'" "$ctl" &&
		[[ -f "$PG_PKGLIBDIR/timescaledb.so" ]] &&
		[[ -f "$PG_PKGLIBDIR/timescaledb-$TSDB_VERSION.so" ]] &&
		[[ -f "$PG_EXTDIR/timescaledb--$TSDB_VERSION.sql" ]]
}

ensure_build_deps() {
	local -a need=()
	have cmake || need+=(cmake)
	have make || need+=(make)
	have gcc || need+=(gcc)
	[[ -f /usr/include/stdio.h ]] || need+=(libc6-dev)
	have dpkg-source || need+=(dpkg-dev)
	have patch || need+=(patch)
	have xz || need+=(xz-utils)
	[[ -f /usr/include/openssl/ssl.h ]] || need+=(libssl-dev)
	[[ -f /usr/include/postgresql/pg_config.h ]] || need+=(libpq-dev)
	[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
	((${#need[@]})) || return 0

	say "installing build dependencies: ${need[*]}"
	local sim
	sim=$(apt-get -s install -y --no-install-recommends "${need[@]}" 2>&1) ||
		die "apt-get cannot install ${need[*]}: $(tail -n 3 <<<"$sim")"
	# Never let a build dependency upgrade or add PostgreSQL server packages.
	if grep -E '^Inst (postgresql-[0-9]+ |postgresql-server-dev|clang|llvm)' <<<"$sim" >&2; then
		die "refusing to install ${need[*]}: it would install/upgrade the PostgreSQL server packages shown above"
	fi
	run_logged env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
}

# The bookworm archive URI apt already uses (so the script names no mirror).
# shellcheck disable=SC2016,SC1091 # '$(REPO_URI)' is apt's format syntax, not bash's
debian_mirror() {
	if [[ -n "${ESP_DEBIAN_MIRROR:-}" ]]; then
		printf '%s\n' "${ESP_DEBIAN_MIRROR%/}"
		return
	fi
	local codename uri
	codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-bookworm}")
	uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
		awk -v c="$codename" '$2 == c && $1 ~ /\/debian\/?$/ && !r { r = $1 } END { print r }')
	if [[ -z "$uri" ]]; then
		uri=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null |
			awk '$1 ~ /\/debian\/?$/ && !r { r = $1 } END { print r }')
	fi
	[[ -n "$uri" ]] || die "cannot find the Debian archive in apt's sources; set ESP_DEBIAN_MIRROR"
	printf '%s\n' "${uri%/}"
}

# Headers of the installed server, from postgresql-server-dev-15's .deb,
# unpacked privately (never installed).
fetch_server_headers() {
	local ver
	ver=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null) || ver=
	say "downloading postgresql-server-dev-$PG_MAJOR${ver:+ $ver} (unpacked privately, not installed)"
	mkdir -p "$BUILD_DIR/deb" "$BUILD_DIR/pgdev"
	if ! { [[ -n "$ver" ]] && (cd "$BUILD_DIR/deb" &&
		apt-get -o APT::Sandbox::User=root download "postgresql-server-dev-$PG_MAJOR=$ver" >>"$BUILD_LOG" 2>&1); }; then
		say "  version $ver not downloadable; using apt's candidate (same major, ABI-compatible)"
		(cd "$BUILD_DIR/deb" && run_logged apt-get -o APT::Sandbox::User=root download "postgresql-server-dev-$PG_MAJOR")
	fi
	local deb
	local -a debs=("$BUILD_DIR"/deb/postgresql-server-dev-"$PG_MAJOR"_*.deb)
	deb=${debs[0]}
	[[ -f "$deb" ]] || die "apt-get download left no postgresql-server-dev-$PG_MAJOR .deb"
	run_logged dpkg-deb -x "$deb" "$BUILD_DIR/pgdev"
	PG_INCLUDEDIR_SERVER="$BUILD_DIR/pgdev/usr/include/postgresql/$PG_MAJOR/server"
	[[ -f "$PG_INCLUDEDIR_SERVER/postgres.h" ]] || die "no postgres.h in $deb"
}

# Debian trixie's source package, via a private apt list/state dir.
fetch_source() {
	local mirror apt_dir
	mirror=$(debian_mirror)
	apt_dir="$BUILD_DIR/apt"
	mkdir -p "$apt_dir/lists/partial" "$BUILD_DIR/src"
	printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' \
		"$mirror" >"$apt_dir/sources.list"
	local -a apt_private=(
		-o "Dir::Etc::sourcelist=$apt_dir/sources.list"
		-o "Dir::Etc::sourceparts=-"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache::pkgcache="
		-o "Dir::Cache::srcpkgcache="
		-o "APT::Sandbox::User=root"
	)
	say "fetching Debian trixie source package timescaledb $TSDB_VERSION (private apt list)"
	run_logged apt-get "${apt_private[@]}" update
	local srcver
	srcver=$(apt-cache "${apt_private[@]}" showsrc timescaledb 2>/dev/null |
		awk -v v="$TSDB_VERSION" '$1 == "Version:" && index($2, v "+") == 1 && !r { r = $2 } END { print r }')
	[[ -n "$srcver" ]] ||
		die "trixie has no timescaledb source for upstream $TSDB_VERSION (has: $(apt-cache "${apt_private[@]}" showsrc timescaledb 2>/dev/null | awk '$1 == "Version:" { printf "%s ", $2 }')); set ESP_TIMESCALEDB_VERSION"
	(cd "$BUILD_DIR/src" && run_logged apt-get "${apt_private[@]}" source --download-only "timescaledb=$srcver")
	local dsc
	local -a dscs=("$BUILD_DIR"/src/timescaledb_*.dsc)
	dsc=${dscs[0]}
	[[ -f "$dsc" ]] || die "apt-get source left no timescaledb .dsc"
	run_logged dpkg-source -x "$dsc" "$BUILD_DIR/src/timescaledb"
	grep -qE "^version *= *$TSDB_VERSION\$" "$BUILD_DIR/src/timescaledb/version.config" ||
		die "source $dsc is not TimescaleDB $TSDB_VERSION"
}

compile_and_install() {
	local src="$BUILD_DIR/src/timescaledb" bld="$BUILD_DIR/src/timescaledb/build"
	local stage="$BUILD_DIR/stage"
	say "compiling (cmake + make -j$(nproc))"
	run_logged cmake -S "$src" -B "$bld" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DPG_CONFIG="$PG_BIN/pg_config" \
		-DPG_INCLUDEDIR_SERVER="$PG_INCLUDEDIR_SERVER" \
		-DPG_PKGLIBDIR="$PG_PKGLIBDIR" \
		-DPG_SHAREDIR="/usr/share/postgresql/$PG_MAJOR" \
		-DAPACHE_ONLY=ON \
		-DREGRESS_CHECKS=OFF \
		-DTAP_CHECKS=OFF \
		-DWARNINGS_AS_ERRORS=OFF \
		-DSEND_TELEMETRY_DEFAULT=OFF \
		-DGENERATE_DOWNGRADE_SCRIPT=OFF
	run_logged make -C "$bld" -j"$(nproc)"
	run_logged make -C "$bld" install DESTDIR="$stage"

	local f
	for f in "$stage$PG_PKGLIBDIR/timescaledb.so" "$stage$PG_PKGLIBDIR/timescaledb-$TSDB_VERSION.so" \
		"$stage$PG_EXTDIR/timescaledb.control" "$stage$PG_EXTDIR/timescaledb--$TSDB_VERSION.sql"; do
		[[ -f "$f" ]] || die "build did not produce ${f#"$stage"}"
	done
	say "installing into $PG_PKGLIBDIR and $PG_EXTDIR"
	# `install` unlinks before writing, so a running backend's mapped .so stays
	# intact; the control file goes last, as it is what marks "installed".
	install -m 0755 "$stage$PG_PKGLIBDIR"/timescaledb*.so "$PG_PKGLIBDIR/"
	install -m 0644 "$stage$PG_EXTDIR"/timescaledb--*.sql "$PG_EXTDIR/"
	install -m 0644 "$stage$PG_EXTDIR/timescaledb.control" "$PG_EXTDIR/"
}

REBUILT=0
# Not called from an `if`: bash would then ignore `set -e` inside it.
build_extension() {
	if extension_installed; then return 0; fi
	is_root || die "TimescaleDB $TSDB_VERSION is not installed for PostgreSQL $PG_MAJOR; installing it needs root (run this script once as root)"
	[[ -x "$PG_BIN/pg_config" ]] || die "$PG_BIN/pg_config not found (postgresql-client-$PG_MAJOR missing?)"
	local t0=$SECONDS
	mkdir -p "$WORKDIR"
	: >"$BUILD_LOG"
	say "TimescaleDB $TSDB_VERSION not installed for PostgreSQL $PG_MAJOR: building it (log: $BUILD_LOG)"
	rm -rf "$BUILD_DIR"
	mkdir -p "$BUILD_DIR"
	say "apt-get update"
	run_logged apt-get update
	ensure_build_deps
	fetch_server_headers
	fetch_source
	compile_and_install
	extension_installed || die "installed files do not look like TimescaleDB $TSDB_VERSION"
	rm -rf "$BUILD_DIR"
	REBUILT=1
	say "TimescaleDB $TSDB_VERSION built and installed in $((SECONDS - t0)) s"
}

# -------------------------------------------------------------- cluster ----

# Ask pg_ctl, after dropping a postmaster.pid whose PID is dead or is not a
# postmaster of this data dir (left by a crash, or a machine restart where
# the PID now belongs to another process).
cluster_running() {
	[[ -f "$PGDATA_DIR/PG_VERSION" ]] || return 1
	local pidfile="$PGDATA_DIR/postmaster.pid" pid
	if [[ -f "$pidfile" ]]; then
		pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
		if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -e "/proc/$pid" ]] &&
			[[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f "$PGDATA_DIR")" ]]; then
			:
		else
			say "removing stale $pidfile (PID ${pid:-?} is not its postmaster)"
			rm -f "$pidfile" "$SOCK_DIR/.s.PGSQL.$PGPORT_NUM.lock"
			return 1
		fi
	fi
	as_owner "$PG_BIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

# Create a directory owned by the cluster owner.
owned_dir() {
	local dir=$1 mode=$2
	mkdir -p "$dir"
	if is_root; then chown "$PG_OWNER:$PG_OWNER" "$dir"; fi
	chmod "$mode" "$dir"
}

prepare_dirs() {
	[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/postgres" ]] ||
		die "PostgreSQL $PG_MAJOR server binaries not found in $PG_BIN (package postgresql-$PG_MAJOR)"
	if is_root; then
		id -u "$PG_OWNER" >/dev/null 2>&1 || die "user $PG_OWNER does not exist"
	fi
	mkdir -p "$RUN_DIR"
	owned_dir "$PGDATA_DIR" 0700
	owned_dir "$SOCK_DIR" 0755
	touch "$PG_LOG"
	if is_root; then chown "$PG_OWNER:$PG_OWNER" "$PG_LOG"; fi
	as_owner test -w "$PGDATA_DIR" -a -w "$SOCK_DIR" -a -w "$PG_LOG" ||
		die "$PG_OWNER cannot write $PGDATA_DIR, $SOCK_DIR or $PG_LOG (is a parent directory private?)"
}

init_cluster() {
	if [[ -f "$PGDATA_DIR/PG_VERSION" ]]; then
		local v
		v=$(cat "$PGDATA_DIR/PG_VERSION")
		[[ "$v" == "$PG_MAJOR" ]] || die "$PGDATA_DIR holds a PostgreSQL $v cluster, expected $PG_MAJOR"
		return 0
	fi
	if [[ -n "$(ls -A "$PGDATA_DIR")" ]]; then
		die "$PGDATA_DIR is not empty but holds no cluster (no PG_VERSION); remove it or set ESP_PGDATA"
	fi
	local -a locale_opt=(--no-locale)
	if locale -a 2>/dev/null | grep -qixE 'c\.utf-?8'; then locale_opt=(--locale=C.UTF-8); fi
	say "initdb $PGDATA_DIR"
	as_owner "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 "${locale_opt[@]}" \
		--auth-local=trust --auth-host=trust >>"$PG_LOG" 2>&1 ||
		{
			tail -n 20 "$PG_LOG" >&2
			die "initdb failed (see $PG_LOG)"
		}
}

# (Re)write our settings; applied on every start, so edits here take effect.
write_config() {
	local conf="$PGDATA_DIR/postgresql.conf" ours="$PGDATA_DIR/esp-ingest.conf"
	cat >"$ours" <<EOF
# Written by scripts/timescaledb.sh on each start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PGPORT_NUM
unix_socket_directories = '$SOCK_DIR'
max_connections = 200
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
timescaledb.max_background_workers = 8
max_worker_processes = 16
# Commit times of rows (pg_xact_commit_timestamp(xmin)): npm run bench's end
# time and publish-to-commit latency. Needs a restart (cmd_start does it).
track_commit_timestamp = on
# Durability stays on: esp-ingest tests crash safety.
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
	grep -qxF "include 'esp-ingest.conf'" "$conf" ||
		printf "\n# esp-ingest settings (scripts/timescaledb.sh)\ninclude 'esp-ingest.conf'\n" >>"$conf"
	cat >"$PGDATA_DIR/pg_hba.conf" <<'EOF'
# Written by scripts/timescaledb.sh: private test cluster, loopback only.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
host    all          all   127.0.0.1/32   trust
host    all          all   ::1/128        trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
EOF
	if is_root; then chown "$PG_OWNER:$PG_OWNER" "$ours" "$PGDATA_DIR/pg_hba.conf"; fi
}

start_cluster() {
	write_config
	say "starting PostgreSQL $PG_MAJOR on 127.0.0.1:$PGPORT_NUM (data $PGDATA_DIR, log $PG_LOG)"
	local offset
	for _ in 1 2 3 4 5 6; do
		offset=$(stat -c %s "$PG_LOG")
		if as_owner "$PG_BIN/pg_ctl" start -w -t 120 -D "$PGDATA_DIR" -l "$PG_LOG" >/dev/null 2>&1; then
			return 0
		fi
		# Right after a postmaster was killed (-9), its children may still hold
		# the old shared memory for a moment: wait for them, then retry.
		if tail -c +"$((offset + 1))" "$PG_LOG" | grep -q 'pre-existing shared memory block'; then
			say "old server processes still exiting; retrying in 1 s"
			sleep 1
			continue
		fi
		break
	done
	tail -n 20 "$PG_LOG" | sed 's/^/    /' >&2
	die "pg_ctl start failed (see $PG_LOG above; is port $PGPORT_NUM taken?)"
}

psql_q() {
	local db=$1
	shift
	"$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PGPORT_NUM" -U postgres -d "$db" "$@"
}

provision() {
	psql_q postgres -c "DO \$\$ BEGIN
	  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN
	    CREATE ROLE root SUPERUSER LOGIN;
	  END IF; END \$\$;" >/dev/null
	if [[ -z "$(psql_q postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
		say "creating database $DB_NAME"
		psql_q postgres -c "CREATE DATABASE $DB_NAME" >/dev/null
	fi
	local have
	have=$(psql_q "$DB_NAME" -c "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
	if [[ -z "$have" ]]; then
		say "CREATE EXTENSION timescaledb in $DB_NAME"
		psql_q "$DB_NAME" -c "CREATE EXTENSION IF NOT EXISTS timescaledb" >/dev/null
	elif [[ "$have" != "$TSDB_VERSION" ]]; then
		say "ALTER EXTENSION timescaledb UPDATE ($have -> $TSDB_VERSION) in $DB_NAME"
		psql_q "$DB_NAME" -c "ALTER EXTENSION timescaledb UPDATE" >/dev/null
	fi
	have=$(psql_q "$DB_NAME" -c "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
	[[ "$have" == "$TSDB_VERSION" ]] || die "timescaledb in $DB_NAME is '$have', expected $TSDB_VERSION"
}

lock() {
	mkdir -p "$WORKDIR"
	exec 9>>"$LOCK_FILE"
	flock -w 900 9 || die "another scripts/timescaledb.sh holds $LOCK_FILE"
}

restart_cluster() {
	say "restarting the running cluster $1"
	as_owner "$PG_BIN/pg_ctl" stop -m fast -w -D "$PGDATA_DIR" >/dev/null
	prepare_dirs
	start_cluster
}

cmd_start() {
	lock
	build_extension
	if cluster_running; then
		# Settings that only a restart applies: a cluster started before them is restarted once.
		if ((REBUILT)); then
			restart_cluster "to load the new TimescaleDB"
		elif [[ "$(psql_q postgres -c 'SHOW track_commit_timestamp')" != on ]]; then
			restart_cluster "to turn track_commit_timestamp on"
		fi
	else
		prepare_dirs
		init_cluster
		start_cluster
	fi
	provision
	url
}

cmd_stop() {
	lock
	if cluster_running; then
		say "stopping PostgreSQL in $PGDATA_DIR"
		as_owner "$PG_BIN/pg_ctl" stop -m fast -w -t 120 -D "$PGDATA_DIR" >/dev/null
	else
		say "not running ($PGDATA_DIR)"
	fi
}

case "${1:-start}" in
start) cmd_start ;;
stop) cmd_stop ;;
status)
	if cluster_running; then
		say "running: $(url)"
	else
		say "not running ($PGDATA_DIR)"
		exit 3
	fi
	;;
url) url ;;
-h | --help | help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (use: start | stop | status | url)" ;;
esac
