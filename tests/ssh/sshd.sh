#!/usr/bin/env bash
# A real OpenSSH server on 127.0.0.1 for hpc-connect's tests (Debian 12: OpenSSH 9.2,
# sshfs 3.7.3 on libfuse 3.14). Runs as root, without systemd.
#
#   sshd.sh install              apt-get update + install openssh-server openssh-client sshfs,
#                                only those missing (waits up to 300 s for another apt/dpkg
#                                to let go of its lock); never leaves the system's sshd running
#   sshd.sh start                start our sshd (reuse it if it answers), wait until
#                                `ssh ... true` works; last stdout line: the ssh_config path
#   sshd.sh stop                 stop our sshd and everything that came in through it
#   sshd.sh status               exit 0 only if our sshd runs and `ssh ... true` works
#   sshd.sh conf                 print the path of ssh_config (written if missing)
#   sshd.sh mount DIR MOUNTPOINT [OPTIONS]
#                                sshfs-mount DIR (on "the server", i.e. this machine, over
#                                our sshd) at MOUNTPOINT; OPTIONS (comma-separated, as for
#                                sshfs -o) replace the default cache options below
#   sshd.sh umount MOUNTPOINT    fusermount3 -u (lazy as a last resort), bounded
#
# Clients use the written config:  ssh -F "$STATE/ssh_config" hpc-connect-test CMD
# (Host alias hpc-connect-test: 127.0.0.1, $PORT, our key, User root, BatchMode yes,
# StrictHostKeyChecking accept-new, our own known_hosts, LogLevel ERROR). With -F the
# system's /etc/ssh/ssh_config is not read, so the machine's settings cannot interfere.
#
# State lives in $HPC_CONNECT_SSH_DIR (default /tmp/hpc-connect-ssh, mode 0700): host
# key, client key pair (no passphrase), authorized_keys, sshd_config, sshd.pid, sshd.log
# (sshd -E, LogLevel VERBOSE), known_hosts, ssh_config, mounts (our sshfs mount points).
# Port: $HPC_CONNECT_SSH_PORT (default 2222); a second server needs its own dir and port.
# A lock ($STATE/lock) serialises start/stop/mount/umount. Every wait is bounded.
#
# sshd_config notes: StrictModes no is required, not a convenience: with StrictModes yes
# sshd walks every directory above AuthorizedKeysFile up to / and refuses a group- or
# world-writable one, and /tmp is 1777 ("Authentication refused: bad ownership or modes
# for directory /tmp"). UsePAM no (no PAM session for root, no pam_systemd). sftp is
# internal-sftp (sshfs needs the sftp subsystem). MaxStartups/MaxSessions are raised so
# parallel tests are not dropped by the default 10:30:100 throttle.
#
# install and the system's sshd: while apt-get installs openssh-server a policy-rc.d that
# exits 101 is in place (made by us only if /usr/sbin/policy-rc.d does not exist, removed
# afterwards), so the package's postinst does not start the ssh service. If an sshd on
# /run/sshd.pid is running afterwards that was not running before, it is stopped (and on a
# machine booted with systemd, ssh.service/ssh.socket are disabled). An sshd that was
# already running before install is left alone.
#
# stop: TERM (then KILL after 10 s) to the listener in our pid file and to every process
# whose SSH_CONNECTION says it came in through 127.0.0.1:$PORT (the per-connection sshd
# processes, remote commands, and remote commands detached from their session with
# `nohup ... &` or setsid); our sshfs mounts are unmounted first. Nothing else is touched:
# an sshd of the system (port 22) stays. Pid 1 of this machine reaps orphans late, so
# "[sshd] <defunct>" zombies may show for a moment after stop; alive() counts them as dead.
# Do not run stop through our own sshd: it would end its own session.
#
# ssh facts measured here (OpenSSH 9.2), for a backend that runs remote commands:
#   - killing the local ssh client (TERM or KILL) without a tty leaves the remote command
#     running, reparented to pid 1 (until it writes to its closed stdout: SIGPIPE); with
#     -tt it dies (SIGHUP from the closed pty). A TERMed client exits 255.
#   - the remote command is a session and process group leader (sshd calls setsid), so
#     `ssh ... "kill -TERM -- -PGID"` ends it and its children; its client then exits 255.
#   - `ssh host 'cmd &'` does not return while cmd holds the channel's stdout/stderr;
#     `cmd >/dev/null 2>&1 </dev/null &` returns at once.
#   - remote exit status N comes back as ssh's exit status; killed by a signal: 255.
#   - port refused: exit 255, stderr (CRLF-terminated, even with LogLevel ERROR; nothing
#     with LogLevel QUIET): "ssh: connect to host 127.0.0.1 port 2222: Connection refused"
#
# sshfs caching (sshfs 3.7.3 / libfuse 3.14, each option tried on a real mount; an unknown
# one fails with "fuse: unknown option(s)"). sshfs's own cache: dir_cache=yes|no (the 3.x
# name; cache=yes|no still works), dcache_timeout=N (default 20 s; sets the stat, dir and
# link timeouts), dcache_{stat,dir,link}_timeout=N, dcache_max_size, dcache_clean_interval,
# dcache_min_clean_interval. The 2.x names cache_timeout, cache_{stat,dir,link}_timeout,
# cache_max_size, cache_{,min_}clean_interval are still accepted as aliases (cache_timeout=3
# measured the same as dcache_timeout=3). The kernel side (libfuse): entry_timeout (default
# 1 s), attr_timeout (1 s), negative_timeout (0 s), ac_attr_timeout, kernel_cache,
# auto_cache. Gone in 3.x: the writeback cache (3.3.0) and the nodelay workarounds.
# Measured with DEFAULT_CACHE (tests/ssh/cache_delay.sh: look at the mount, change DIR
# directly on the server side, poll the mount every 0.1 s):
#   new file, directory listed before      `ls` shows it after ~3.0-3.7 s (dcache_dir_timeout)
#   new file, its name stat'ed before       stat finds it after ~2.8 s (negative_timeout; with
#                                           0 it is at once: sshfs caches no ENOENT itself)
#   new file, never looked at               at once
#   file rewritten, stat of its size        ~5.8 s: attr_timeout and dcache_stat_timeout add up
#   file removed                            gone from `ls` ~3 s, stat fails after ~5.8 s
#   same-size rewrite, read with cat        new content at once (even with kernel_cache)
# sshfs's defaults (dir_cache=yes, 20 s) give ~20 s and ~21 s for the same cases; with
# dir_cache=no,attr_timeout=0,entry_timeout=0 every change shows within 0.5 s.
# Like an NFS client with actimeo=3 (which also caches negative lookups).
set -euo pipefail

