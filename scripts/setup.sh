# Sourced by scripts/demo and scripts/test: installs what building and testing need when it is
# missing, on Debian-family (apt-get) and RHEL-family (dnf/yum) machines, and ends what they
# start when they end (`at_exit`).

# at_exit FUNCTION: runs FUNCTION once when the script ends, whatever ends it: its last command, a
# failure, Ctrl-C (INT), TERM or HUP. The script then exits with its status, or dies of the signal
# again so that its caller sees that signal.
# NB: bash runs a trap only once the foreground command ends; it does not interrupt it
at_exit() {
    local signal
    for signal in EXIT INT TERM HUP; do
        # shellcheck disable=SC2064 # the function and the signal are meant to be expanded now
        trap "_at_exit $1 $signal" "$signal"
    done
}

_at_exit() { # FUNCTION EXIT|SIGNAL
    local status=$?
    trap - EXIT INT TERM HUP
    "$1" || true
    if [ "$2" != EXIT ]; then
        kill -s "$2" $$
    fi
    exit "$status"
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: installing $* needs root; run as root or install it yourself" >&2
        exit 2
    fi
}

install_packages() {
    need_root "$@"
    if command -v apt-get >/dev/null 2>&1; then
        if [ -z "${_apt_updated:-}" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            _apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q "$@"
    elif command -v yum >/dev/null 2>&1; then
        yum install -y -q "$@"
    else
        echo "error: no apt-get, dnf or yum to install $*" >&2
        exit 2
    fi
}

# install_either DEBIAN RHEL: the package of the first name on Debian-family machines, of the
# second on RHEL-family ones.
install_either() {
    if command -v apt-get >/dev/null 2>&1; then
        install_packages "$1"
    else
        install_packages "$2"
    fi
}

ensure_tools() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo is missing; install a Rust toolchain (rustup) first" >&2
        exit 2
    fi
    command -v rpm >/dev/null 2>&1 || install_packages rpm
    command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || install_packages gcc
    ensure_runit
}

# dnf and createrepo_c: the dnf backend's tests install into a sandbox root from a repository
# made with createrepo_c (Debian packages `dnf` and `createrepo-c`).
ensure_dnf() {
    command -v dnf >/dev/null 2>&1 || install_packages dnf
    if ! command -v createrepo_c >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            install_packages createrepo-c
        else
            install_packages createrepo_c
        fi
    fi
}

# Test hosts (tests/hosts/hosts.sh): systemd-nspawn boots Debian roots made by mmdebstrap from
# this machine's own apt sources; the base image is built once and cached under target/hosts.
ensure_hosts() {
    local started=$SECONDS
    if ! command -v systemd-nspawn >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            install_packages systemd-container mmdebstrap
        else
            # NB: the hosts are Debian roots, built from a Debian machine's apt sources
            echo "error: the test hosts need systemd-nspawn and mmdebstrap on a Debian machine" >&2
            exit 2
        fi
    fi
    tests/hosts/hosts.sh sweep
    tests/hosts/hosts.sh confined
    if tests/hosts/hosts.sh check; then
        tests/hosts/hosts.sh image >/dev/null
        echo "test hosts: base image ready in $((SECONDS - started)) s"
    else
        echo "WARNING: this kernel refuses containers; the tests on real hosts will be SKIPPED" >&2
    fi
}

# runit supervises the demo's services and the service tests' daemons.
ensure_runit() {
    if command -v sv >/dev/null 2>&1 && command -v runsvdir >/dev/null 2>&1; then
        return
    fi
    if command -v apt-get >/dev/null 2>&1; then
        install_packages runit
    else
        # NB: RHEL, Rocky and Alma ship no runit package (nor does EPEL for every release)
        echo "error: runit (sv, runsvdir) is missing and this system has no package for it;" >&2
        echo "       build it from https://smarden.org/runit/ or run the demo and tests on Debian" >&2
        exit 2
    fi
}

wait_for() { # SECONDS COMMAND...
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.5
    done
}

