#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright (c) the upgrade authors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: upgrade
short_description: Upgrade, check, health-gate, roll back or finalize a product with real-upgrade
version_added: "1.0.0"
description:
  - Runs C(real-upgrade --json) on the managed host and reports its JSON document.
  - O(action=upgrade) takes the product to the newest release (O(state=latest)) or to O(version), with the
    tool's own preflight checks, restore point and health gate. A release that fails its health checks is
    rolled back by the tool itself (exit code 6); the module then fails with RV(rolled_back=true).
  - O(action=check) runs the preflight checks alone and fails when one inhibits the upgrade (exit code 3).
  - O(action=health) runs the health checks against the installed release and fails when one fails (exit code 7).
  - O(action=rollback) takes the host back to the restore point of its latest run (or of O(rollback_run)).
  - O(action=finalize) applies the contract migrations (C(real-upgrade migrations finalize)) once every node
    of the fleet runs the new release.
  - O(action=plan) and O(action=status) only report.
  - Every run is non-interactive (C(--yes)).
  - In check mode, O(action=upgrade) runs C(real-upgrade plan --json) and reports the versions as a diff, and
    O(action=rollback) runs C(real-upgrade rollback --dry-run --json); nothing changes.
author:
  - The upgrade authors (@upgrade)
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details:
      - O(action=upgrade) runs C(real-upgrade plan), O(action=rollback) runs C(real-upgrade rollback --dry-run).
      - O(action=finalize) changes nothing in check mode and reports no change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The installed release before and after O(action=upgrade) and O(action=rollback).
options:
  action:
    description:
      - What to run.
    type: str
    default: upgrade
    choices: [upgrade, rollback, health, finalize, plan, check, status]
  state:
    description:
      - V(latest) upgrades to the newest release of the repository. Mutually exclusive with O(version).
    type: str
    choices: [latest]
  version:
    description:
      - The release to upgrade to (C(--to VERSION)), through every required stop.
      - Also the target of O(action=check) and O(action=plan).
    type: str
  root:
    description:
      - The root of the managed system (C(--root)); a sandbox directory in tests.
    type: path
    default: /
  binary:
    description:
      - Path of the C(real-upgrade) executable on the managed host.
    type: path
    default: /usr/sbin/real-upgrade
  config:
    description:
      - Configuration file to read instead of C(ROOT/etc/upgrade/upgrade.toml) (C(--config)).
    type: path
  download_only:
    description:
      - With O(action=upgrade), download and verify every package of the plan, then stop (C(--download-only)).
    type: bool
    default: false
  restore_point:
    description:
      - With O(action=upgrade), take a restore point. V(false) passes C(--no-restore-point), after which the run
        cannot be rolled back.
    type: bool
    default: true
  rollback_run:
    description:
      - With O(action=rollback), the run whose restore point to go back to (C(--to-run ID)).
    type: int
  wait:
    description:
      - With O(action=health), retry failing checks until the configured health timeout (C(--wait)).
    type: bool
    default: false
notes:
  - The module runs C(real-upgrade) on the managed host; the repository and its signing key come from the host's
    configuration.
  - Exit codes of C(real-upgrade) are returned as RV(rc); anything else than 0 fails the task, with the tool's
    JSON error document in RV(result).
seealso:
  - name: real-upgrade(8)
    description: The command line this module wraps.
    link: https://github.com/upgrade/upgrade/blob/main/man/real-upgrade.8
"""

EXAMPLES = r"""
- name: Upgrade the product to the newest release
  upgrade.fleet.upgrade:
    state: latest

- name: Upgrade to one release, on a sandbox root
  upgrade.fleet.upgrade:
    version: 2.0.0
    root: /srv/sandbox

- name: Preflight checks only; fails on any inhibitor
  upgrade.fleet.upgrade:
    action: check

- name: Health gate, waiting for the checks to pass
  upgrade.fleet.upgrade:
    action: health
    wait: true

- name: Take the host back to the restore point of its latest run
  upgrade.fleet.upgrade:
    action: rollback

