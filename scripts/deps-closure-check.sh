#!/usr/bin/env bash
# CI's cheap stand-in for scripts/fresh-machine-check.sh: proves that every file the build took
# from a Debian package (headers, libraries, CMake package files, the tools that compiled it) comes
# from a package that scripts/install-deps.sh installs on a fresh machine, i.e. from the Depends /
# Pre-Depends closure of its list plus the packages every Debian root has (Essential, Priority
# required). A package installed here by hand or pulled in only as a Recommends (how
# ocl-icd-opencl-dev went missing, issue 18) fails the check, naming the file that needs it.
#
#   scripts/deps-closure-check.sh [BUILD_DIR]      (after a build; default build)
#
# Limits: it sees what the build reads, not what tests read at run time; the full fresh-root check
# (scripts/fresh-machine-check.sh, ~1 h on 2 cores) covers that and is run when dependencies change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
[ -f "$BUILD/build.ninja" ] || { echo "deps-closure-check: no build in $BUILD" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. The package list of install-deps.sh (the pkgs=( ... ) array), and its closure.
sed -n '/^pkgs=(/,/)/p' "$ROOT/scripts/install-deps.sh" | sed -e 's/^pkgs=(//' -e 's/)//' -e 's/#.*//' |
  tr ' ' '\n' | grep -v '^$' | sort -u > "$tmp/listed"
[ -s "$tmp/listed" ] || { echo "deps-closure-check: no pkgs=(...) list in scripts/install-deps.sh" >&2; exit 2; }
# Packages of every root: Essential and Priority required (debootstrap's minbase), with apt.
dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' | awk '$2 == "yes" || $3 == "required" {print $1}' > "$tmp/base"
echo apt >> "$tmp/base"
# Recursive Depends/Pre-Depends (no Recommends/Suggests); virtual packages resolve to their providers.
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
  $(cat "$tmp/listed" "$tmp/base") 2>/dev/null | grep -v '^ ' | grep -v '^<' | sed 's/:.*//' | sort -u > "$tmp/closure"

# 2. Files the build used: every header of every object (ninja's deps log), every library on the
# link lines, every absolute path CMake cached (found packages, config dirs), the compilers.
ninja -C "$BUILD" -t deps 2>/dev/null | awk '/^    \//{print $1}' > "$tmp/files"
ninja -C "$BUILD" -t commands 2>/dev/null | tr ' ' '\n' | grep -E '^/usr/.*\.(so|a)(\.[0-9.]+)?$' >> "$tmp/files" || true
for l in $(ninja -C "$BUILD" -t commands 2>/dev/null | tr ' ' '\n' | grep -E '^-l[A-Za-z0-9_+-]+$' | sort -u); do
  f=$(gcc -print-file-name="lib${l#-l}.so"); [ "$f" != "lib${l#-l}.so" ] && echo "$f" >> "$tmp/files"
done
grep -E '^[A-Za-z0-9_]+:(FILEPATH|PATH|STRING)=/usr/' "$BUILD/CMakeCache.txt" | sed 's/^[^=]*=//' | tr ';' '\n' |
  grep '^/usr/' | grep -v '^/usr/local/' >> "$tmp/files" || true
for tool in cc c++ g++ gcc cmake ninja protoc pkg-config; do
  p=$(command -v "$tool" 2>/dev/null) && readlink -f "$p" >> "$tmp/files"
done
# Paths as named: a -dev package's libfoo.so symlink names the -dev package, its target the runtime one.
sort -u "$tmp/files" | while read -r f; do [ -e "$f" ] && realpath -s "$f"; done | sort -u |
  grep -v "^$ROOT/" | grep -v '^/usr/local/' > "$tmp/used"

# 3. Every used file owned by a package must have an owner inside the closure. dpkg knows a path as
# packaged: as named, else under merged /usr (/lib <-> /usr/lib), else its symlink target. Owners
# come from dpkg's file lists in one pass (dpkg -S per file takes minutes).
while IFS= read -r f; do printf '%s\t%s\n%s\t%s\n%s\t%s\n' "$f" "$f" "$f" "${f#/usr}" "$f" "$(readlink -f "$f")"; done \
  < "$tmp/used" > "$tmp/alternatives"
cut -f2 "$tmp/alternatives" | sort -u > "$tmp/paths"
grep -H -x -F -f "$tmp/paths" /var/lib/dpkg/info/*.list 2>/dev/null |
  sed -e 's#^/var/lib/dpkg/info/##' -e 's#\.list:#\t#' -e 's#:[a-z0-9]*\t#\t#' > "$tmp/owned" || true
awk -F'\t' -v closure="$tmp/closure" '
  BEGIN { while ((getline p < closure) > 0) in_closure[p] = 1 }
  FILENAME == ARGV[1] { owners[$2] = owners[$2] " " $1; next }
  { used = $1; path = $2
    if (used in done || !(path in owners)) next
    done[used] = 1; checked++
    n = split(owners[path], o, " "); ok = 0
    for (i = 1; i <= n; i++) if (o[i] in in_closure) ok = 1
    if (!ok) { missing++; printf "deps-closure-check: %s comes from%s, which scripts/install-deps.sh does not install (not in its Depends closure)\n", used, owners[path] } }
  END { printf "deps-closure-check: %d files from packages checked against a closure of %d packages; %d missing\n", checked, length(in_closure), missing + 0
        exit missing > 0 }' "$tmp/owned" "$tmp/alternatives"
