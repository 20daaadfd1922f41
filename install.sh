#!/bin/sh
# install.sh — set up ember on a Debian, Ubuntu or Raspberry Pi OS host.
#
#   ./install.sh               install host packages, ember and its service
#   ./install.sh --test-deps   only the host packages the test suite needs
#
# Run as root. Safe to re-run.
set -eu

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*)"

# Packages from the distribution: containerd and runc run functions, the CNI
# plugins give them a network, iptables masquerades their traffic.
RUNTIME_PKGS="containerd runc containernetworking-plugins iptables"
# The tests also build a busybox-based image from the host's static busybox.
TEST_PKGS="busybox-static"

install_packages() {
	pkgs="$1"
	if ! command -v apt-get >/dev/null 2>&1; then
		die "no apt-get: install these packages with your distribution's tools, then re-run: $pkgs"
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

case "${1:-}" in
--test-deps)
	install_packages "$RUNTIME_PKGS $TEST_PKGS"
	exit 0
	;;
esac

die "full installation is not implemented yet; use --test-deps"
