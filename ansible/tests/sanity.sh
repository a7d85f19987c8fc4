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