- name: Apply the contract migrations once every node runs the new release
  upgrade.fleet.upgrade:
    action: finalize
"""

RETURN = r"""
rc:
  description: Exit code of C(real-upgrade).
  returned: always
  type: int
  sample: 0
cmd:
  description: The command line that ran.
  returned: always
  type: list
  elements: str
  sample: [/usr/sbin/real-upgrade, --root, /, --json, --yes]
result:
  description:
    - The JSON document C(real-upgrade --json) printed, as a dictionary (or a list for some commands).
    - On failure, the error document with C(result=failed), C(exit_code), C(error), C(hint), and where they apply
      the preflight C(results), the failed C(health) report, the C(run) and the C(rollback_run).
  returned: when the command printed JSON
  type: raw
  sample: {"result": "upgraded", "product": "demo", "from": "1.0.0", "to": "2.0.0", "run_id": 2}
before_version:
  description: The release installed before the task (null when nothing was installed).
  returned: for O(action=upgrade) and O(action=rollback)
  type: str
  sample: 1.0.0
after_version:
  description: The release installed after the task (or that would be, in check mode).
  returned: for O(action=upgrade) and O(action=rollback)
  type: str
  sample: 2.0.0
rolled_back:
  description: The health checks failed and C(real-upgrade) put the host back to the run's restore point (exit code 6).
  returned: always
  type: bool
  sample: false
reboot_required:
  description: A hook asked for a reboot (exit code 10); the run resumes with the next O(action=upgrade).
  returned: always
  type: bool
  sample: false
inhibitors:
  description: The keys of the preflight checks that inhibit the upgrade.
  returned: for O(action=check) and an inhibited O(action=upgrade)
  type: list
  elements: str
  sample: [memory, "free-space:/var"]
stdout:
  description: Standard output of C(real-upgrade).
  returned: always
  type: str
stderr:
  description: Standard error of C(real-upgrade), its messages for people.
  returned: always
  type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

# exit codes of real-upgrade (SPEC section 10)
EXIT_INHIBITED = 3
EXIT_ROLLED_BACK = 6
EXIT_UNHEALTHY = 7
EXIT_REBOOT = 10

# the `result` of a run document that changed nothing
UNCHANGED_RESULTS = ("up-to-date", "planned", "nothing-installed")


