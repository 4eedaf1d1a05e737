#!/usr/bin/env bash
# A real one-node Grid Engine (Debian's gridengine 8.1.9, Son of Grid Engine) for
# hpc-connect's tests. Runs as root, without systemd.
#
#   cluster.sh install  only install the gridengine packages (debconf preseed), if missing
#   cluster.sh start    install the gridengine packages if missing, start sge_qmaster and
#                       sge_execd (reuse them if running), configure, run a smoke job
#   cluster.sh stop     qdel every job, stop both daemons
#   cluster.sh status   daemons and queue state; exit 0 only if both are up
#   cluster.sh stop-qmaster / start-qmaster   only the qmaster (fault tests)
#
# Configuration is re-applied on every start (qconf -Mconf/-Msconf/-Mq/-Mp from full
# files; qconf -sconf wraps long lines with \, so those are joined before keys change):
# min_uid 0 (root may submit), a 1 s scheduler, immediate accounting, all.q with
# 8 slots (as the test Slurm has 8 CPUs), no load alarm, PE smp, and notify 5 s
# (qsub -notify gets SIGUSR2 5 s before a qdel's SIGKILL; a job that ends sooner is
# not held up). Every wait is bounded. A lock serialises start/stop.
# See ../../../shared/sge/NOTES.md for the facts behind each step.
set -euo pipefail

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
QPID=/var/spool/gridengine/qmaster/qmaster.pid
STATE=${HPC_CONNECT_SGE_DIR:-/tmp/hpc-connect-sge}
HOST=$(hostname)
SLOTS=${HPC_CONNECT_SGE_SLOTS:-8}  # like the test Slurm: more slots than cores
NOTIFY=${HPC_CONNECT_SGE_NOTIFY:-00:00:05}  # > the job script's 3 s TERM-to-KILL grace
PACKAGES=(gridengine-master gridengine-exec gridengine-client)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() {  # alive PIDFILE: the daemon recorded there runs (a zombie counts as dead)
    local pid
    [[ -s $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [[ -n $pid && -r /proc/$pid/stat ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

execd_pidfiles() { ls /var/spool/gridengine/execd/*/execd.pid 2>/dev/null || true; }

execd_alive() {
    local f
    for f in $(execd_pidfiles); do alive "$f" && return 0; done
    return 1
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.5 s, bounded
    local limit=$1 what=$2; shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || { log "gave up after ${limit}s waiting for $what"; return 1; }
        sleep 0.5
    done
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local q
    for p in gridengine-common gridengine-client gridengine-master gridengine-exec; do
        for q in "shared/gridengineconfig boolean true" "shared/gridenginecell string default" \
                 "shared/gridenginemaster string $HOST"; do
            echo "$p $q"
        done
    done | debconf-set-selections
    # No MTA daemon: ssmtp satisfies gridengine's mail dependency.
    [[ -e /usr/sbin/sendmail ]] || missing+=(ssmtp)
    # The postinst would start the daemons before the hostname fix: forbid it for now.
    local policy=/usr/sbin/policy-rc.d made=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made=1
    fi
    local ok=""
    for _ in 1 2; do  # a second try after apt-get update (missing or stale lists)
        if DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
                --no-install-recommends "${missing[@]}" >/dev/null; then ok=1; break; fi
        timeout 300 apt-get update -qq || true
    done
    [[ -z $made ]] || rm -f "$policy"
    [[ -n $ok ]] || die "apt-get install ${missing[*]} failed"
}

fix_host_aliases() {  # clients resolving 127.0.0.1 to another name are refused without it
    local reverse
    reverse=$(getent hosts "$(getent hosts "$HOST" | awk '{print $1; exit}')" | awk '{print $2; exit}')
    if [[ -n $reverse && $reverse != "$HOST" ]]; then
        echo "$HOST $reverse" >"$COMMON/host_aliases"
    fi
    echo "$HOST" >"$COMMON/act_qmaster"
}

start_qmaster() {
    alive "$QPID" && return 0
    log "starting sge_qmaster"
    /usr/sbin/sge_qmaster
    wait_for 30 "the qmaster to answer" qconf -sh
}

start_execd() {
    execd_alive && return 0
    log "starting sge_execd"
    /usr/sbin/sge_execd
    wait_for 20 "sge_execd to start" execd_alive
}

qc() {  # qc ARGS...: qconf, quiet unless it fails
    local out
    out=$(qconf "$@" 2>&1) || { log "qconf $* failed: $out"; return 1; }
}

configure() {
    local tmp
    tmp=$(mktemp -d)
    # -- hosts: admin, submit and execution host
    qconf -sh 2>/dev/null | grep -qx "$HOST" || qc -ah "$HOST"
    qconf -ss 2>/dev/null | grep -qx "$HOST" || qc -as "$HOST"
    if ! qconf -se "$HOST" >/dev/null 2>&1; then
        printf '%s\n' "hostname $HOST" "load_scaling NONE" "complex_values NONE" \
            "user_lists NONE" "xuser_lists NONE" "projects NONE" "xprojects NONE" \
            "usage_scaling NONE" "report_variables NONE" >"$tmp/exechost"
        qc -Ae "$tmp/exechost"
    fi
    # -- global configuration: the current one (continuations joined), a few keys replaced
    qconf -sconf | sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*//; ta' | grep -v '^#' | awk '
        $1 == "min_uid" || $1 == "min_gid" {print $1, 0; next}
        $1 == "execd_params" {print $1, "ENABLE_ADDGRP_KILL=TRUE"; next}
        $1 == "reporting_params" {print $1, "accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00"; next}
        $1 == "max_unheard" {print $1, "00:01:00"; next}
        {print}' >"$tmp/global"
    qc -Mconf "$tmp/global"
    # -- scheduler: a 1 s interval instead of 15 s
    qconf -ssconf | awk '
        $1 == "schedule_interval" {print $1, "0:0:1"; next}
        $1 == "flush_submit_sec" || $1 == "flush_finish_sec" {print $1, 1; next}
        {print}' >"$tmp/sconf"
    qc -Msconf "$tmp/sconf"
    # -- host group, parallel environment, queue
    printf '%s\n' "group_name @allhosts" "hostlist $HOST" >"$tmp/hgrp"
    if qconf -shgrp @allhosts >/dev/null 2>&1; then qc -Mhgrp "$tmp/hgrp"
    else qc -Ahgrp "$tmp/hgrp"; fi
    printf '%s\n' "pe_name smp" "slots 9999" "user_lists NONE" "xuser_lists NONE" \
        "start_proc_args NONE" "stop_proc_args NONE" 'allocation_rule $pe_slots' \
        "control_slaves FALSE" "job_is_first_task TRUE" "urgency_slots min" \
        "accounting_summary FALSE" "qsort_args NONE" >"$tmp/pe"
    if qconf -sp smp >/dev/null 2>&1; then qc -Mp "$tmp/pe"
    else qc -Ap "$tmp/pe"; fi
    cat >"$tmp/queue" <<EOF
qname                 all.q
hostlist              @allhosts
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                $NOTIFY
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
    if qconf -sq all.q >/dev/null 2>&1; then qc -Mq "$tmp/queue"
    else qc -Aq "$tmp/queue"; fi
    rm -rf "$tmp"
}

queue_ready() {  # the queue instance reports a load value and is not in u/E/d/a state
    local line
    line=$(qstat -f -q "all.q@$HOST" 2>/dev/null | awk -v q="all.q@$HOST" '$1 == q')
    [[ -n $line ]] || return 1
    local load states
    load=$(awk '{print $4}' <<<"$line")
    states=$(awk '{print $6}' <<<"$line")
    [[ $load != -NA- ]] && [[ ! $states =~ [uEda] ]]
}

smoke() {
    mkdir -p "$STATE"
    local out
    out=$(cd "$STATE" && timeout 60 qsub -sync y -terse -cwd -b y -shell no -N smoke \
        -o /dev/null -j y /bin/true 2>&1) || { log "smoke job failed: $out"; return 1; }
}

start() {
    mkdir -p "$STATE"
    exec 8>"$STATE/lock"
    flock -w 300 8 || die "lock $STATE/lock busy"
    install_packages
    fix_host_aliases
    # An execd that outlives a qmaster restart takes ~30 s to re-register: restart it.
    local restart_execd=""
    alive "$QPID" || restart_execd=1
    if ! wait_for 40 "the qmaster" start_qmaster; then
        tail -n 5 /var/spool/gridengine/qmaster/messages >&2 2>/dev/null || true
        die "sge_qmaster did not come up"
    fi
    configure
    if [[ -n $restart_execd ]] && execd_alive; then stop_execd; fi
    start_execd || die "sge_execd did not start"
    qmod -c "all.q@$HOST" >/dev/null 2>&1 || true
    qmod -e "all.q@$HOST" >/dev/null 2>&1 || true
    wait_for 60 "all.q@$HOST to be usable" queue_ready || { qstat -f >&2 || true; die "queue not usable"; }
    smoke || die "smoke job did not run"
    log "Grid Engine up on $HOST ($SLOTS slots)"
    echo "$SGE_ROOT"
}

stop_pidfile() {  # stop_pidfile FILE SECONDS: TERM, wait, then KILL
    alive "$1" || return 0
    local pid
    pid=$(tr -dc 0-9 <"$1")
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "$2" "pid $pid to exit" bash -c "! kill -0 $pid 2>/dev/null || [[ \$(awk '{print \$3}' /proc/$pid/stat 2>/dev/null) == Z ]]" \
        || kill -KILL "$pid" 2>/dev/null || true
}

stop_execd() {
    local f
    for f in $(execd_pidfiles); do stop_pidfile "$f" 15; done
}

stop_qmaster() { stop_pidfile "$QPID" 30; }

stop() {
    mkdir -p "$STATE"
    exec 8>"$STATE/lock"
    flock -w 300 8 || die "lock $STATE/lock busy"
    if alive "$QPID"; then
        timeout 30 qdel -u '*' >/dev/null 2>&1 || true
    fi
    stop_execd
    stop_qmaster
    log "Grid Engine stopped"
}

status() {
    local rc=0
    if alive "$QPID"; then echo "sge_qmaster: running"; else echo "sge_qmaster: stopped"; rc=1; fi
    if execd_alive; then echo "sge_execd: running"; else echo "sge_execd: stopped"; rc=1; fi
    if ((rc == 0)); then qstat -f -q "all.q@$HOST" 2>&1 | tail -n +3 || rc=1; fi
    return "$rc"
}

case ${1:-} in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    stop-qmaster) stop_qmaster ;;
    start-qmaster) fix_host_aliases; wait_for 40 "the qmaster" start_qmaster ;;
    *) echo "usage: $0 install|start|stop|status|stop-qmaster|start-qmaster" >&2; exit 2 ;;
esac
