#!/usr/bin/env bash
# A real Flux (flux-core 0.88.0) on localhost for hpc-connect's tests, as root.
#
#   cluster.sh install     apt-get install the missing build dependencies, then build
#                          flux-core into /opt/flux-0.88.0 unless a working build is there
#   cluster.sh start       start a 2-broker test instance (reuse it if running), wait until
#                          `flux resource list` answers; last stdout line: its FLUX_URI
#   cluster.sh stop        flux shutdown, then signals to the whole session; bounded
#   cluster.sh status      pid, uri and resources; exit 0 only if the instance answers
#   cluster.sh uri         print FLUX_URI (exit 1 if the instance is not running)
#   cluster.sh kill-rank1  SIGKILL the rank-1 broker and its job shells and tasks, like a
#                          node crash (fault tests); one "killed rank 1: pid N: CMD" line each
#
# Source: ../shared/flux/flux-core-0.88.0.tar.gz beside the repo (the repaired tarball, see
# ../shared/flux/NOTES.md). It has no .git, so autogen.sh needs FLUX_VERSION. The install
# tree uses RPATH and absolute symlinks: it works only at the prefix it was built for.
# Build log: $HPC_CONNECT_FLUX_DIR/install.log (HPC_CONNECT_FLUX_PREFIX: build elsewhere). Measured on 2 cores: apt 27 s, build 405 s
# (a busy machine; NOTES.md says 168 s idle); with a working build, install takes < 1 s.
# Python: the bindings are in $PREFIX/lib/python3.11/site-packages (PYTHONPATH or a .pth);
# Debian's python3 has what they import (python3-cffi, -yaml, -ply); a venv needs
# `pip install cffi pyyaml ply` (or --system-site-packages). Python 3.11 only.
#
# The instance: `flux start --test-size=2` (two brokers, both "nodes" named after this host,
# each reporting all cores), rundir $HPC_CONNECT_FLUX_DIR/rundir (default
# /tmp/hpc-connect-flux), URI local://<rundir>/local-0 (local-1 is rank 1's socket). Clients
# should also set FLUX_URI_RESOLVE_LOCAL=1, or the URIs of nested instances (flux batch,
# flux alloc) resolve to ssh://. It runs in its own session (setsid): plain `kill` of
# flux-start leaves the brokers running, so stop signals the whole session.
# --test-exit-mode=leader: by default a broker's exit makes flux-start SIGKILL the others
# 20 s later, which would end the instance after kill-rank1. Rank 1 is not restarted:
# rank 0 marks it lost within ~1 s, its jobs end FAILED (exception type "exec", "node
# failure on HOST (rank 1)"), new jobs needing it fail as unsatisfiable; stop still works.
# A lock serialises start/stop/kill-rank1; another one serialises install.
set -euo pipefail

VERSION=0.88.0
PREFIX=${HPC_CONNECT_FLUX_PREFIX:-/opt/flux-$VERSION}  # another prefix: to time a fresh build
FLUX=$PREFIX/bin/flux
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARBALL=$REPO/../shared/flux/flux-core-$VERSION.tar.gz
STATE=${HPC_CONNECT_FLUX_DIR:-/tmp/hpc-connect-flux}
RUNDIR=$STATE/rundir
URI=local://$RUNDIR/local-0
DEPS=(build-essential autoconf automake libtool pkg-config libzmq3-dev libjansson-dev
      liblz4-dev libarchive-dev libhwloc-dev libsqlite3-dev uuid-dev lua5.1 liblua5.1-0-dev
      lua-posix python3-dev python3-cffi python3-ply python3-yaml python3-setuptools)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
