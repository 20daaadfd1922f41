#!/bin/sh
# install.sh — set up ember on a Debian, Ubuntu or Raspberry Pi OS host.
#
#   ./install.sh                     install or upgrade: host packages, ember,
#                                    its service, and the example function
#   ./install.sh --no-example        the same, without the example function
#   ./install.sh --skip-packages     the same, without apt (other distributions:
#                                    install the packages yourself first)
#   ./install.sh --uninstall         stop and remove ember, its functions'
#                                    tasks and containers, its bridge and
#                                    rules; keep /var/lib/ember
#   ./install.sh --uninstall --purge also remove /var/lib/ember, ember's images,
#                                    logs, /etc/default/ember and the group
#   ./install.sh --test-deps         only the host packages the tests need
#
# Run as root from a checkout. Safe to re-run: a second run changes nothing,
# and a run after `git pull` upgrades ember in place (function tasks keep
# running; the new daemon adopts them).
#
# With systemd as PID 1, containerd and ember run as systemd services. Without
# it (containers, some CI sandboxes) install.sh starts containerd (if it is
# not running) and `ember daemon` in the background itself, and says so.
set -eu

say() { printf 'install.sh: %s\n' "$*"; }
die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*)"

SRC=$(cd "$(dirname "$0")" && pwd)

# Where things go. The daemon's own defaults match these.
BIN=/usr/local/bin/ember
UNIT=/etc/systemd/system/ember.service
DEFAULTS=/etc/default/ember
SYSCTL_CONF=/etc/sysctl.d/99-ember.conf
# Used only where systemd does not run the services:
LOG=/var/log/ember.log
PIDFILE=/run/ember.pid
CONTAINERD_LOG=/var/log/ember-containerd.log
CONTAINERD_PIDFILE=/run/ember-containerd.pid

EXAMPLE=hello
EXAMPLE_IMAGE=localhost/hello:v1
EXAMPLE_ARCHIVE=$SRC/examples/hello.tar

# Packages from the distribution: containerd and runc run functions, the CNI
# plugins give them a network, iptables masquerades their traffic; curl and
# iproute2 are what this script itself uses.
RUNTIME_PKGS="containerd runc containernetworking-plugins iptables"
INSTALL_PKGS="curl iproute2"
# The tests also build a busybox-based image from the host's static busybox,
# check the unit file with systemd-analyze, run this script, and drive the
# web dashboard in a headless chromium.
TEST_PKGS="busybox-static systemd chromium"

# The daemon reads EMBER_<FLAG> from its environment; the service takes them
# from /etc/default/ember. Use the same settings here, and none that happen
# to be set in the caller's environment.
for v in $(env | sed -n 's/^\(EMBER_[A-Za-z0-9_]*\)=.*/\1/p'); do
	unset "$v"
done
if [ -r "$DEFAULTS" ]; then
	set -a
	# shellcheck disable=SC1090
	. "$DEFAULTS"
	set +a
fi
STATE_DIR=${EMBER_STATE_DIR:-/var/lib/ember}
RUN_DIR=${EMBER_RUN_DIR:-/run/ember}
SOCKET=${EMBER_SOCKET:-/run/ember/ember.sock}
LISTEN=${EMBER_LISTEN:-0.0.0.0:8080}
NAMESPACE=${EMBER_NAMESPACE:-ember}
BRIDGE=${EMBER_BRIDGE:-ember0}
CONTAINERD_SOCK=${EMBER_CONTAINERD_SOCKET:-/run/containerd/containerd.sock}
PORT=${LISTEN##*:}
case "${LISTEN%:*}" in
"" | 0.0.0.0 | "[::]") GATEWAY=http://127.0.0.1:$PORT ;;
*) GATEWAY=http://$LISTEN ;;
esac
export EMBER_SOCKET="$SOCKET"

systemd_running() { [ -d /run/systemd/system ]; }

# --- packages -----------------------------------------------------------------

is_debian_like() (
	[ -r /etc/os-release ] || return 1
	# shellcheck disable=SC1091
	. /etc/os-release
	case " ${ID:-} ${ID_LIKE:-} " in
	*" debian "* | *" ubuntu "* | *" raspbian "*) return 0 ;;
	esac
	return 1
)

