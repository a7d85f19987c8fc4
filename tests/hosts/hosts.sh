#!/usr/bin/env bash
# Test hosts: Debian roots with systemd as PID 1, booted with systemd-nspawn on overlays of one
# cached base image, each in a network namespace of its own, wired to a bridge in a "lab" network
# namespace that has no interface and no route to the outside. Nothing in the machine's own
# network namespace gets an address on the lab network.
#
#   hosts.sh check                    exit 0 when this machine can boot test hosts, else 3 and why
#   hosts.sh image                    builds the base image once (cached under target/hosts)
#   hosts.sh lab LAB OWNER            makes the lab namespace LAB; OWNER is the PID it belongs to
#   hosts.sh up LAB N [NSPAWN-ARG…]   boots host N (address 10.231.0.N) of LAB; prints its root
#   hosts.sh booted LAB N             waits until host N is up again (after a reboot)
#   hosts.sh reboots LAB N            how many times host N rebooted
#   hosts.sh exec LAB N CMD…          runs CMD in host N (all its namespaces, a clean environment)
#   hosts.sh in LAB CMD…              runs CMD in the lab namespace (what talks to the hosts)
#   hosts.sh key LAB                  an ssh key for the lab's hosts (made once); prints its path
#   hosts.sh postgres LAB             a PostgreSQL server for the lab's hosts on 10.231.0.1:5432
#                                     (user postgres, trust), in the lab namespace
#   hosts.sh down LAB                 ends LAB's hosts (by recorded PID) and the lab; idempotent
#   hosts.sh sweep                    ends every lab whose owner process is gone
#   hosts.sh confined                 exit 0 when the machine's namespace has nothing of a lab
#
# Labs and hosts are recorded under $HOSTS_DIR/run/LAB (HOSTS_DIR defaults to target/hosts).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
HOSTS_DIR=${HOSTS_DIR:-${CARGO_TARGET_DIR:-$repo/target}/hosts}
# NB: the same subnet in every lab: each lab is a namespace of its own.
SUBNET=10.231.0
# What a host has: systemd as init, what the tests drive it with, and what the product needs.
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,rpm,python3,iproute2,procps,sqlite3,postgresql-client
BOOT_TIMEOUT=${HOSTS_BOOT_TIMEOUT:-60}

die() {
    echo "hosts.sh: $*" >&2
    exit 1
}

say() {
    echo "hosts.sh: $*" >&2
}

# The base image's name: changes with what goes into it.
image_name() {
    local suite
    suite=$(suite)
    echo "base-$suite-$(echo "$suite $PACKAGES" | sha256sum | cut -c1-12)"
}

# The Debian suite this machine runs (its apt sources' first suite).
suite() {
    local s
    s=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$s" ] || die "cannot tell this machine's Debian suite from /etc/os-release"
    echo "$s"
}

# The machine's own apt sources, as mmdebstrap mirror arguments (never a host name of ours).
mirrors() {
    local f
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
        [ -s "$f" ] || continue
        grep -qE '^[[:space:]]*(deb |Types:)' "$f" || continue
        echo "$f"
    done
}

cmd_check() {
    local missing=() c
    for c in systemd-nspawn mmdebstrap nsenter ip unshare; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "missing: ${missing[*]}" >&2
        exit 3
    fi
    [ "$(id -u)" -eq 0 ] || { echo "test hosts need root" >&2; exit 3; }
    if ! unshare --mount --pid --net --uts --ipc --fork true 2>/dev/null; then
        echo "the kernel refuses new namespaces (unshare --mount --pid --net failed)" >&2
        exit 3
    fi
    local probe
    probe=$(mktemp -d)
    mkdir -p "$probe"/{l,u,w,m}
    if ! mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
        rm -rf "$probe"
        echo "the kernel refuses overlay mounts" >&2
        exit 3
    fi
    umount "$probe/m"
    rm -rf "$probe"
}

