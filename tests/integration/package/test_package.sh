#!/usr/bin/env bash
# test_package.sh: the Debian package is built from the tree and lintian-clean of errors
# (scripts/package); then installed on this machine, its units checked with systemd-analyze
# verify, the programs run from their installed paths on the installed config, and the package
# removed (config kept) and purged (config gone).
# Installing changes this machine: done only under CI (CI=true: a throw-away box) or with
# EDGEGW_TEST_PACKAGE=1, and never over an edgegw already installed; otherwise skipped (77).
set -euo pipefail
cd "$(dirname "$0")/../../.."
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (apt, dpkg)"; exit 77; }
scripts/package
deb=$(ls build-deb/edgegw_*_amd64.deb)
if [ "${CI:-}" != true ] && [ "${EDGEGW_TEST_PACKAGE:-}" != 1 ]; then
	echo "SKIP: built and lintian-checked; install/remove/purge only under CI=true or EDGEGW_TEST_PACKAGE=1"
	exit 77
fi
if dpkg-query -W -f='${Status}' edgegw 2>/dev/null | grep -q "installed"; then
	fail "edgegw is already installed on this machine: not touching it"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "./$deb" >/dev/null || fail "apt install $deb"
trap 'apt-get purge -y -q edgegw >/dev/null 2>&1 || true' EXIT

for f in /usr/bin/edgegw-dataplane /usr/bin/edgegw-agent /usr/bin/edgegwctl /etc/edgegw/gateway.yaml \
	/etc/edgegw/profiles/eastron-sdm630.yaml /usr/libexec/edgegw/edgegw-prepare \
	/lib/systemd/system/edgegw.target /lib/systemd/system/edgegw-dataplane.service \
	/lib/systemd/system/edgegw-agent.service /lib/systemd/system/edgegw-prepare.service \
	/usr/share/man/man8/edgegw-dataplane.8.gz /usr/share/man/man8/edgegwctl.8.gz \
	/usr/share/doc/edgegw/install.md.gz; do
	[ -e "$f" ] || fail "$f not installed"
done
for f in /usr/bin/edgegw-sensorsim /usr/bin/edgegw-impair; do
	[ ! -e "$f" ] || fail "$f (a lab tool) is in the package"
done
edgegw-dataplane --version | grep -q "^edgegw-dataplane " || fail "dataplane --version"
edgegw-agent --version | grep -q "^edgegw-agent " || fail "agent --version"
edgegwctl version | grep -q "^edgegwctl " || fail "edgegwctl version"
edgegwctl config check /etc/edgegw/gateway.yaml >/dev/null || fail "edgegwctl config check of the installed config"
edgegw-dataplane --check | grep -q ": ok" || fail "the installed config does not pass the dataplane's --check"
edgegw-agent --check | grep -q ": ok" || fail "the installed config does not pass the agent's --check"
plan=$(edgegw-dataplane --prepare-plan)
grep -q "^hugepages 2048K 1073741824$" <<<"$plan" || fail "prepare plan: $plan"
grep -q "^bind 0000:01:00.0 vfio-pci$" <<<"$plan" || fail "prepare plan: $plan"
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no edgegw.target edgegw-prepare.service \
	edgegw-dataplane.service edgegw-agent.service || fail "systemd-analyze verify"

apt-get remove -y -q edgegw >/dev/null || fail "apt remove"
[ ! -e /usr/bin/edgegw-dataplane ] || fail "remove left the dataplane"
[ -e /etc/edgegw/gateway.yaml ] || fail "remove took the config (a conffile stays until purge)"
apt-get purge -y -q edgegw >/dev/null || fail "apt purge"
[ ! -e /etc/edgegw/gateway.yaml ] || fail "purge left /etc/edgegw/gateway.yaml"
trap - EXIT
echo "ok: built, lintian-clean of errors, installed, units verified, removed and purged"