install_packages() {
	pkgs="$1"
	if ! is_debian_like || ! command -v apt-get >/dev/null 2>&1; then
		die "this is not Debian, Ubuntu or Raspberry Pi OS: install these with your distribution's tools ($pkgs; the CNI plugins are often called cni-plugins), then re-run with --skip-packages"
	fi
	missing=""
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		return 0
	fi
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

check_commands() {
	for c in containerd runc iptables ctr ip curl; do
		command -v "$c" >/dev/null 2>&1 || die "$c not found: install it (see the top of $0), then re-run"
	done
	for d in /opt/cni/bin /usr/lib/cni; do
		[ -x "$d/bridge" ] && return 0
	done
	die "no CNI bridge plugin in /opt/cni/bin or /usr/lib/cni: install the CNI plugins, then re-run"
}

# --- files --------------------------------------------------------------------

# put SRC DST MODE installs SRC as DST unless they are equal, and reports
# whether it did through $changed. install(1) writes a new file rather than
# into the old one: running containers bind-mount the ember binary as their
# probe, and keep the old one.
put() {
	changed=0
	if ! cmp -s "$1" "$2"; then
		mkdir -p "$(dirname "$2")"
		install -m "$3" "$1" "$2"
		changed=1
	fi
}

find_go() {
	if command -v go >/dev/null 2>&1; then
		command -v go
		return 0
	fi
	for g in /usr/local/go/bin/go /usr/lib/go/bin/go; do
		if [ -x "$g" ]; then
			echo "$g"
			return 0
		fi
	done
	return 1
}

# build_ember sets $NEW_BIN: ember built from this checkout when Go is here,
# else the prebuilt bin/ember (from `make release`, for example).
build_ember() {
	if GO=$(find_go); then
		command -v make >/dev/null 2>&1 || install_packages make
		say "building ember with $("$GO" version | cut -d' ' -f3)"
		out=$(make -C "$SRC" --no-print-directory build GO="$GO" 2>&1) || die "make build failed:
$out"
	elif [ -x "$SRC/bin/ember" ]; then
		say "no Go toolchain: installing the prebuilt $SRC/bin/ember"
	else
		die "no Go toolchain and no $SRC/bin/ember: install Go (https://go.dev/dl/), or copy the binary for this machine from a release (dist/ember-linux-ARCH) to $SRC/bin/ember"
	fi
	NEW_BIN=$SRC/bin/ember
	"$NEW_BIN" version --help >/dev/null 2>&1 || die "$NEW_BIN does not run on this machine ($(uname -m)): wrong architecture?"
}

enable_forwarding() {
	tmp=$(mktemp)
	printf '# Written by ember'"'"'s install.sh: functions reach the network through\n# the host, which must forward their packets.\nnet.ipv4.ip_forward = 1\n' >"$tmp"
	put "$tmp" "$SYSCTL_CONF" 0644
	rm -f "$tmp"
	if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
		say "enabling IP forwarding"
		sysctl -q -w net.ipv4.ip_forward=1 >/dev/null 2>&1 || echo 1 >/proc/sys/net/ipv4/ip_forward
	fi
}

write_defaults() {
	[ -e "$DEFAULTS" ] && return 0
	cat >"$DEFAULTS" <<'EOF'
# Settings of the ember daemon, one EMBER_<FLAG>=value per line; see
# `ember daemon --help` for the flags. Restart ember after a change:
# systemctl restart ember (or re-run install.sh without systemd).
#EMBER_LISTEN=0.0.0.0:8080
#EMBER_SUBNET=10.63.0.0/16
#EMBER_INSECURE_REGISTRY=registry.lan:5000
EOF
}

# --- processes ----------------------------------------------------------------

# alive PID: the process exists and is not a zombie.
alive() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$state" != Z ]
}

# cmd_is PID WORD...: the process's command line starts with WORD...
cmd_is() {
	pid=$1
	shift
	[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" = "$* " ]
}

# pid_from FILE WORD...: the PID in FILE, if that process is alive and runs
# WORD...; a stale file is removed.
pid_from() {
	f=$1
	shift
	p=$(cat "$f" 2>/dev/null || true)
	if alive "$p" && cmd_is "$p" "$@"; then
		echo "$p"
	else
		rm -f "$f"
	fi
}

# stop_pid PID WHAT: SIGTERM, then SIGKILL after 45s (ember drains for 30s).
stop_pid() {
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while alive "$1"; do
		i=$((i + 1))
		if [ "$i" -gt 450 ]; then
			say "$2 (pid $1) did not stop in 45s: killing it"
			kill -KILL "$1" 2>/dev/null || true
			sleep 1
			return 0
		fi
		sleep 0.1
	done
}

# daemons lists the PIDs of `ember daemon` processes running the installed
# binary (or an older one that an upgrade replaced).
daemons() {
	for d in /proc/[0-9]*; do
		exe=$(readlink "$d/exe" 2>/dev/null) || continue
		case "$exe" in
		"$BIN" | "$BIN (deleted)") ;;
		*) continue ;;
		esac
		pid=${d#/proc/}
		alive "$pid" && cmd_is "$pid" "$BIN" daemon && echo "$pid"
	done
	return 0
}