postgres_ok() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc 'SELECT 1'; }
mariadb_ok() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1'; }

# PostgreSQL on 127.0.0.1:5432, user postgres without a password (trust on loopback), and the
# client programs restore points use (pg_dump, pg_restore, psql) of its major version or newer.
ensure_postgres() {
    ensure_postgres_clients
    start_postgres
    ensure_postgres_client_version
}

ensure_postgres_clients() {
    if command -v pg_dump >/dev/null 2>&1 && command -v pg_restore >/dev/null 2>&1 &&
        command -v psql >/dev/null 2>&1; then
        return 0
    fi
    install_either postgresql-client postgresql
}

# NB: pg_dump refuses a server of a newer major version than its own
ensure_postgres_client_version() {
    local server client
    server=$(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc 'SHOW server_version_num')
    server=$((server / 10000))
    client=$(pg_dump --version | awk '{ print $3 }' | grep -oE '^[0-9]+')
    [ "$client" -ge "$server" ] || install_either "postgresql-client-$server" "postgresql$server"
}

start_postgres() {
    postgres_ok >/dev/null 2>&1 && return 0
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            install_packages postgresql postgresql-client
        else
            echo "error: PostgreSQL is not running on 127.0.0.1:5432; start it (trust auth for user postgres on loopback)" >&2
            exit 2
        fi
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    wait_for 30 pg_isready -q -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL did not start" >&2; exit 2; }
    if ! postgres_ok >/dev/null 2>&1; then
        sed -i '1i host all postgres 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        wait_for 10 postgres_ok || { echo "error: cannot reach PostgreSQL as postgres on 127.0.0.1" >&2; exit 2; }
    fi
}

# MariaDB on 127.0.0.1:3306, user root with an empty password, and the client programs restore
# points use (mariadb-dump, mariadb; or mysqldump, mysql).
ensure_mariadb() {
    ensure_mariadb_clients
    start_mariadb
}

ensure_mariadb_clients() {
    if { command -v mariadb-dump || command -v mysqldump; } >/dev/null 2>&1 &&
        { command -v mariadb || command -v mysql; } >/dev/null 2>&1; then
        return 0
    fi
    install_either mariadb-client mariadb
}

start_mariadb() {
    mariadb_ok >/dev/null 2>&1 && return 0
    if [ ! -x /usr/sbin/mariadbd ]; then
        if command -v apt-get >/dev/null 2>&1; then
            install_packages mariadb-server mariadb-client
        else
            echo "error: MariaDB is not running on 127.0.0.1:3306; start it (root, empty password)" >&2
            exit 2
        fi
    fi
    if ! mariadb -u root -e 'SELECT 1' >/dev/null 2>&1; then
        install -d -o mysql -g mysql /run/mysqld
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        wait_for 60 mariadb -u root -e 'SELECT 1' || { echo "error: MariaDB did not start" >&2; exit 2; }
    fi
    if ! mariadb_ok >/dev/null 2>&1; then
        # NB: Debian's root@localhost authenticates by unix socket only; the tests connect by TCP
        mariadb -u root -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES"
        wait_for 10 mariadb_ok || { echo "error: cannot reach MariaDB as root on 127.0.0.1" >&2; exit 2; }
    fi
}

# ensure_ansible: a Python virtual environment with ansible-core, for the tests of the Ansible
# collection in ansible/ (tests/integration/ansible.rs, ansible/tests/sanity.sh), in
# $FLEET_ANSIBLE_VENV or else CARGO_TARGET_DIR's (default target/) ansible-venv; made when missing.
# NB: a venv cannot be moved (its scripts name its path), so a marker says it is whole.
ensure_ansible() {
    local venv=${FLEET_ANSIBLE_VENV:-${CARGO_TARGET_DIR:-target}/ansible-venv}
    venv=$(realpath -m "$venv")
    [ -e "$venv/.complete" ] && return 0
    command -v python3 >/dev/null 2>&1 || install_packages python3
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        install_either python3-venv python3
    fi
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'ansible-core>=2.15'
    touch "$venv/.complete"
}