running() { [[ -e /proc/$1 && $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

locked() {  # locked FILE SECONDS CMD...: run CMD holding FILE's lock (fd 9)
    local file=$1 wait=$2; shift 2
    mkdir -p "$(dirname "$file")"
    exec 9>"$file"
    flock -w "$wait" 9 || die "could not take $file within $wait s"
    "$@"
}

working_build() {  # `flux version` reports $VERSION for both commands and libflux-core
    [[ -x $FLUX ]] && [[ $(timeout 20 "$FLUX" version 2>/dev/null \
        | awk '/^(commands|libflux-core):/ && $2 == v {n++} END {print n + 0}' v="$VERSION") == 2 ]]
}

install_deps() {
    local missing=() p
    for p in "${DEPS[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    local t0=$SECONDS
    log "installing ${missing[*]}"
    timeout 300 apt-get update -qq || log "apt-get update failed; trying the install anyway"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
    log "apt-get took $((SECONDS - t0)) s"
}

build() {
    [[ -s $TARBALL ]] || die "no source tarball at $TARBALL (shared/ must be beside the repo)"
    local tmp logf=$STATE/install.log src t0=$SECONDS
    tmp=$(mktemp -d /tmp/hpc-connect-flux-build.XXXXXX)
    # shellcheck disable=SC2064  # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    mkdir -p "$STATE" && : >"$logf"
    log "building flux-core $VERSION into $PREFIX (3-7 min on 2 cores; log: $logf)"
    src=$tmp/flux-core-$VERSION
    if ! (set -e; exec >>"$logf" 2>&1 9>&-
          tar xzf "$TARBALL" -C "$tmp"; cd "$src"
          FLUX_VERSION=$VERSION nice -n 10 ./autogen.sh
          nice -n 10 ./configure --prefix="$PREFIX" --disable-docs PYTHON=/usr/bin/python3
          nice -n 10 make -j2
          nice -n 10 make install); then
        tail -n 40 "$logf" >&2
        die "build failed (full log: $logf)"
    fi
    working_build || die "built, but '$FLUX version' does not report $VERSION"
    log "built and installed in $((SECONDS - t0)) s"
}

do_install() {
    local t0=$SECONDS
    install_deps
    if working_build; then log "flux-core $VERSION already installed in $PREFIX"; else build; fi
    log "install done in $((SECONDS - t0)) s"
    echo "$PREFIX"
}

leader() {  # print the pid of our flux-start if it is alive (a zombie counts as dead)
    local pid
    [[ -s $STATE/start.pid ]] || return 1
    pid=$(<"$STATE/start.pid")
    [[ $pid =~ ^[0-9]+$ ]] && running "$pid" || return 1
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$PREFIX/libexec/flux/cmd/flux-start" ]] || return 1
    echo "$pid"
}

session() {  # print the pids of the instance's session (brokers, job shells, tasks);
    # zombies only with "session Z" (init reaps them a moment after they die)
    local sid
    [[ -s $STATE/start.pid ]] || return 0
    sid=$(<"$STATE/start.pid")
    [[ $sid =~ ^[0-9]+$ ]] || return 0
    # A leader pid is not reused while its session has members (a zombie leader still
    # holds it); if it runs something else, the session it led is gone.
    if running "$sid" && ! leader >/dev/null; then return 0; fi
    { ps -o pid=,stat= -s "$sid" || true; } | awk -v z="${1:-}" 'z || $2 !~ /^Z/ {print $1}'
}

answers() { FLUX_URI=$URI timeout 10 "$FLUX" resource list >/dev/null 2>&1; }

do_start() {
    working_build || die "no working flux-core $VERSION in $PREFIX; run: $0 install"
    [[ $(id -u) == 0 ]] || die "must run as root"
    ((${#RUNDIR} <= 90)) || die "HPC_CONNECT_FLUX_DIR too long: socket paths must fit in 107 bytes"
    if leader >/dev/null && answers; then echo "$URI"; return; fi
    [[ -z $(session) ]] || { log "removing a stale instance"; do_stop; }
    rm -rf "$RUNDIR" "$STATE/uri"
    mkdir -p "$RUNDIR"  # --test-rundir must exist
    # Not a process-group leader (no job control), so setsid does not fork: $! is flux-start.
    # The initial program runs once the instance is in state "run".
    # shellcheck disable=SC2016  # $FLUX_URI is the instance's, expanded by sh -c
    (cd / && exec setsid "$FLUX" start --test-size=2 --test-rundir="$RUNDIR" \
        --test-exit-mode=leader \
        sh -c 'echo "$FLUX_URI" >"$0.new" && mv "$0.new" "$0" && exec sleep inf' "$STATE/uri" \
        >"$STATE/flux.log" 2>&1 </dev/null 9>&-) &
    local pid=$! end=$((SECONDS + 60))
    echo "$pid" >"$STATE/start.pid"
    until [[ -s $STATE/uri ]] && answers; do  # (flux-start's exe is bash, then setsid, flux)
        running "$pid" || { tail -n 20 "$STATE/flux.log" >&2; die "flux start exited; log: $STATE/flux.log"; }
        ((SECONDS < end)) || { tail -n 20 "$STATE/flux.log" >&2; die "instance not ready after 60 s"; }
        sleep 0.2
    done
    [[ $(<"$STATE/uri") == "$URI" ]] || log "warning: the instance reports $(<"$STATE/uri")"
    log "flux up: 2 brokers, pid $pid, log $STATE/flux.log"
    echo "$URI"
}

wait_gone() {  # wait_gone SECONDS: until the session is empty
    local end=$((SECONDS + $1))
    while [[ -n $(session) ]]; do ((SECONDS < end)) || return 1; sleep 0.2; done
}

do_stop() {
    local pids sig grace=0
    if leader >/dev/null; then  # cancels the jobs, ~2 s
        if FLUX_URI=$URI timeout 30 "$FLUX" shutdown --quiet >/dev/null 2>&1; then grace=20
        else log "flux shutdown failed; signalling the session"; fi
    fi
    for sig in TERM KILL; do  # brokers take TERM as a shutdown request
        wait_gone "$grace" && break
        pids=$(session | xargs)
        log "sending $sig to $(wc -w <<<"$pids") processes: $pids"
        # shellcheck disable=SC2086  # a list of pids
        kill -"$sig" $pids 2>/dev/null || true
        grace=10
    done
    wait_gone 10 || die "processes left in the instance's session: $(session | xargs)"
    local end=$((SECONDS + 5))  # best effort: until init has reaped them, `pgrep flux` shows them
    while [[ -n $(session Z) ]] && ((SECONDS < end)); do sleep 0.2; done
    rm -rf "$RUNDIR" "$STATE/uri" "$STATE/start.pid"
    log "flux stopped"
}

do_status() {
    local pid
    pid=$(leader) || { echo "flux: stopped"; return 1; }
    printf 'flux-start: running (%s)\nFLUX_URI=%s\n' "$pid" "$URI"
    FLUX_URI=$URI timeout 10 "$FLUX" resource list
}

descendants() {  # descendants PID: PID's children, grandchildren, ...
    local c
    for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done
}

do_kill_rank1() {  # like a node crash: the broker and what it runs (job shells, tasks)
    leader >/dev/null || die "flux is not running"
    local pid pids p end=$((SECONDS + 10))
    pid=$(FLUX_URI=local://$RUNDIR/local-1 timeout 10 "$FLUX" getattr broker.pid 2>/dev/null) \
        || die "rank 1 does not answer on local://$RUNDIR/local-1 (already killed?)"
    [[ $pid =~ ^[0-9]+$ && $(readlink "/proc/$pid/exe") == "$PREFIX/libexec/flux/cmd/flux-broker" ]] \
        || die "rank 1 reports broker.pid $pid, which is not a flux-broker"
    kill -STOP "$pid"  # no new children while the tree is read
    pids="$pid $(descendants "$pid" | xargs)"
    for p in $pids; do
        echo "killed rank 1: pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    done
    # shellcheck disable=SC2086  # a list of pids
    kill -KILL $pids 2>/dev/null || true
    for p in $pids; do
        while running "$p"; do
            ((SECONDS < end)) || die "pid $p still there 10 s after SIGKILL"
            sleep 0.1
        done
    done
}

case ${1:-} in
    install) locked "/tmp/hpc-connect-flux-install.lock" 1200 do_install ;;
    start) locked "$STATE/lock" 120 do_start ;;
    stop) locked "$STATE/lock" 120 do_stop ;;
    status) do_status ;;
    uri) leader >/dev/null || die "flux is not running"; echo "$URI" ;;
    kill-rank1) locked "$STATE/lock" 120 do_kill_rank1 ;;
    *) echo "usage: $0 install|start|stop|status|uri|kill-rank1" >&2; exit 2 ;;
esac
