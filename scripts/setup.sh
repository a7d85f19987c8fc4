# Sourced by scripts/demo and scripts/test: installs what building and testing need when it is
# missing, on Debian-family (apt-get) and RHEL-family (dnf/yum) machines.

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

ensure_tools() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo is missing; install a Rust toolchain (rustup) first" >&2
        exit 2
    fi
    command -v rpm >/dev/null 2>&1 || install_packages rpm
    command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || install_packages gcc
    ensure_runit
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