# Builds the base image once: a tarball, and the tree the hosts' overlays stand on.
cmd_image() {
    local name tar tree
    name=$(image_name)
    tar=$HOSTS_DIR/$name.tar
    tree=$HOSTS_DIR/$name
    mkdir -p "$HOSTS_DIR"
    exec 9>"$HOSTS_DIR/image.lock"
    flock 9
    if [ ! -s "$tar" ]; then
        local started=$SECONDS args=() m
        while read -r m; do args+=("$m"); done < <(mirrors)
        [ ${#args[@]} -gt 0 ] || die "no apt sources on this machine to build the image from"
        say "building the base image $name (once; cached in $tar)"
        rm -f "$tar.part"
        mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
            --customize-hook='echo upgrade-host > "$1/etc/hostname"' \
            --customize-hook='rm -f "$1/etc/machine-id"; touch "$1/etc/machine-id"' \
            --customize-hook='chroot "$1" systemctl mask systemd-networkd-wait-online.service getty@tty1.service console-getty.service systemd-resolved.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true' \
            --customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=host0 eth0\n" > "$1/etc/systemd/network/80-lab.network"' \
            --format=tar "$(suite)" "$tar.part" "${args[@]}" \
            || die "mmdebstrap failed"
        mv "$tar.part" "$tar"
        # the images of other package lists (not in use: this one is built under the lock)
        find "$HOSTS_DIR" -maxdepth 1 -name 'base-*' ! -name "$name" ! -name "$name.tar" -exec rm -rf {} +
        say "base image built in $((SECONDS - started)) s"
    fi
    if [ ! -e "$tree/.complete" ]; then
        rm -rf "$tree"
        mkdir -p "$tree"
        tar -C "$tree" -xf "$tar"
        touch "$tree/.complete"
    fi
    echo "$tree"
}

lab_dir() { echo "$HOSTS_DIR/run/$1"; }
lab_ns() { echo "upgrade-lab-$1"; }
host_ns() { echo "upgrade-$1-h$2"; }

cmd_lab() {
    local lab=$1 owner=$2 dir ns
    dir=$(lab_dir "$lab")
    ns=$(lab_ns "$lab")
    mkdir -p "$dir"
    echo "$owner" >"$dir/owner"
    if ! ip netns list | grep -qw "^$ns"; then
        ip netns add "$ns"
    fi
    ip -n "$ns" link set lo up
    if ! ip -n "$ns" link show br0 >/dev/null 2>&1; then
        ip -n "$ns" link add br0 type bridge
        ip -n "$ns" addr add "$SUBNET.1/24" dev br0
        ip -n "$ns" link set br0 up
    fi
}

# The PID of systemd in host N (the child of its systemd-nspawn).
leader() {
    local dir pid child
    dir=$(lab_dir "$1")/h$2
    pid=$(cat "$dir/nspawn.pid" 2>/dev/null) || die "host $2 of lab $1 is not up"
    child=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | awk '{print $1}')
    [ -n "$child" ] || die "host $2 of lab $1 has no init (systemd-nspawn $pid)"
    echo "$child"
}

cmd_up() {
    local lab=$1 n=$2
    shift 2
    local tree dir ns hns merged started=$SECONDS
    tree=$(cmd_image)
    dir=$(lab_dir "$lab")/h$n
    ns=$(lab_ns "$lab")
    hns=$(host_ns "$lab" "$n")
    [ -e "$(lab_dir "$lab")/owner" ] || die "no lab $lab (hosts.sh lab first)"
    [ ! -e "$dir/nspawn.pid" ] || die "host $n of lab $lab is already up"
    mkdir -p "$dir"/{upper,work,merged}
    merged=$dir/merged
    mount -t overlay overlay -o "lowerdir=$tree,upperdir=$dir/upper,workdir=$dir/work" "$merged"
    echo "h$n" >"$merged/etc/hostname"
    if [ -e "$(lab_dir "$lab")/id_ed25519.pub" ]; then
        install -d -m 700 "$merged/root/.ssh"
        install -m 600 "$(lab_dir "$lab")/id_ed25519.pub" "$merged/root/.ssh/authorized_keys"
    fi
    # NB: the host side of the link is made in the lab namespace, its peer moved straight into
    # the host's: neither end ever exists in the machine's own namespace.
    ip netns add "$hns"
    ip -n "$ns" link add "v$n" type veth peer name eth0 netns "$hns"
    ip -n "$ns" link set "v$n" master br0 up
    ip -n "$hns" link set lo up
    ip -n "$hns" addr add "$SUBNET.$n/24" dev eth0
    ip -n "$hns" link set eth0 up
    # NB: not with the test run's token (scripts/test): its hosts are ended by `down` or `sweep`,
    # which let systemd power them off, not killed with the test run's processes
    env -u SCRIPTS_TEST_RUN setsid "$0" keep "$lab" "$n" "$@" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/keeper.pid"
    await_boot "$lab" "$n"
    say "host $n of lab $lab up in $((SECONDS - started)) s"
    echo "$merged"
}

# Waits until host N's systemd says it is up: `running`, or `degraded` (a unit failed; the tests
# say which matters).
await_boot() {
    local lab=$1 n=$2 dir state="" pid keeper
    dir=$(lab_dir "$lab")/h$n
    keeper=$(cat "$dir/keeper.pid")
    for _ in $(seq $((BOOT_TIMEOUT * 10))); do
        if ! kill -0 "$keeper" 2>/dev/null; then
            tail -20 "$dir/console.log" >&2
            die "host $n of lab $lab did not boot"
        fi
        if pid=$(leader "$lab" "$n" 2>/dev/null); then
            state=$(nsenter -t "$pid" -a systemctl is-system-running 2>/dev/null || true)
            case $state in running | degraded)
                echo "$pid $(starttime "$pid")" >"$dir/leader"
                return 0
                ;;
            esac
        fi
        sleep 0.1
    done
    tail -20 "$dir/console.log" >&2
    die "host $n of lab $lab did not boot within ${BOOT_TIMEOUT}s (state: ${state:-none})"
}