containerd_up() { ctr --address "$CONTAINERD_SOCK" --connect-timeout 2s version >/dev/null 2>&1; }

# words LINES joins lines with spaces.
words() { printf '%s\n' "$1" | paste -sd' ' -; }

healthy() { curl -fsS -o /dev/null --max-time 2 "$GATEWAY/healthz" 2>/dev/null; }

ctr_ns() { ctr --address "$CONTAINERD_SOCK" --namespace "$NAMESPACE" "$@"; }

# --- without systemd ----------------------------------------------------------

start_containerd_direct() {
	if containerd_up; then
		return 0
	fi
	say "starting containerd in the background (log: $CONTAINERD_LOG)"
	# setsid: its own session, so that neither a closing terminal nor a
	# signal to this script's process group reaches it.
	setsid containerd >>"$CONTAINERD_LOG" 2>&1 </dev/null &
	echo $! >"$CONTAINERD_PIDFILE"
	i=0
	until containerd_up; do
		i=$((i + 1))
		alive "$(cat "$CONTAINERD_PIDFILE")" || die "containerd exited; the end of $CONTAINERD_LOG:
$(tail -n 20 "$CONTAINERD_LOG")"
		[ "$i" -lt 300 ] || die "containerd did not answer on $CONTAINERD_SOCK in 30s; see $CONTAINERD_LOG"
		sleep 0.1
	done
}

start_daemon_direct() {
	say "starting ember daemon in the background (log: $LOG)"
	# A clean environment plus /etc/default/ember, as the service gets.
	# shellcheck disable=SC2016 # $1 and $2 are the inner shell's
	setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		sh -c 'set -a; [ ! -r "$1" ] || . "$1"; exec "$2" daemon' sh "$DEFAULTS" "$BIN" \
		>>"$LOG" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
}

# --- install ------------------------------------------------------------------

wait_healthy() {
	i=0
	until healthy; do
		i=$((i + 1))
		if [ "$i" -ge 600 ]; then
			say "ember did not answer $GATEWAY/healthz within 60s"
			show_logs
			exit 1
		fi
		if ! systemd_running && ! alive "$(cat "$PIDFILE" 2>/dev/null || true)"; then
			say "ember daemon exited"
			show_logs
			exit 1
		fi
		sleep 0.1
	done
}

show_logs() {
	if systemd_running; then
		journalctl -u ember.service -n 30 --no-pager >&2 || true
	else
		say "the end of $LOG:" >&2
		tail -n 30 "$LOG" >&2 || true
	fi
}

start_services() {
	if systemd_running; then
		[ "$unit_changed" = 0 ] || systemctl daemon-reload
		systemctl enable --quiet containerd.service ember.service
		systemctl start containerd.service
		if systemctl is-active --quiet ember.service && [ "$bin_changed$unit_changed" != 00 ]; then
			say "restarting ember (upgraded)"
			systemctl restart ember.service || {
				show_logs
				die "ember failed to restart"
			}
		elif ! systemctl is-active --quiet ember.service; then
			say "starting ember.service"
			systemctl start ember.service || {
				show_logs
				die "ember failed to start"
			}
		fi
		return 0
	fi
	say "systemd is not running here (PID 1 is $(cat /proc/1/comm)): starting containerd and ember directly; nothing restarts them if they fail or at boot"
	start_containerd_direct
	pid=$(pid_from "$PIDFILE" "$BIN" daemon)
	if [ -n "$pid" ] && [ "$bin_changed" = 1 ]; then
		say "restarting ember (upgraded)"
		stop_pid "$pid" "ember daemon"
		pid=""
	elif [ -n "$pid" ] && [ -n "$(find "$DEFAULTS" -newer "$PIDFILE" 2>/dev/null)" ]; then
		# The pid file was written when the daemon started.
		say "restarting ember ($DEFAULTS changed)"
		stop_pid "$pid" "ember daemon"
		pid=""
	fi
	if [ -z "$pid" ]; then
		other=$(daemons)
		[ -z "$other" ] || die "an ember daemon that install.sh did not start is running (pid $other): stop it, then re-run"
		start_daemon_direct
	fi
}