def parse_json(text):
    """The JSON document on stdout, or None."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def inhibitor_keys(doc):
    if not isinstance(doc, dict):
        return []
    return [r.get("key") for r in doc.get("results") or [] if isinstance(r, dict) and r.get("status") == "inhibitor"]


class Upgrade(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.outcome = dict(changed=False, rolled_back=False, reboot_required=False)

    def base(self):
        cmd = [self.params["binary"], "--root", self.params["root"]]
        if self.params["config"]:
            cmd += ["--config", self.params["config"]]
        return cmd + ["--json"]

    def to(self):
        return ["--to", self.params["version"]] if self.params["version"] else []

    def run(self, args, allowed=(0,)):
        """Runs real-upgrade; a code outside `allowed` fails the task. Returns (rc, document)."""
        cmd = self.base() + args
        rc, out, err = self.module.run_command(cmd, environ_update={"NO_COLOR": "1"})
        doc = parse_json(out)
        self.outcome.update(rc=rc, cmd=cmd, stdout=out, stderr=err)
        if doc is not None:
            self.outcome["result"] = doc
        if rc not in allowed:
            self.fail(rc, doc, err)
        return rc, doc

    def fail(self, rc, doc, err):
        self.outcome["rolled_back"] = rc == EXIT_ROLLED_BACK
        self.outcome["reboot_required"] = rc == EXIT_REBOOT
        if rc == EXIT_ROLLED_BACK:
            # the tool went back to the restore point by itself: nothing of the new release stays
            self.outcome["changed"] = False
        if rc == EXIT_INHIBITED:
            self.outcome["inhibitors"] = inhibitor_keys(doc)
        message = None
        if isinstance(doc, dict) and doc.get("error"):
            message = doc["error"]
            if doc.get("hint"):
                message += " (%s)" % doc["hint"]
        elif rc == EXIT_INHIBITED and isinstance(doc, dict):
            message = "preflight checks inhibit the upgrade: %s" % ", ".join(self.outcome["inhibitors"])
        elif rc == EXIT_UNHEALTHY:
            message = "health checks failed or could not tell"
        if not message:
            lines = [line for line in (err or "").splitlines() if line.strip()]
            message = lines[-1] if lines else "real-upgrade failed"
        self.module.fail_json(msg="real-upgrade exited %d: %s" % (rc, message), **self.outcome)

    def versions(self, before, after):
        self.outcome["before_version"] = before
        self.outcome["after_version"] = after
        if self.module._diff and before != after:
            self.outcome["diff"] = dict(
                before="version: %s\n" % (before or "(none)"),
                after="version: %s\n" % (after or "(none)"),
                before_header="installed",
                after_header="installed",
            )

    def upgrade(self):
        if self.module.check_mode:
            dummy, plan = self.run(["plan"] + self.to())
            plan = plan or {}
            before = plan.get("from")
            after = plan.get("to")
            self.outcome["changed"] = before != after or bool(plan.get("hops"))
            self.versions(before, after)
            return
        args = ["--yes"] + self.to()
        if self.params["download_only"]:
            args.append("--download-only")
        if not self.params["restore_point"]:
            args.append("--no-restore-point")
        dummy, doc = self.run(args)
        doc = doc or {}
        self.outcome["changed"] = doc.get("result") not in UNCHANGED_RESULTS
        if doc.get("result") == "downloaded":
            # the packages are in the cache; the installed release is the same
            self.outcome["changed"] = False
            self.versions(doc.get("from"), doc.get("from"))
        else:
            self.versions(doc.get("from"), doc.get("to"))

    def rollback(self):
        args = ["rollback", "--yes"]
        if self.params["rollback_run"] is not None:
            args += ["--to-run", str(self.params["rollback_run"])]
        if self.module.check_mode:
            args.append("--dry-run")
        dummy, doc = self.run(args)
        doc = doc or {}
        self.outcome["changed"] = doc.get("result") != "up-to-date"
        self.versions(doc.get("from"), doc.get("to"))

    def finalize(self):
        if self.module.check_mode:
            self.outcome["msg"] = "check mode: the contract migrations are not applied"
            return
        dummy, doc = self.run(["migrations", "finalize"])
        self.outcome["changed"] = finalize_changed(doc)

    def check(self):
        rc, doc = self.run(["check"] + self.to())
        self.outcome["inhibitors"] = inhibitor_keys(doc)

    def main(self):
        action = self.params["action"]
        if action == "upgrade":
            self.upgrade()
        elif action == "rollback":
            self.rollback()
        elif action == "finalize":
            self.finalize()
        elif action == "check":
            self.check()
        elif action == "health":
            self.run(["health"] + (["--wait"] if self.params["wait"] else []))
        elif action == "plan":
            self.run(["plan"] + self.to())
        elif action == "status":
            self.run(["status"])
        self.module.exit_json(**self.outcome)


def finalize_changed(doc):
    """Whether `migrations finalize --json` applied something."""
    if not isinstance(doc, dict):
        return True
    for key in ("applied", "migrations", "finalized"):
        if key in doc:
            return bool(doc[key])
    return doc.get("result") not in UNCHANGED_RESULTS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(
                type="str",
                default="upgrade",
                choices=["upgrade", "rollback", "health", "finalize", "plan", "check", "status"],
            ),
            state=dict(type="str", choices=["latest"]),
            version=dict(type="str"),
            root=dict(type="path", default="/"),
            binary=dict(type="path", default="/usr/sbin/real-upgrade"),
            config=dict(type="path"),
            download_only=dict(type="bool", default=False),
            restore_point=dict(type="bool", default=True),
            rollback_run=dict(type="int"),
            wait=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("state", "version")],
        supports_check_mode=True,
    )
    Upgrade(module).main()


if __name__ == "__main__":
    main()