# The keeper of host N: boots it, and again after each reboot, until `down` marks it ended.
# NB: a host that reboots (`systemctl reboot` in it) makes systemd-nspawn exit with 133; the
# keeper boots it again, as systemd-nspawn@.service does.
cmd_keep() {
    local lab=$1 n=$2 dir merged status
    shift 2
    dir=$(lab_dir "$lab")/h$n
    merged=$dir/merged
    while :; do
        SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_NSPAWN_TMPFS_TMP=0 systemd-nspawn --quiet -b \
            -D "$merged" --register=no --keep-unit --machine="upgrade-$lab-h$n" \
            --network-namespace-path="/run/netns/$(host_ns "$lab" "$n")" --console=read-only \
            "$@" </dev/null >>"$dir/console.log" 2>&1 &
        echo $! >"$dir/nspawn.pid"
        status=0
        wait $! || status=$?
        if [ "$status" != 133 ] || [ -e "$dir/ended" ]; then
            break
        fi
        echo "$(date +%s.%N)" >>"$dir/reboots"
    done
    rm -f "$dir/nspawn.pid"
}

cmd_exec() {
    local lab=$1 n=$2 pid
    shift 2
    pid=$(leader "$lab" "$n")
    exec nsenter -t "$pid" -a -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

cmd_in() {
    local lab=$1
    shift
    [ -e "$(lab_dir "$lab")/owner" ] || die "no lab $lab"
    exec ip netns exec "$(lab_ns "$lab")" "$@"
}

cmd_key() {
    local dir
    dir=$(lab_dir "$1")
    [ -e "$dir/owner" ] || die "no lab $1"
    [ -e "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C "upgrade-lab-$1" -f "$dir/id_ed25519"
    echo "$dir/id_ed25519"
}

# A PostgreSQL server of the machine's own binaries, its data in the lab's directory, listening
# only on the lab's bridge address inside the lab namespace.
cmd_postgres() {
    local lab=$1 dir bin pid
    dir=$(lab_dir "$lab")/postgres
    [ -e "$(lab_dir "$lab")/owner" ] || die "no lab $lab"
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$bin/postgres" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
    if [ -e "$dir/postmaster.pid" ] && kill -0 "$(head -1 "$dir/postmaster.pid")" 2>/dev/null; then
        return 0
    fi
    mkdir -p "$dir"
    chown postgres: "$dir"
    if [ ! -e "$dir/PG_VERSION" ]; then
        runuser -u postgres -- "$bin/initdb" -A trust -U postgres -D "$dir" >/dev/null
        echo "host all all $SUBNET.0/24 trust" >>"$dir/pg_hba.conf"
    fi
    env -u SCRIPTS_TEST_RUN ip netns exec "$(lab_ns "$lab")" runuser -u postgres -- \
        "$bin/pg_ctl" -D "$dir" -s -w -t 30 -l "$dir/log" \
        -o "-c listen_addresses=$SUBNET.1 -c unix_socket_directories=$dir -c fsync=off" start ||
        { tail -20 "$dir/log" >&2; die "PostgreSQL of lab $lab did not start"; }
    pid=$(head -1 "$dir/postmaster.pid")
    echo "$pid $(starttime "$pid")" >"$(lab_dir "$lab")/postgres.pid"
}

postgres_down() {
    local lab=$1 recorded
    recorded=$(cat "$(lab_dir "$lab")/postgres.pid" 2>/dev/null) || return 0
    if [ "$(starttime "${recorded%% *}")" = "${recorded#* }" ]; then
        # SIGINT: PostgreSQL's fast shutdown (clients disconnected)
        kill -INT "${recorded%% *}" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "${recorded%% *}" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -KILL "${recorded%% *}" 2>/dev/null || true
    fi
}

# Ends one host: its systemd-nspawn by recorded PID (SIGTERM asks systemd to power off; SIGKILL
# after 10 s), its overlay, its namespace.
host_down() {
    local lab=$1 dir=$2 n pid keeper
    n=${dir##*/h}
    touch "$dir/ended"
    keeper=$(cat "$dir/keeper.pid" 2>/dev/null || true)
    if pid=$(cat "$dir/nspawn.pid" 2>/dev/null) && [ -n "$pid" ]; then
        # NB: only a systemd-nspawn of this host is ended, never a reused PID.
        if grep -qsF "upgrade-$lab-h$n" "/proc/$pid/cmdline"; then
            end_pid "$pid"
        fi
    fi
    if [ -n "$keeper" ] && [ "$(cat "/proc/$keeper/stat" 2>/dev/null | awk '{print $6}')" = "$keeper" ]; then
        # NB: the keeper leads a session of its own (setsid), which a reused PID would not
        end_pid "$keeper"
    fi
    # a host whose systemd-nspawn was killed (SIGKILL leaves its init running): its init, by the
    # PID and start time recorded at its boot; the whole PID namespace ends with it
    local recorded
    if recorded=$(cat "$dir/leader" 2>/dev/null) && [ -n "$recorded" ] &&
        [ "$(starttime "${recorded%% *}")" = "${recorded#* }" ]; then
        kill -KILL "${recorded%% *}" 2>/dev/null || true
    fi
    rm -f "$dir/nspawn.pid" "$dir/keeper.pid"
    if mountpoint -q "$dir/merged"; then
        umount "$dir/merged" 2>/dev/null || umount -l "$dir/merged"
    fi
    ip netns del "$(host_ns "$lab" "$n")" 2>/dev/null || true
    rm -rf "$dir"
}

# When process PID started (in clock ticks since boot): with its PID, names it for good.
starttime() {
    awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null
}

# SIGTERM (systemd-nspawn asks the host's systemd to power off), SIGKILL after 10 s.
end_pid() {
    local _
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
}

cmd_down() {
    local lab=$1 dir h
    dir=$(lab_dir "$lab")
    [ -d "$dir" ] || return 0
    # NB: every host powers off at the same time
    for h in "$dir"/h*; do
        [ -d "$h" ] || continue
        host_down "$lab" "$h" &
    done
    wait
    # NB: the server goes after the hosts, which close their connections as they power off
    postgres_down "$lab"
    ip netns del "$(lab_ns "$lab")" 2>/dev/null || true
    rm -rf "$dir"
}

cmd_sweep() {
    local dir owner
    for dir in "$HOSTS_DIR"/run/*; do
        [ -d "$dir" ] || continue
        owner=$(cat "$dir/owner" 2>/dev/null || echo 0)
        if [ "$owner" = 0 ] || ! kill -0 "$owner" 2>/dev/null; then
            say "ending lab ${dir##*/}, left by process $owner"
            cmd_down "${dir##*/}"
        fi
    done
}

# Nothing of a lab in the machine's own namespace: no address or route on the lab subnet, no
# interface of ours.
cmd_confined() {
    local bad
    bad=$( { ip -o addr show; ip route show table all; } | grep -F "$SUBNET." || true)
    bad+=$(ip -o link show | grep -E ': (v[0-9]+|br0)[@:]' || true)
    if [ -n "$bad" ]; then
        echo "the machine's own namespace has lab addresses, routes or links:" >&2
        echo "$bad" >&2
        exit 1
    fi
}

[ $# -ge 1 ] || die "usage: hosts.sh check|image|lab|up|exec|down|sweep|confined …"
command=$1
shift
case $command in
    check) cmd_check ;;
    image) cmd_image ;;
    lab) [ $# -eq 2 ] || die "usage: hosts.sh lab LAB OWNER"; cmd_lab "$@" ;;
    up) [ $# -ge 2 ] || die "usage: hosts.sh up LAB N [NSPAWN-ARG…]"; cmd_up "$@" ;;
    keep) cmd_keep "$@" ;;
    in) [ $# -ge 2 ] || die "usage: hosts.sh in LAB CMD…"; cmd_in "$@" ;;
    key) [ $# -eq 1 ] || die "usage: hosts.sh key LAB"; cmd_key "$1" ;;
    postgres) [ $# -eq 1 ] || die "usage: hosts.sh postgres LAB"; cmd_postgres "$1" ;;
    reboots) [ $# -eq 2 ] || die "usage: hosts.sh reboots LAB N"; wc -l 2>/dev/null <"$(lab_dir "$1")/h$2/reboots" || echo 0 ;;
    booted) [ $# -eq 2 ] || die "usage: hosts.sh booted LAB N"; await_boot "$@" ;;
    exec) [ $# -ge 3 ] || die "usage: hosts.sh exec LAB N CMD…"; cmd_exec "$@" ;;
    down) [ $# -eq 1 ] || die "usage: hosts.sh down LAB"; cmd_down "$1" ;;
    sweep) cmd_sweep ;;
    confined) cmd_confined ;;
    *) die "unknown command \`$command\`" ;;
esac