STATE=${HPC_CONNECT_SSH_DIR:-/tmp/hpc-connect-ssh}
PORT=${HPC_CONNECT_SSH_PORT:-2222}
if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    echo "sshd.sh: HPC_CONNECT_SSH_PORT=$PORT: expected a port number" >&2; exit 2
fi
[[ $STATE == /* ]] || { echo "sshd.sh: HPC_CONNECT_SSH_DIR=$STATE: expected an absolute path" >&2; exit 2; }
ALIAS=hpc-connect-test
SSHD=/usr/sbin/sshd  # sshd must be started by absolute path (it re-executes itself)
CONF=$STATE/sshd_config
CLIENT_CONF=$STATE/ssh_config
PIDFILE=$STATE/sshd.pid
KEY=$STATE/id_ed25519
PACKAGES=(openssh-server openssh-client sshfs)
DEFAULT_CACHE=dir_cache=yes,dcache_timeout=3,attr_timeout=3,entry_timeout=3,negative_timeout=3

log() { printf 'sshd.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() {  # alive PIDFILE: the process recorded there runs (a zombie counts as dead)
    local pid
    [[ -s $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [[ -n $pid && -r /proc/$pid/stat ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

locked() {  # run "$@" holding the lock (at most 60 s wait)
    mkdir -p "$STATE"
    chmod 0700 "$STATE"
    exec 9>"$STATE/lock"
    flock -w 60 9 || die "could not take $STATE/lock within 60 s"
    "$@"
}

# ---------------------------------------------------------------- install

sys_sshd_running() { alive /run/sshd.pid; }

# dpkg -s also succeeds for a removed package whose conffiles are left ("deinstall ok config-files")
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    if ((${#missing[@]} == 0)); then log "already installed: ${PACKAGES[*]}"; return 0; fi
    [[ $(id -u) == 0 ]] || die "must run as root to install ${missing[*]}"
    local before="" policy=/usr/sbin/policy-rc.d made=""
    sys_sshd_running && before=1
    if [[ ! -e $policy ]]; then  # keep the postinst from starting the ssh service
        printf '#!/bin/sh\n# temporary, from hpc-connect tests/ssh/sshd.sh install\nexit 101\n' >"$policy"
        chmod 755 "$policy"; made=1
    fi
    log "installing ${missing[*]}"
    local ok=""
    timeout 360 apt-get update -qq -o DPkg::Lock::Timeout=300 || log "apt-get update failed; trying the install anyway"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null 9>&- && ok=1
    [[ -z $made ]] || rm -f "$policy"
    [[ -n $ok ]] || die "apt-get install ${missing[*]} failed"
    if [[ -d /run/systemd/system ]]; then  # booted with systemd: keep it from starting later
        systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    fi
    if [[ -z $before ]] && sys_sshd_running; then
        log "the package started the system's sshd ($(tr -dc 0-9 </run/sshd.pid)); stopping it"
        kill -TERM "$(tr -dc 0-9 </run/sshd.pid)" 2>/dev/null || true
    fi
    for p in "${missing[@]}"; do installed "$p" || die "$p still not installed"; done
    log "installed ${missing[*]}"
}

# ---------------------------------------------------------------- server

write_files() {
    mkdir -p "$STATE"
    chmod 0700 "$STATE"
    [[ -s $STATE/ssh_host_ed25519_key ]] \
        || ssh-keygen -q -t ed25519 -N '' -C hpc-connect-test-host -f "$STATE/ssh_host_ed25519_key" </dev/null
    [[ -s $KEY && -s $KEY.pub ]] \
        || { rm -f "$KEY" "$KEY.pub"; ssh-keygen -q -t ed25519 -N '' -C hpc-connect-test -f "$KEY" </dev/null; }
    chmod 600 "$STATE/ssh_host_ed25519_key" "$KEY"
    cp "$KEY.pub" "$STATE/authorized_keys.new"
    chmod 600 "$STATE/authorized_keys.new"
    mv "$STATE/authorized_keys.new" "$STATE/authorized_keys"
    cat >"$CONF.new" <<EOF
# generated by hpc-connect tests/ssh/sshd.sh
ListenAddress 127.0.0.1
Port $PORT
HostKey $STATE/ssh_host_ed25519_key
PidFile $PIDFILE
AuthorizedKeysFile $STATE/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
MaxStartups 100:30:200
MaxSessions 100
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
    mv "$CONF.new" "$CONF"
    cat >"$CLIENT_CONF.new" <<EOF
# generated by hpc-connect tests/ssh/sshd.sh: ssh -F $CLIENT_CONF $ALIAS CMD
Host $ALIAS
    HostName 127.0.0.1
    Port $PORT
    User root
    IdentityFile $KEY
    IdentitiesOnly yes
    BatchMode yes
    UserKnownHostsFile $STATE/known_hosts
    StrictHostKeyChecking accept-new
    ConnectTimeout 10
    LogLevel ERROR
EOF
    mv "$CLIENT_CONF.new" "$CLIENT_CONF"
}

ssh_ok() {  # ssh_ok: our key gets a shell running `true` (the options the brief asks for)
    timeout 15 ssh -n -i "$KEY" -p "$PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile="$STATE/known_hosts" -o IdentitiesOnly=yes -o ConnectTimeout=5 \
        -o LogLevel=ERROR -F /dev/null root@127.0.0.1 true </dev/null >/dev/null 2>&1
}

do_start() {
    for prog in "$SSHD" ssh ssh-keygen; do
        command -v "$prog" >/dev/null || die "$prog not found (run: $0 install)"
    done
    [[ $(id -u) == 0 ]] || die "must run as root (tests log in as root)"
    if alive "$PIDFILE" && [[ -s $CONF && -s $CLIENT_CONF ]] && ssh_ok; then
        log "sshd already up ($(tr -dc 0-9 <"$PIDFILE")) on 127.0.0.1:$PORT"
        echo "$CLIENT_CONF"; return 0
    fi
    if alive "$PIDFILE"; then do_stop_server; fi  # running but not answering: start afresh
    write_files
    mkdir -p /run/sshd && chmod 0755 /run/sshd  # privilege separation directory
    "$SSHD" -t -f "$CONF" 2>"$STATE/sshd-t.err" || die "sshd -t rejects $CONF: $(head -n1 "$STATE/sshd-t.err")"
    rm -f "$PIDFILE"
    : >"$STATE/sshd.log"
    # sshd forks into the background first and then binds; it writes PidFile once it
    # listens, so a missing pid file with a dead sshd means it could not start
    "$SSHD" -f "$CONF" -E "$STATE/sshd.log" 9>&- </dev/null \
        || die "sshd failed to start: $(tail -n1 "$STATE/sshd.log" 2>/dev/null) (see $STATE/sshd.log)"
    local end=$((SECONDS + 10))
    until alive "$PIDFILE"; do
        if grep -qE 'fatal|Cannot bind|error: Bind' "$STATE/sshd.log" 2>/dev/null && ! pgrep -f -- "-f $CONF -E" >/dev/null; then
            die "sshd exited: $(tail -n1 "$STATE/sshd.log") (see $STATE/sshd.log)"
        fi
        ((SECONDS < end)) || die "sshd wrote no $PIDFILE within 10 s: $(tail -n1 "$STATE/sshd.log" 2>/dev/null)"
        sleep 0.1
    done
    end=$((SECONDS + 20))
    until ssh_ok; do
        alive "$PIDFILE" || die "sshd exited: $(tail -n1 "$STATE/sshd.log" 2>/dev/null) (see $STATE/sshd.log)"
        ((SECONDS < end)) || die "ssh to 127.0.0.1:$PORT does not work after 20 s; see $STATE/sshd.log"
        sleep 0.2
    done
    alive "$PIDFILE" || die "something else answers on 127.0.0.1:$PORT but our sshd is not running"
    log "sshd up ($(tr -dc 0-9 <"$PIDFILE")) on 127.0.0.1:$PORT; ssh -F $CLIENT_CONF $ALIAS CMD"
    echo "$CLIENT_CONF"
}

ours() {  # pids whose environment says they came in through 127.0.0.1:$PORT
    local f
    grep -lszE "^SSH_CONNECTION=[^ ]+ [0-9]+ 127\.0\.0\.1 $PORT\$" /proc/[0-9]*/environ \
        | while read -r f; do
            f=${f#/proc/}; f=${f%/environ}
            [[ $f == "$$" ]] || echo "$f"
        done
    return 0
}

do_stop_server() {
    local pid="" pids=() p i
    if alive "$PIDFILE"; then
        pid=$(tr -dc 0-9 <"$PIDFILE")
        # only an sshd started with our config counts as ours
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "sshd -f $CONF"; then
            pids=("$pid")
            # the per-connection sshd processes (they have no SSH_CONNECTION of their own)
            while read -r p; do [[ -n $p ]] && pids+=("$p"); done < <(ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ')
        else
            log "pid $pid in $PIDFILE is not our sshd ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)); not touching it"
        fi
    fi
    while read -r p; do [[ -n $p ]] && pids+=("$p"); done < <(ours)
    ((${#pids[@]})) || { rm -f "$PIDFILE"; return 0; }
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for i in $(seq 1 50); do  # 10 s
        local left=()
        for p in "${pids[@]}"; do
            [[ -r /proc/$p/stat && $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && left+=("$p")
        done
        ((${#left[@]})) || break
        if ((i == 50)); then
            log "still running after TERM and 10 s, killing: ${left[*]}"
            kill -KILL "${left[@]}" 2>/dev/null || true
            sleep 0.2
        else
            sleep 0.2
        fi
    done
    [[ -n $(ours) ]] && log "warning: processes from 127.0.0.1:$PORT still there: $(ours | tr '\n' ' ')"
    rm -f "$PIDFILE"
}

do_stop() {
    local mp
    if [[ -s $STATE/mounts ]]; then
        while read -r mp; do [[ -n $mp ]] && umount_one "$mp"; done <"$STATE/mounts"
    fi
    do_stop_server
    log "sshd on 127.0.0.1:$PORT stopped"
}

do_status() {
    local rc=0
    if alive "$PIDFILE"; then echo "sshd: running ($(tr -dc 0-9 <"$PIDFILE")) on 127.0.0.1:$PORT"
    else echo "sshd: stopped"; rc=1; fi
    if ((rc == 0)); then
        if ssh_ok; then echo "ssh: ok"; else echo "ssh: failing (see $STATE/sshd.log)"; rc=1; fi
    fi
    if [[ -s $STATE/mounts ]]; then
        local mp
        while read -r mp; do
            [[ -n $mp ]] || continue
            if mountpoint -q "$mp" 2>/dev/null; then echo "mount: $mp"; else echo "mount: $mp (gone)"; fi
        done <"$STATE/mounts"
    fi
    echo "$CLIENT_CONF"
    return $rc
}

# ---------------------------------------------------------------- sshfs

do_mount() {  # do_mount DIR MOUNTPOINT [OPTIONS]
    local dir=$1 mp=$2 opts=${3:-$DEFAULT_CACHE}
    command -v sshfs >/dev/null || die "sshfs not found (run: $0 install)"
    [[ -c /dev/fuse ]] || die "/dev/fuse missing (the container needs --device /dev/fuse)"
    [[ -d $dir ]] || die "$dir: not a directory"
    dir=$(cd "$dir" && pwd -P)
    mkdir -p "$mp"
    mp=$(cd "$mp" && pwd -P)
    mountpoint -q "$mp" && die "$mp is already a mount point"
    alive "$PIDFILE" || die "our sshd is not running (run: $0 start)"
    [[ -s $CLIENT_CONF ]] || write_files
    local err=$STATE/sshfs.err
    # sshfs forks into the background once the sftp session is up; bounded by timeout
    if ! timeout 30 sshfs -F "$CLIENT_CONF" "$ALIAS:$dir" "$mp" \
            -o "$opts" -o ServerAliveInterval=5,ServerAliveCountMax=3 9>&- </dev/null 2>"$err"; then
        die "sshfs $ALIAS:$dir $mp -o $opts failed: $(tr '\n' ' ' <"$err")"
    fi
    local end=$((SECONDS + 10))
    until mountpoint -q "$mp"; do
        ((SECONDS < end)) || die "$mp not mounted 10 s after sshfs returned: $(tr '\n' ' ' <"$err")"
        sleep 0.1
    done
    grep -qxF "$mp" "$STATE/mounts" 2>/dev/null || echo "$mp" >>"$STATE/mounts"
    log "mounted $dir at $mp (-o $opts)"
    echo "$mp"
}

umount_one() {  # umount_one MOUNTPOINT: no error if it is not mounted
    local mp=$1 fm
    fm=$(command -v fusermount3 || command -v fusermount || true)
    if mountpoint -q "$mp" 2>/dev/null; then
        if ! { [[ -n $fm ]] && timeout 15 "$fm" -u "$mp" 2>/dev/null; } \
           && ! timeout 15 umount "$mp" 2>/dev/null; then
            log "$mp busy or hung; lazy unmount"
            timeout 15 "${fm:-false}" -uz "$mp" 2>/dev/null || timeout 15 umount -l "$mp" \
                || die "could not unmount $mp"
        fi
    fi
    if [[ -s $STATE/mounts ]]; then
        grep -vxF "$mp" "$STATE/mounts" >"$STATE/mounts.new" || true
        mv "$STATE/mounts.new" "$STATE/mounts"
    fi
}

do_umount() {
    local mp=$1
    [[ -d $mp ]] && mp=$(cd "$mp" 2>/dev/null && pwd -P || echo "$mp")
    umount_one "$mp"
    log "unmounted $mp"
}

case ${1:-} in
    install) install_packages ;;
    start) locked do_start ;;
    stop) locked do_stop ;;
    status) do_status ;;
    conf) [[ -s $CLIENT_CONF ]] || locked write_files; echo "$CLIENT_CONF" ;;
    mount) (($# == 3 || $# == 4)) || { echo "usage: $0 mount DIR MOUNTPOINT [OPTIONS]" >&2; exit 2; }
           locked do_mount "$2" "$3" "${4:-}" ;;
    umount) (($# == 2)) || { echo "usage: $0 umount MOUNTPOINT" >&2; exit 2; }
            locked do_umount "$2" ;;
    *) echo "usage: $0 install|start|stop|status|conf|mount DIR MOUNTPOINT [OPTIONS]|umount MOUNTPOINT" >&2; exit 2 ;;
esac
