#!/bin/bash
# Stand-in for a scheduler command (sbatch, squeue, scancel, ...) used by the fault tests.
#
# A folder holds symlinks named after the commands, pointing here. For a call of
# <dir>/<prog>, the call count is kept in <dir>/<prog>.count (under a lock, so
# concurrent callers count correctly). While the count is <= the number in
# <dir>/<prog>.fail the call prints <dir>/<prog>.msg to stderr and exits 1, as the real
# command does when the controller does not answer; later calls run the real <prog>,
# the next one on PATH after <dir>. Every call appends "<n> <rc> <stdout>" to <prog>.log.
# With <prog>.only, only calls whose arguments contain its text are counted and failed;
# with <prog>.lying, a failing call first runs the real program (the work is done, but
# the caller is told it failed, as after a reply lost on the way back).
set -u
dir=$(cd "$(dirname "$0")" && pwd -P)
prog=$(basename "$0")
real=""
IFS=: read -ra entries <<<"$PATH"
for entry in "${entries[@]}"; do
    [[ -n $entry && -d $entry ]] || continue
    [[ $(cd "$entry" && pwd -P) == "$dir" ]] && continue
    if [[ -x $entry/$prog && ! -d $entry/$prog ]]; then real=$entry/$prog; break; fi
done
[[ -n $real ]] || { echo "flaky.sh: no real $prog on PATH" >&2; exit 127; }

# with <prog>.only, calls whose arguments lack that text run the real program uncounted
if [[ -s $dir/$prog.only && "$*" != *"$(<"$dir/$prog.only")"* ]]; then
    exec "$real" "$@"
fi

exec 9>>"$dir/$prog.lock"
flock -w 60 9 || { echo "flaky.sh: lock timeout" >&2; exit 1; }
n=$(( $(cat "$dir/$prog.count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$dir/$prog.count"
fail=$(cat "$dir/$prog.fail" 2>/dev/null || echo 0)
if (( n <= fail )); then
    echo "$n 1 (injected)" >>"$dir/$prog.log"
    exec 9>&-
    # with <prog>.lying, the real program runs first: it did its work, then "failed"
    [[ -e $dir/$prog.lying ]] && "$real" "$@" >/dev/null 2>&1
    cat "$dir/$prog.msg" >&2
    exit 1
fi
exec 9>&-
out=$("$real" "$@")
rc=$?
[[ -n $out ]] && printf '%s\n' "$out"
exec 9>>"$dir/$prog.lock"
flock -w 60 9
printf '%s %s %s\n' "$n" "$rc" "$(tr '\n' ' ' <<<"$out")" >>"$dir/$prog.log"
exit $rc
