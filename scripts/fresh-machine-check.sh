#!/usr/bin/env bash
# Runs the README's two set-up commands (scripts/setup.sh, then scripts/test.sh) in a minimal
# Debian 12 root made by debootstrap, with a copy of this checkout and of ../shared beside it: what a
# new user on a fresh machine gets. Catches dependencies that are installed on the developers'
# machines but missing from scripts/install-deps.sh.
#
#   sudo scripts/fresh-machine-check.sh [--work DIR] [--reuse-base] [--only-setup] [--keep]
#
#   --work DIR     where the root and logs go (default /tmp/qyolo-fresh; needs ~6 GB)
#   --reuse-base   start from DIR/base.tar.gz made by an earlier run (the debootstrap step only)
#   --only-setup   run scripts/setup.sh only (not the test suite)
#   --keep         leave the root in place afterwards
#
# The mirror is the one this machine's apt uses (never hard-coded). Logs: DIR/setup.log, DIR/test.log;
# the times of each step are printed at the end. Needs root, debootstrap and network access to the
# mirror. Exit status: 0 when both commands pass.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=/tmp/qyolo-fresh
REUSE=0 ONLY_SETUP=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --work) WORK="$2"; shift 2 ;;
    --reuse-base) REUSE=1; shift ;;
    --only-setup) ONLY_SETUP=1; shift ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--work DIR] [--reuse-base] [--only-setup] [--keep]" >&2; exit 2 ;;
  esac
done
SHARED="${QYOLO_SHARED:-$SRC/../shared}"
[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-check: needs root (chroot, mounts)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "fresh-machine-check: needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }

# The Debian mirror of this machine's own apt sources (deb822 .sources files or sources.list).
mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # The stanza whose Suites has plain "bookworm" (not bookworm-security) and Types has deb.
    uri=$(awk 'BEGIN{RS=""} /Types:[^\n]*deb([ \n]|$)/ && /Suites:[^\n]*bookworm( |\n|$)/ {
                 if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { s = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", s); print s; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { if ($(i+1) == "bookworm") { print $i; exit } break } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  return 1
}
MIRROR=$(mirror) || { echo "fresh-machine-check: no bookworm 'deb' source in /etc/apt/sources.list*" >&2; exit 2; }

ROOTFS="$WORK/root"
mkdir -p "$WORK"
cleanup() {
  for m in dev/pts dev proc sys; do mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -l "$ROOTFS/$m"; done
  if [ "$KEEP" -eq 0 ]; then rm -rf "$ROOTFS"; fi
}
trap cleanup EXIT

t0=$SECONDS
if [ -d "$ROOTFS" ]; then cleanup; rm -rf "$ROOTFS"; fi
mkdir -p "$ROOTFS"
if [ "$REUSE" -eq 1 ] && [ -f "$WORK/base.tar.gz" ]; then
  echo "== base root from $WORK/base.tar.gz"
  tar -C "$ROOTFS" -xzf "$WORK/base.tar.gz"
else
  echo "== debootstrap --variant=minbase bookworm from $MIRROR"
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; exit 1; }
  tar -C "$ROOTFS" -czf "$WORK/base.tar.gz" .
fi
t_base=$((SECONDS - t0))

# The checkout as git sees it (tracked and untracked-but-not-ignored files: no build dirs), and
# ../shared beside it, as the README expects.
mkdir -p "$ROOTFS/src/qyolo" "$ROOTFS/src/shared"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -C "$ROOTFS/src/qyolo" -xf -
if [ -d "$SHARED" ]; then cp -a "$SHARED/." "$ROOTFS/src/shared/"; else echo "note: no shared data at $SHARED"; fi
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
for m in proc sys dev dev/pts; do mkdir -p "$ROOTFS/$m"; mount --bind "/$m" "$ROOTFS/$m"; done

run_in_root() {  # log name, command
  local log="$WORK/$1.log"; shift
  chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    bash -c "cd /src/qyolo && $*" > "$log" 2>&1
}
status=0
t1=$SECONDS
echo "== scripts/setup.sh (log: $WORK/setup.log)"
if run_in_root setup scripts/setup.sh; then echo "setup: passed"; else status=1; echo "setup: FAILED"; tail -25 "$WORK/setup.log"; fi
t_setup=$((SECONDS - t1))
t_test=0
if [ "$status" -eq 0 ] && [ "$ONLY_SETUP" -eq 0 ]; then
  t2=$SECONDS
  echo "== scripts/test.sh (log: $WORK/test.log)"
  if run_in_root test scripts/test.sh; then echo "tests: passed"; else status=1; echo "tests: FAILED"; tail -25 "$WORK/test.log"; fi
  t_test=$((SECONDS - t2))
  grep -E "tests passed|tests failed" "$WORK/test.log" | tail -1 || true
fi
echo "fresh-machine-check: base root ${t_base} s, setup.sh ${t_setup} s, test.sh ${t_test} s ($(nproc) cores); $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