deploy_example() {
	if "$BIN" describe "$EXAMPLE" >/dev/null 2>&1; then
		say "function $EXAMPLE is deployed already: leaving it as it is"
	else
		if [ -n "${GO:-}" ]; then
			say "building the example's image (examples/$EXAMPLE)"
			out=$(make -C "$SRC" --no-print-directory examples GO="$GO" 2>&1) || die "make examples failed:
$out"
		elif [ ! -f "$EXAMPLE_ARCHIVE" ]; then
			say "skipping the example function: building its image needs Go"
			return 0
		fi
		"$BIN" import "$EXAMPLE_ARCHIVE" >/dev/null
		say "deploying function $EXAMPLE ($EXAMPLE_IMAGE)"
		"$BIN" deploy "$EXAMPLE" --image "$EXAMPLE_IMAGE" --gateway "$GATEWAY" >/dev/null
	fi
	answer=$(curl -fsS --max-time 30 "$GATEWAY/function/$EXAMPLE/install-check") ||
		die "the example function does not answer at $GATEWAY/function/$EXAMPLE; see ember describe $EXAMPLE"
	printf '%s\n' "$answer" | sed 's/^/    /'
	example_line="  Call the example:   curl $GATEWAY/function/$EXAMPLE/some/path
"
}

do_install() {
	if [ "$skip_packages" = 0 ]; then
		install_packages "$RUNTIME_PKGS $INSTALL_PKGS"
	fi
	check_commands
	enable_forwarding
	build_ember
	getent group ember >/dev/null 2>&1 || groupadd --system ember
	put "$NEW_BIN" "$BIN" 0755
	bin_changed=$changed
	[ "$bin_changed" = 0 ] || say "installed $BIN"
	put "$SRC/systemd/ember.service" "$UNIT" 0644
	unit_changed=$changed
	[ "$unit_changed" = 0 ] || say "installed $UNIT"
	write_defaults
	start_services
	wait_healthy
	say "ember answers on $GATEWAY"
	example_line=""
	if [ "$example" = 1 ]; then
		deploy_example
	fi
	logs="journalctl -u ember"
	systemd_running || logs="$LOG"
	cat <<EOF

ember is running.
${example_line}  Deploy your own:    ember deploy NAME --image IMAGE   (or: ember import image.tar)
  Daemon status:      ember status
  Daemon logs:        $logs
  HTTP API password:  user admin, password in $STATE_DIR/basic-auth-password
                      (faas-cli login -g $GATEWAY -u admin --password-stdin < $STATE_DIR/basic-auth-password)
  CLI without sudo:   usermod -aG ember USER, then log in again
EOF
}

# --- uninstall ----------------------------------------------------------------

stop_daemon() {
	if systemd_running && [ -e "$UNIT" ]; then
		systemctl disable --now --quiet ember.service 2>/dev/null || true
	fi
	for pid in $({
		pid_from "$PIDFILE" "$BIN" daemon
		daemons
	} | sort -u); do
		say "stopping ember daemon (pid $pid)"
		stop_pid "$pid" "ember daemon"
	done
	rm -f "$PIDFILE"
}

