#!/usr/bin/env bash
# How long a change made directly in the server-side DIR takes to show on an sshfs mount
# of it (sshd.sh mount DIR MOUNTPOINT OPTIONS; our sshd must be up: sshd.sh start).
#
#   cache_delay.sh [OPTIONS]    OPTIONS as for sshfs -o; none: sshd.sh's default cache options
#
# Each case looks at the mount first (filling the caches), waits 0.3 s, changes DIR, then
# polls the mount every 0.1 s for at most 30 s and prints the seconds it took. A measuring
# tool for sshd.sh's header, not a test: it asserts nothing.
# ls | grep on purpose (the directory listing is what is measured); checks run via poll
# shellcheck disable=SC2010,SC2317
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SSHD=${SSHD_SH:-$here/sshd.sh}
opts=${1:-}
base=$(mktemp -d /tmp/hpc-connect-cache.XXXXXX)
src=$base/src mp=$base/mnt
mkdir -p "$src" "$mp"
bash "$SSHD" mount "$src" "$mp" ${opts:+"$opts"} >/dev/null
trap 'bash "$SSHD" umount "$mp" >/dev/null 2>&1 || true; rm -rf "$base"' EXIT
now() { date +%s.%N; }
poll() {  # poll DESCRIPTION COMMAND...: seconds until COMMAND succeeds
    local what=$1 t0 t
    shift
    t0=$(now)
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then
            t=$(echo "$(now) - $t0" | bc); printf '  %-46s %5.1f s\n' "$what" "$t"; return
        fi
        sleep 0.1
    done
    printf '  %-46s >30 s\n' "$what"
}
listed() { ls "$mp" | grep -qx "$1"; }
size_is() { [[ $(stat -c %s "$mp/$1") == "$2" ]]; }
unlisted() { ! ls "$mp" | grep -qx "$1"; }
gone() { ! stat "$mp/$1"; }
content_is() { [[ $(cat "$mp/$1") == "$2" ]]; }
echo "options: ${opts:-<sshd.sh default>}"
# each case looks at the mount (filling the caches), waits 0.3 s, changes DIR, polls
ls "$mp" >/dev/null; sleep 0.3
echo x >"$src/a"; poll "new file, dir listed before: ls" listed a
stat "$mp/b" >/dev/null 2>&1 || true; sleep 0.3
echo x >"$src/b"; poll "new file, name looked up before: stat" stat "$mp/b"
echo x >"$src/c"; poll "new file, never looked at: stat" stat "$mp/c"
echo x >"$src/d"; sleep 0.3; stat "$mp/d" >/dev/null; sleep 0.3
echo yy >"$src/d"; poll "file rewritten (2 -> 3 bytes): stat size" size_is d 3
echo zzzz >"$src/e"; sleep 0.3; cat "$mp/e" >/dev/null; sleep 0.3
echo wwww >"$src/e"; poll "same-size rewrite: cat sees new content" content_is e wwww
echo x >"$src/f"; sleep 0.3; ls "$mp" >/dev/null; stat "$mp/f" >/dev/null; sleep 0.3
rm "$src/f"; poll "file removed: gone from ls" unlisted f
stat "$mp/d" >/dev/null; sleep 0.3
rm "$src/d"; poll "file removed: stat fails" gone d
