"""The RawSelinuxProfile attack corpus has teeth: what the hooks refuse, semodule would install.

Every payload of ``tests/cil_attacks.py`` is refused by the hooks' validation; wrapped in its
block as the hooks wrap it (``translation.raw_cil``) with the validation skipped, all of them
install into the test policy store in one ``semodule`` transaction (one relink, not one per
payload), beside another tenant's profile they aim at. A sample of them is then seen taking
effect in the kernel policy that ``semodule`` built, and in its file contexts.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hooks.api.problems import ProfileProblem
from hooks.api.rawselinuxprofile import RawSelinuxProfile
from hooks.cluster.selinux.translation import raw_cil, translate
from nodesync.selinux.batch import SemoduleInstaller
from tests.helpers.cil_attacks import ATTACKS, NAMESPACE, VICTIM, VICTIM_BLOCK
from tests.helpers.selinux_env import STORE, compiled_policy, kernel_policy_cil

pytestmark = pytest.mark.node


def _block(name: str) -> str:
    return f"{name}_{NAMESPACE}"


def _process(name: str) -> str:
    return f"{_block(name)}.process"


def _allowed(policy: str, source: str, target: str, cls: str) -> set[str]:
    """The permissions of ``cls`` that the kernel policy allows ``source`` on ``target``."""
    rule = rf"^\(allow {re.escape(source)} {re.escape(target)} \({re.escape(cls)} \(([^)]*)\)\)\)$"
    return {perm for found in re.findall(rule, policy, re.MULTILINE) for perm in found.split()}


def _members(policy: str, attribute: str) -> set[str]:
    """The types the kernel policy puts in ``attribute``."""
    rule = rf"^\(typeattributeset {re.escape(attribute)} \(([^)]*)\)\)$"
    found = re.search(rule, policy, re.MULTILINE)
    return set(found.group(1).split()) if found else set()


def _has(policy: str, line: str) -> bool:
    return re.search(rf"^{re.escape(line)}", policy, re.MULTILINE) is not None


def _refusal(policy: str, name: str) -> ProfileProblem | None:
    profile = RawSelinuxProfile.model_validate(
        {"metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"policy": policy}}
    )
    try:
        translate(profile)
    except ProfileProblem as problem:
        return problem
    return None


def test_every_refused_payload_would_install_without_the_validation(
    store: SemoduleInstaller, tmp_path: Path
) -> None:
    accepted = [attack.name for attack in ATTACKS if _refusal(attack.policy, attack.name) is None]
    assert accepted == [], "the validation accepts these payloads"

    folder = tmp_path / "modules"
    folder.mkdir()
    files = {VICTIM_BLOCK: folder / f"{VICTIM_BLOCK}.cil"}
    files[VICTIM_BLOCK].write_text(VICTIM)
    for attack in ATTACKS:  # as the hooks would wrap them, were the validation skipped
        path = folder / f"{_block(attack.name)}.cil"
        path.write_bytes(raw_cil(attack.name, NAMESPACE, attack.policy).encode())
        files[_block(attack.name)] = path
    started = time.monotonic()
    ok, output = store.transaction(list(files.values()))
    seconds = time.monotonic() - started
    print(f"{len(files)} modules installed in one semodule transaction in {seconds:.1f} s")
    if not ok:  # bisect only to say which payloads semodule refuses on their own
        refused = {
            name: result.message for name, result in store.install(files).items() if not result.ok
        }
        pytest.fail(f"semodule refuses these payloads: they are no teeth: {refused or output}")
    assert set(files) <= store.installed()

    root = Path(store.root or "")
    kernel = kernel_policy_cil(compiled_policy(root), tmp_path / "kernel.cil")
    contexts = (root / "etc/selinux" / STORE.name / "contexts/files/file_contexts").read_text()

    victim = f"{VICTIM_BLOCK}.process"
    # quoted keywords: a permissive nested block; the shared template changed under another tenant
    assert _has(kernel, f"(typepermissive {_block('quoted-block')}.inner.process)")
    assert "read" in _allowed(kernel, victim, "shadow_t", "file")  # quoted-in
    assert "write" in _allowed(kernel, victim, "etc_t", "file")  # in-global-allow
    assert _has(kernel, f"(typepermissive {victim})")  # in-other-tenant, bare-in
    assert _process("quoted-unconfined-attr") in _members(kernel, "unconfined_domain_type")
    # a local attribute takes the template's place: the type leaves the global one
    assert victim in _members(kernel, "container_domain")
    assert _process("shadow-template-attribute") not in _members(kernel, "container_domain")
    # attributes, denied types, capabilities, permission expressions
    assert {"read", "write"} <= _allowed(kernel, _process("attr-file-type"), "file_type", "file")
    disk = _allowed(kernel, _process("fixed-disk"), "fixed_disk_device_t", "blk_file")
    assert {"read", "write"} <= disk
    assert "sys_admin" in _allowed(kernel, _process("cap-sys-admin"), "self", "capability")
    assert "relabelto" in _allowed(kernel, _process("perm-all"), "var_log_t", "file")
    assert "shadow_t" in _members(kernel, f"{_block('attrset-all')}.everything_t")
    assert _has(kernel, f"(typealiasactual {_block('typealias')}.secret shadow_t)")
    # rules for other domains, labels, users
    bashrc = _process("named-transition-foreign")
    assert _has(kernel, f"(typetransition user_t user_home_dir_t file .bashrc {bashrc})")
    assert "write" in _allowed(kernel, "user_t", "var_log_t", "file")  # allow-foreign-source
    assert _has(kernel, "(portcon tcp 10250 (system_u object_r http_port_t")
    assert _has(kernel, '(genfscon proc "/sys/kernel/core_pattern" (system_u object_r var_log_t')
    assert _has(kernel, "(userrole user_u sysadm_r)")
    assert re.search(r"^/etc/shadow\s+--\s+system_u:object_r:var_log_t:s0$", contexts, re.MULTILINE)
    # leaving the block: global rules, a global permissive domain, a new MLS sensitivity
    assert {"read", "write"} <= _allowed(kernel, "user_t", "shadow_t", "file")  # unbalanced-close
    assert _has(kernel, "(typepermissive user_t)")  # unbalanced-quoted
    assert _has(kernel, "(sensitivity s1)")  # escape-mls
    # comments: a carriage return ends one; libsepol 3.4 lets a quoted string in it hold one
    assert _has(kernel, "(typepermissive crond_t)")  # cr-ends-comment
    assert not _has(kernel, "(typepermissive sshd_t)")  # ambiguous-comment: a comment on 3.4
