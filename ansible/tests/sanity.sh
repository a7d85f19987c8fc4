#!/usr/bin/env bash
# ansible-test sanity on the collection upgrade.fleet (this folder).
#
# Usage: ansible/tests/sanity.sh [ansible-test sanity options, e.g. --test validate-modules]
#
# Makes the virtual environment with ansible-core when it is missing (scripts/setup.sh's
# ensure_ansible: $FLEET_ANSIBLE_VENV, else CARGO_TARGET_DIR's ansible-venv), copies the
# collection into a temporary ansible_collections/upgrade/fleet tree (ansible-test needs that
# path), and runs the sanity tests that need neither docker nor the network with the venv's
# Python. Idempotent: nothing outside the venv and the temporary tree is written.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
# shellcheck source=../../scripts/setup.sh
. scripts/setup.sh
ensure_ansible
venv=$(realpath -m "${FLEET_ANSIBLE_VENV:-${CARGO_TARGET_DIR:-target}/ansible-venv}")
python=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test runs each sanity test in a virtual environment of its own, which it bootstraps with
# pip's get-pip.py from ci-files.testing.ansible.com (cached in ~/.ansible/test/cache). Where that
# host cannot be reached, a stand-in installs the same pip from the package index: the bundled
# pip (ensurepip) installs the pinned pip version.
pip_version=$("$venv/bin/python" - <<'PY'
import os, re, ansible_test
path = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
print(re.search(r"pip='([^']+)'", open(path).read()).group(1))
PY
)
get_pip=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -e "$get_pip" ]; then
    mkdir -p "$(dirname "$get_pip")"
    if ! curl -fsS -m 30 -o "$get_pip.download" "https://ci-files.testing.ansible.com/ansible-test/get-pip-$pip_version.py" 2>/dev/null; then
        cat >"$get_pip.download" <<'PY'
# Stand-in for get-pip.py (ansible/tests/sanity.sh): ensurepip's bundled pip installs the pip
# that ansible-test pins, with the same arguments. NB: ansible-test hides pip's configuration
# (PIP_CONFIG_FILE=/dev/null); the system's CA bundle is named, for TLS-inspecting proxies (the
# pinned pip then trusts the system's store by itself).
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap()
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
for bundle in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
    if os.path.exists(bundle):
        args += ["--cert", bundle]
        break
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
    fi
    mv "$get_pip.download" "$get_pip"
fi

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
dest="$tree/ansible_collections/upgrade/fleet"
mkdir -p "$dest"
# the collection as git would ship it: no test output, no caches
tar -C "$here" --exclude=tests/output --exclude=__pycache__ --exclude='*.tar.gz' -cf - . | tar -C "$dest" -xf -
# NB: ansible-test asks git which files belong to the collection, when it is in a repository
git -C "$dest" init -q && git -C "$dest" add -A

cd "$dest"
# NB: --python runs the tests in this venv's interpreter; the tests that need docker or pulling
# requirements from the network are not among those run without --docker/--venv
PATH="$venv/bin:$PATH" "$venv/bin/ansible-test" sanity --python "$python" --color no "$@"