# remove_tasks removes every task and container in ember's containerd
# namespace (and with --purge its images), so that no function keeps
# running without the daemon.
remove_tasks() {
	if ! containerd_up; then
		say "containerd is not running: no function tasks to stop"
		return 0
	fi
	# A paused task cannot die until it is thawed.
	for t in $(ctr_ns tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "PAUSED" { print $1 }'); do
		ctr_ns tasks resume "$t" >/dev/null 2>&1 || true
	done
	tasks=$(ctr_ns tasks ls -q 2>/dev/null || true)
	if [ -n "$tasks" ]; then
		say "stopping function tasks: $(words "$tasks")"
		for t in $tasks; do
			ctr_ns tasks kill --all --signal SIGKILL "$t" >/dev/null 2>&1 || true
			ctr_ns tasks delete --force "$t" >/dev/null 2>&1 || say "could not delete task $t"
		done
	fi
	containers=$(ctr_ns containers ls -q 2>/dev/null || true)
	if [ -n "$containers" ]; then
		say "removing containers: $(words "$containers")"
		# shellcheck disable=SC2086
		ctr_ns containers delete $containers >/dev/null 2>&1 || say "could not delete every container"
	fi
	if [ "$purge" = 1 ]; then
		images=$(ctr_ns images ls -q 2>/dev/null || true)
		if [ -n "$images" ]; then
			say "removing images: $(words "$images")"
			# shellcheck disable=SC2086
			ctr_ns images delete --sync $images >/dev/null 2>&1 || say "could not delete every image"
		fi
		ctr --address "$CONTAINERD_SOCK" namespaces delete "$NAMESPACE" >/dev/null 2>&1 || true
	fi
}

# remove_network takes down what the CNI bridge plugin set up for ember:
# network namespaces, veths, the bridge and the masquerade rules, which carry
# the network's name in their comment.
remove_network() {
	netns_dir=$RUN_DIR/netns-$BRIDGE
	if [ -d "$netns_dir" ]; then
		for f in "$netns_dir"/*; do
			[ -e "$f" ] || continue
			umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || true
			rm -f "$f"
		done
	fi
	if [ -e "/sys/class/net/$BRIDGE" ]; then
		for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
			ip link delete "$l" 2>/dev/null || true
		done
		say "removing bridge $BRIDGE"
		ip link delete "$BRIDGE" || say "could not delete bridge $BRIDGE"
	fi
	command -v iptables >/dev/null 2>&1 || return 0
	# In `iptables -S` a comment reads --comment "name: \"ember-ember0\" id: \"...\"".
	pattern='name: \"'"ember-$BRIDGE"'\" id: '
	rules=$(iptables -w -t nat -S 2>/dev/null | grep -F -- "$pattern" || true)
	[ -n "$rules" ] || return 0
	say "removing the masquerade rules of ember-$BRIDGE"
	chains=""
	tmp=$(mktemp)
	printf '%s\n' "$rules" >"$tmp"
	while IFS= read -r rule; do
		chain=$(printf '%s\n' "$rule" | awk '{ print $2 }')
		case "$chain" in
		CNI-*)
			chains="$chains $chain"
			continue
			;;
		esac
		target=$(printf '%s\n' "$rule" | sed -n 's/.* -j \(CNI-[^ ]*\).*/\1/p')
		[ -z "$target" ] || chains="$chains $target"
		# The rule as iptables printed it is valid shell: quotes and
		# backslashes included.
		eval "iptables -w -t nat -D ${rule#-A }" 2>/dev/null || say "could not delete nat rule: $rule"
	done <"$tmp"
	rm -f "$tmp"
	# shellcheck disable=SC2086 # one chain per word
	for c in $(printf '%s\n' $chains | sort -u); do
		iptables -w -t nat -F "$c" 2>/dev/null || true
		iptables -w -t nat -X "$c" 2>/dev/null || say "could not delete nat chain $c"
	done
}

stop_containerd_direct() {
	pid=$(pid_from "$CONTAINERD_PIDFILE" containerd)
	[ -n "$pid" ] || return 0
	say "stopping containerd (pid $pid), which install.sh started"
	stop_pid "$pid" containerd
	rm -f "$CONTAINERD_PIDFILE"
}

do_uninstall() {
	stop_daemon
	remove_tasks
	remove_network
	stop_containerd_direct
	if [ -e "$UNIT" ]; then
		say "removing $UNIT"
		rm -f "$UNIT" /etc/systemd/system/multi-user.target.wants/ember.service
		! systemd_running || systemctl daemon-reload
	fi
	[ ! -e "$BIN" ] || say "removing $BIN"
	rm -f "$BIN" "$SYSCTL_CONF"
	rm -rf "$RUN_DIR"
	if [ "$purge" = 1 ]; then
		say "removing $STATE_DIR, $DEFAULTS, the logs and group ember"
		rm -rf "$STATE_DIR"
		rm -f "$DEFAULTS" "$LOG" "$CONTAINERD_LOG"
		! getent group ember >/dev/null 2>&1 || groupdel ember
	elif [ -d "$STATE_DIR" ]; then
		say "kept $STATE_DIR (functions, secrets, password): a new install brings the functions back; --uninstall --purge removes it"
	fi
	if systemd_running; then
		say "left containerd.service running: it belongs to the containerd package"
	fi
	say "IP forwarding stays on until the next boot"
	say "ember is uninstalled"
}

# --- main ---------------------------------------------------------------------

mode=install
example=1
purge=0
skip_packages=0
for arg in "$@"; do
	case "$arg" in
	--test-deps) mode=test-deps ;;
	--uninstall) mode=uninstall ;;
	--purge) purge=1 ;;
	--no-example) example=0 ;;
	--skip-packages) skip_packages=1 ;;
	-h | --help)
		sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*) die "unknown argument $arg (see $0 --help)" ;;
	esac
done
[ "$purge" = 0 ] || [ "$mode" = uninstall ] || die "--purge goes with --uninstall"

case "$mode" in
test-deps) install_packages "$RUNTIME_PKGS $INSTALL_PKGS $TEST_PKGS" ;;
uninstall) do_uninstall ;;
install) do_install ;;
esac
