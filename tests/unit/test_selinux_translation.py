"""SELinux CIL translation and validation: determinism, sorting, de-duplication, inheritance,
the deny list, and attempts to escape a RawSelinuxProfile's block."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.api import rawselinuxrules as rawrules
from hooks.api import selinuxrules as validation
from hooks.api.problems import ProfileProblem
from hooks.api.rawselinuxprofile import RawSelinuxProfile
from hooks.api.selinuxprofile import SelinuxProfile
from hooks.cluster.selinux.translation import allow_rules, raw_cil, translate

NS = "team-a"
EXAMPLES = Path(__file__).parent.parent.parent / "examples" / "selinux"


def _profile(spec: dict[str, Any], name: str = "web") -> SelinuxProfile:
    return SelinuxProfile.model_validate(
        {"metadata": {"name": name, "namespace": NS}, "spec": spec}
    )


def _raw(policy: str, name: str = "raw") -> RawSelinuxProfile:
    return RawSelinuxProfile.model_validate(
        {"metadata": {"name": name, "namespace": NS}, "spec": {"policy": policy}}
    )


def _problem(profile: SelinuxProfile | RawSelinuxProfile, **kwargs: Any) -> ProfileProblem:
    with pytest.raises(ProfileProblem) as caught:
        translate(profile, **kwargs)
    return caught.value


def test_a_profile_becomes_a_block_that_inherits_container() -> None:
    cil = translate(_profile({"allow": {"http_port_t": {"tcp_socket": ["name_bind"]}}}))
    assert cil == (
        "(block web_team-a\n"
        "    (blockinherit container)\n"
        "    (allow process http_port_t ( tcp_socket ( name_bind )))\n"
        ")\n"
    )


def test_permissive_adds_typepermissive_of_the_own_process_only_when_true() -> None:
    assert "(typepermissive process)" in translate(_profile({"permissive": True}))
    assert "typepermissive" not in translate(_profile({"permissive": False}))
    assert "typepermissive" not in translate(_profile({}))


def test_self_is_the_blocks_own_process_and_merges_with_process() -> None:
    rules = allow_rules(
        {"@self": {"tcp_socket": ["listen"]}, "process": {"tcp_socket": ["accept", "listen"]}}
    )
    assert rules == [("process", "tcp_socket", ("accept", "listen"))]


def test_rules_are_sorted_and_permissions_deduplicated() -> None:
    rules = allow_rules(
        {
            "var_log_t": {"file": ["write", "open", "write"], "dir": ["search"]},
            "http_port_t": {"tcp_socket": ["name_bind"]},
        }
    )
    assert rules == [
        ("http_port_t", "tcp_socket", ("name_bind",)),
        ("var_log_t", "dir", ("search",)),
        ("var_log_t", "file", ("open", "write")),
    ]


def test_the_same_profile_in_any_order_gives_the_same_bytes() -> None:
    allow = {
        f"type{i}_t": {f"class{j}": [f"perm{k}" for k in range(4)] * 2 for j in range(3)}
        for i in range(6)
    }
    first = translate(_profile({"allow": allow}))
    shuffler = random.Random(7)
    for _ in range(20):
        types = list(allow.items())
        shuffler.shuffle(types)
        shuffled: dict[str, dict[str, list[str]]] = {}
        for target, classes in types:
            entries = list(classes.items())
            shuffler.shuffle(entries)
            shuffled[target] = {cls: shuffler.sample(perms, len(perms)) for cls, perms in entries}
        assert translate(_profile({"allow": shuffled})) == first


_SYMBOL = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda s: (
        s
        not in validation.DEFAULT_DENY.types
        | validation.DEFAULT_DENY.classes
        | validation.DEFAULT_DENY.permissions
        | validation.OPERATORS
        | validation.TRANSITIONS
    )
)
# A type, not an attribute: its name ends in _t.
_TYPE_NAME = _SYMBOL.map(lambda s: f"{s}_t").filter(
    lambda s: s not in validation.DEFAULT_DENY.types
)


@settings(max_examples=60, deadline=None)
@given(
    allow=st.dictionaries(
        st.one_of(st.just("@self"), _TYPE_NAME),
        st.dictionaries(_SYMBOL, st.lists(_SYMBOL, min_size=1, max_size=5), max_size=3),
        max_size=4,
    ),
    permissive=st.booleans(),
)
def test_a_valid_profile_always_gives_one_balanced_block(
    allow: dict[str, dict[str, list[str]]], permissive: bool
) -> None:
    cil = translate(_profile({"allow": allow, "permissive": permissive}))
    depth = 0
    for index, char in enumerate(cil):
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 1 or index >= len(cil) - 2, "the block closed before its end"
    assert depth == 0
    assert cil.count("(block ") == 1
    lines = [line for line in cil.splitlines() if line.startswith("    (allow ")]
    assert lines == sorted(set(lines), key=lines.index)  # no line twice


def test_inherit_keeps_the_given_order_once_each_and_container_only_alone() -> None:
    cil = translate(
        _profile(
            {
                "inherit": [
                    {"name": "net_container"},
                    {"name": "container"},
                    {"name": "log_container"},
                    {"name": "net_container"},
                ]
            }
        ),
        allowed_system_profiles=["container", "net_container", "log_container"],
    )
    # net_container and log_container bring container themselves; a second copy would
    # declare `process` twice.
    assert [line.strip() for line in cil.splitlines() if "blockinherit" in line] == [
        "(blockinherit net_container)",
        "(blockinherit log_container)",
    ]
    alone = translate(
        _profile({"inherit": [{"name": "container"}]}), allowed_system_profiles=["container"]
    )
    assert [line.strip() for line in alone.splitlines() if "blockinherit" in line] == [
        "(blockinherit container)"
    ]


def test_inheriting_a_profile_inherits_its_block_instead_of_container() -> None:
    base = _profile({"allow": {"var_log_t": {"dir": ["search"]}}}, name="base")
    cil = translate(
        _profile(
            {
                "inherit": [
                    {"kind": "SelinuxProfile", "name": "base"},
                    {"kind": "SelinuxProfile", "name": "base"},
                ]
            }
        ),
        siblings={"base": base},
    )
    assert [line.strip() for line in cil.splitlines() if "blockinherit" in line] == [
        "(blockinherit base_team-a)"
    ]


@pytest.mark.parametrize(
    ("siblings", "reason", "says"),
    [
        ({}, "InheritedProfileNotFound", "'base' not found in namespace 'team-a'"),
        (
            {"base": {"inherit": [{"kind": "SelinuxProfile", "name": "web"}]}},
            "InheritCycle",
            "web -> base -> web",
        ),
        (
            {
                "base": {"inherit": [{"kind": "SelinuxProfile", "name": "mid"}]},
                "mid": {"inherit": [{"kind": "SelinuxProfile", "name": "base"}]},
            },
            "InheritCycle",
            "base -> mid -> base",
        ),
        ({"base": {"disabled": True}}, "InheritedProfileDisabled", "'base' is disabled"),
        (
            {"base": {"inherit": [{"kind": "SelinuxProfile", "name": "gone"}]}},
            "InheritedProfileNotFound",
            "'gone' (inherited by 'base')",
        ),
    ],
)
def test_inherited_profiles_must_exist_be_enabled_and_not_form_a_cycle(
    siblings: dict[str, dict[str, Any]], reason: str, says: str
) -> None:
    profiles = {name: _profile(spec, name=name) for name, spec in siblings.items()}
    problem = _problem(
        _profile({"inherit": [{"kind": "SelinuxProfile", "name": "base"}]}), siblings=profiles
    )
    assert (problem.reason, says in problem.message) == (reason, True), problem.message


def test_a_diamond_of_inherited_profiles_is_not_a_cycle() -> None:
    siblings = {
        "left": _profile({"inherit": [{"kind": "SelinuxProfile", "name": "root"}]}, name="left"),
        "right": _profile({"inherit": [{"kind": "SelinuxProfile", "name": "root"}]}, name="right"),
        "root": _profile({}, name="root"),
    }
    spec = {
        "inherit": [
            {"kind": "SelinuxProfile", "name": "left"},
            {"kind": "SelinuxProfile", "name": "right"},
        ]
    }
    assert "(blockinherit right_team-a)" in translate(_profile(spec), siblings=siblings)


def test_a_long_chain_of_inherited_profiles_is_refused_not_a_crash() -> None:
    siblings = {
        f"p{i}": _profile(
            {"inherit": [{"kind": "SelinuxProfile", "name": f"p{i + 1}"}]}, name=f"p{i}"
        )
        for i in range(2000)
    }
    problem = _problem(
        _profile({"inherit": [{"kind": "SelinuxProfile", "name": "p0"}]}), siblings=siblings
    )
    assert problem.reason == "InheritTooDeep"


def test_system_templates_must_be_in_the_daemons_list() -> None:
    problem = _problem(_profile({"inherit": [{"name": "net_container"}]}))
    assert problem.reason == "SystemProfileNotAllowed"
    assert "'net_container'" in problem.message and "(container)" in problem.message
    problem = _problem(_profile({}), allowed_system_profiles=["net_container"])
    assert problem.reason == "SystemProfileNotAllowed"  # the default inherit is container


@pytest.mark.parametrize(
    ("allow", "reason", "says"),
    [
        ({"kernel_t": {"file": ["read"]}}, "DeniedSelinuxRule", "type 'kernel_t'"),
        ({"web_team-b.kernel_t": {"file": ["read"]}}, "DeniedSelinuxRule", "type 'kernel_t'"),
        ({"var_t": {"security": ["compute_av"]}}, "DeniedSelinuxRule", "class 'security'"),
        ({"var_t": {"file": ["read", "relabelto"]}}, "DeniedSelinuxRule", "permission 'relabelto'"),
        ({"@self": {"capability2": ["mac_admin"]}}, "DeniedSelinuxRule", "permission 'mac_admin'"),
        ({".kernel_t": {"file": ["read"]}}, "InvalidSelinuxProfile", "not a valid SELinux type"),
        (
            {"var_t))(sid kernel": {"file": ["read"]}},
            "InvalidSelinuxProfile",
            "not a valid SELinux type",
        ),
        ({"var_t": {"File": ["read"]}}, "InvalidSelinuxProfile", "class 'File'"),
        ({"var_t": {"file": ["read write"]}}, "InvalidSelinuxProfile", "permission 'read write'"),
        ({"var_t": {"file": []}}, "InvalidSelinuxProfile", "at least one permission"),
        ({"file_type": {"file": ["read"]}}, "DeniedSelinuxRule", "'file_type' is an attribute"),
        ({"domain": {"process": ["ptrace"]}}, "DeniedSelinuxRule", "'domain' is an attribute"),
        (
            {"fixed_disk_device_t": {"blk_file": ["read"]}},
            "DeniedSelinuxRule",
            "type 'fixed_disk_device_t'",
        ),
        ({"@self": {"capability": ["sys_admin"]}}, "DeniedSelinuxRule", "permission 'sys_admin'"),
        ({"@self": {"cap_userns": ["sys_ptrace"]}}, "DeniedSelinuxRule", "permission 'sys_ptrace'"),
        (
            {"var_t": {"file": ["all"]}},
            "DeniedSelinuxRule",
            "'all' makes the permissions an expression",
        ),
        ({"sshd_t": {"process": ["transition"]}}, "DeniedSelinuxRule", "entering another domain"),
        (
            {"db_team-b.process": {"process": ["ptrace"]}},
            "DeniedSelinuxRule",
            "inside another block",
        ),
        (
            {"container.process": {"process": ["ptrace"]}},
            "DeniedSelinuxRule",
            "inside another block",
        ),
    ],
)
def test_allow_rules_are_checked_against_patterns_and_the_deny_list(
    allow: dict[str, dict[str, list[str]]], reason: str, says: str
) -> None:
    problem = _problem(_profile({"allow": allow}))
    assert problem.reason == reason
    assert says in problem.message


def test_another_profiles_process_type_may_be_named() -> None:
    cil = translate(
        _profile({"allow": {"db_team-a.process": {"unix_stream_socket": ["connectto"]}}})
    )
    assert "(allow process db_team-a.process ( unix_stream_socket ( connectto )))" in cil


def test_own_types_self_and_allowed_attributes_may_be_named() -> None:
    allow = {
        "@self": {"process": ["transition"]},
        "process": {"process": ["dyntransition"]},
        "self": {"tcp_socket": ["listen"]},
        "socket": {"sock_file": ["write"]},
        "unreserved_port_type": {"tcp_socket": ["name_bind"]},
    }
    cil = translate(_profile({"allow": allow}))
    assert "(allow process unreserved_port_type ( tcp_socket ( name_bind )))" in cil
    assert "(allow process process ( process ( dyntransition transition )))" in cil


@pytest.mark.parametrize("name", ["web.v2", "Web", "-web", "1web", "a" * 243])
def test_names_that_would_not_make_a_block_or_configmap_are_refused(name: str) -> None:
    assert _problem(_profile({}, name=name)).reason == "InvalidSelinuxProfile"


def test_the_module_name_must_fit_a_file_name() -> None:
    assert translate(_profile({}, name="a" * 242)).startswith("(block " + "a" * 242 + "_team-a\n")
    long_namespace = SelinuxProfile.model_validate(
        {"metadata": {"name": "a" * 240, "namespace": "n" * 20}, "spec": {}}
    )
    problem = _problem(long_namespace)
    assert (problem.reason, "longer than 251" in problem.message) == ("InvalidSelinuxProfile", True)


def test_a_profile_too_large_for_a_configmap_is_refused() -> None:
    allow = {f"type{i:05d}_t": {"file": ["read", "write", "open", "getattr"]} for i in range(20000)}
    assert _problem(_profile({"allow": allow})).reason == "ProfileTooLarge"


# RawSelinuxProfile ---------------------------------------------------------------------------


def test_raw_policy_is_wrapped_in_the_block_trimmed_and_indented() -> None:
    cil = translate(
        _raw("\n\n(blockinherit container)  \r\n\n(allow process var_log_t (file (read)))\n\n")
    )
    assert cil == (
        "(block raw_team-a\n"
        "    (blockinherit container)\n"
        "\n"
        "    (allow process var_log_t (file (read)))\n"
        ")\n"
    )


def test_raw_wrapping_splits_lines_at_line_feeds_only() -> None:
    assert raw_cil("raw", NS, "; a\u2028b\x85c") == "(block raw_team-a\n    ; a\u2028b\x85c\n)\n"


def test_raw_comment_on_the_last_line_does_not_swallow_the_closing_parenthesis() -> None:
    cil = translate(_raw("(blockinherit container) ; the end"))
    assert cil.endswith("; the end\n)\n")


@pytest.mark.parametrize(
    ("policy", "reason", "says"),
    [
        (
            "(blockinherit container))\n(allow container_t var_t (file (read)))\n(block x",
            "InvalidRawSelinuxProfile",
            "unmatched ')'",
        ),
        (")(sid kernel)(", "InvalidRawSelinuxProfile", "unmatched ')'"),
        (
            "(blockinherit container)\n(allow process var_t (file (read))",
            "InvalidRawSelinuxProfile",
            "1 '(' not closed",
        ),
        ("; comment\r(sid kernel)", "ForbiddenCILStatement", "'sid'"),
        ("; comment ending in a carriage return\r)", "InvalidRawSelinuxProfile", "unmatched ')'"),
        (
            "(allow process var_t (file (read)))\u2028(sid kernel)",
            "InvalidRawSelinuxProfile",
            "'\\u2028'",
        ),
        ("(allow process var_t (file (read)))\x0b", "InvalidRawSelinuxProfile", "'\\x0b'"),
        ("(blockinherit container)\x00", "InvalidRawSelinuxProfile", "NUL"),
        ("(blockinherit container)\ud800", "InvalidRawSelinuxProfile", "UTF-8"),
        (";;* lms 1 file.cil\n(blockinherit container)", "InvalidRawSelinuxProfile", "line marks"),
        ('(filecon "/x" file ())\n', "ForbiddenCILStatement", "'filecon'"),
        (
            '(typetransition process var_t file "a)b)c" var_t)\n(allow process var_t (file "',
            "InvalidRawSelinuxProfile",
            "unterminated string",
        ),
        ("(in container (allow process var_t (file (read))))", "ForbiddenCILStatement", "'in'"),
        ("(block inner (type t))", "ForbiddenCILStatement", "'block'"),
        ("(BLOCK inner)", "ForbiddenCILStatement", "'BLOCK'"),
        ("(optional o (allow process var_t (file (read))))", "ForbiddenCILStatement", "'optional'"),
        ("(macro m ((type t)) (allow t var_t (file (read))))", "ForbiddenCILStatement", "'macro'"),
        ("(class evil (read))", "ForbiddenCILStatement", "'class'"),
        ("(role evil_r)", "ForbiddenCILStatement", "'role'"),
        ("(user evil_u)", "ForbiddenCILStatement", "'user'"),
        ("(typepermissive process)", "ForbiddenCILStatement", "'typepermissive'"),
        ("(neverallow container_t var_t (file (read)))", "ForbiddenCILStatement", "'neverallow'"),
        (
            "(allow process kernel_t (system (module_request)))",
            "DeniedSelinuxRule",
            "type 'kernel_t'",
        ),
        ("(allow process .shadow_t (file (read)))", "DeniedSelinuxRule", "type 'shadow_t'"),
        (
            "(typeattributeset unconfined_domain_type (process))",
            "DeniedSelinuxRule",
            "unconfined_domain_type",
        ),
        (
            "(typeattributeset container_domain (process))",
            "ForbiddenCILStatement",
            "typeattributeset of 'container_domain'",
        ),
        (
            "(type helper_t)\n(typeattributeset container_domain (helper_t))",
            "ForbiddenCILStatement",
            "'container_domain'",
        ),
        (
            "((allow) process var_t (file (read)))",
            "InvalidRawSelinuxProfile",
            "starts with its keyword",
        ),
        ("(allow process var_t)", "InvalidRawSelinuxProfile", "takes a source, a target"),
        ("(allow process var_t file)", "ForbiddenCILStatement", "named class permissions"),
        (
            "(allow process var_t (file read))",
            "InvalidRawSelinuxProfile",
            "the permissions are a list",
        ),
        ("(allow process (var_t) (file (read)))", "ForbiddenCILStatement", "not an expression"),
        (
            "(allow process var_t (file ((read))))",
            "ForbiddenCILStatement",
            "permission expressions",
        ),
        ("(allow process var_t (File (read)))", "InvalidRawSelinuxProfile", "class 'File'"),
        ("(allow process var_t.x (file (read)))", "DeniedSelinuxRule", "inside another block"),
        (
            "(allow process db_team-b.process (file (read)))",
            "DeniedSelinuxRule",
            "inside another block",
        ),
        (
            "(allow process var_t (file (read)))\n(typetransition process var_t file)",
            "InvalidRawSelinuxProfile",
            "typetransition takes",
        ),
        ("(type a.b)", "InvalidRawSelinuxProfile", "is not a name"),
        ("(typeattribute)", "InvalidRawSelinuxProfile", "takes one name"),
        ("(typeattribute domain)", "ForbiddenCILStatement", "must end in '_t'"),
        ("(type helper)", "ForbiddenCILStatement", "must end in '_t'"),
        (
            '(allow process "var t" (file (read)))',
            "InvalidRawSelinuxProfile",
            "not a valid SELinux type name",
        ),
        (
            "(allow process .domain (process (getattr)))",
            "DeniedSelinuxRule",
            "'domain' is an attribute",
        ),
        (
            "(allow process self (capability (sys_admin)))",
            "DeniedSelinuxRule",
            "permission 'sys_admin'",
        ),
        ("(allow process self (security (setenforce)))", "DeniedSelinuxRule", "class 'security'"),
        ("(allow process var_t (file (relabelto)))", "DeniedSelinuxRule", "permission 'relabelto'"),
        ("(blockinherit spc)", "SystemProfileNotAllowed", "'spc'"),
        ("(blockinherit othername_team-a)", "SystemProfileNotAllowed", "'othername_team-a'"),
        ("(blockinherit)", "InvalidRawSelinuxProfile", "one block name"),
        ("allow process var_t", "InvalidRawSelinuxProfile", "outside of a statement"),
        ("   \n\t", "InvalidRawSelinuxProfile", "required"),
    ],
)
def test_raw_policy_cannot_escape_its_block_or_grant_denied_rights(
    policy: str, reason: str, says: str
) -> None:
    problem = _problem(_raw(policy))
    assert problem.reason == reason, problem.message
    assert says in problem.message


def test_raw_policy_without_a_policy_is_refused() -> None:
    profile = RawSelinuxProfile.model_validate(
        {"metadata": {"name": "raw", "namespace": NS}, "spec": {}}
    )
    assert _problem(profile).reason == "InvalidRawSelinuxProfile"


@pytest.mark.parametrize(
    "policy",
    [
        "(blockinherit container)\n; (sid kernel) in a comment is only a comment\n",
        '(blockinherit container)\n(typetransition process var_log_t file "(block x" var_log_t)\n',
        "(blockinherit container)\n(allow process process (context (contains)))\n",
        # its own types and attributes, declared anywhere in the block
        "(blockinherit container)\n(typeattributeset helpers_t (helper_t process))\n(type "
        "helper_t)\n"
        "(typeattribute helpers_t)\n(allow helpers_t self (file (read)))\n(allow process "
        "helpers_t (file (read)))\n",
        # the one attribute a rule may name; the process type of a profile of the namespace
        "(blockinherit container)\n(allow process unreserved_port_type (tcp_socket (name_bind)))\n"
        "(allow process db_team-a.process (unix_stream_socket (connectto)))\n",
        # global names with a leading dot; auditallow, dontaudit; a named type transition
        "(blockinherit container)\n(auditallow process .var_log_t (file (write)))\n"
        "(dontaudit process .proc_t (file (getattr)))\n"
        '(typetransition process .tmp_t file "app.sock" socket)\n(typetransition process '
        ".bin_t process process)\n",
        # entering its own types
        "(blockinherit container)\n(allow process self (process (transition dyntransition "
        "setcurrent)))\n",
    ],
)
def test_raw_policy_that_stays_in_its_block_is_accepted(policy: str) -> None:
    assert translate(_raw(policy)).startswith("(block raw_team-a\n")


def test_quoted_and_bare_raw_policies_give_the_same_answer() -> None:
    """CIL reads a quoted token as a name: quoting changes neither an acceptance nor a refusal."""
    accepted = "(blockinherit container)\n(allow process var_log_t (file (read open)))\n"
    quoted = (
        '("blockinherit" "container")\n("allow" "process" "var_log_t" ("file" ("read" "open")))\n'
    )
    assert translate(_raw(quoted)).replace('"', "") == translate(_raw(accepted))
    for bare in ("(typepermissive process)", "(allow process shadow_t (file (read)))", "(sid x)"):
        quoted = bare.replace("(", '("', 1).replace(" ", '" ', 1)
        assert (_problem(_raw(quoted)).reason, _problem(_raw(quoted)).message) == (
            _problem(_raw(bare)).reason,
            _problem(_raw(bare)).message,
        )


def test_raw_blockinherit_of_a_template_the_daemon_allows() -> None:
    policy = "(blockinherit container)\n(blockinherit net_container)\n"
    assert _problem(_raw(policy)).reason == "SystemProfileNotAllowed"
    assert "(blockinherit net_container)" in translate(
        _raw(policy), allowed_system_profiles=["container", "net_container"]
    )


@given(st.text(alphabet='()"; \n\r\tab_', max_size=40))
@settings(max_examples=300, deadline=None)
def test_accepted_raw_text_never_closes_the_block_early(policy: str) -> None:
    """Whatever text is accepted, the wrapped block's parentheses, read as CIL reads them
    (comments to a line feed or carriage return, strings on one line), close only at the end."""
    try:
        cil = translate(_raw(policy))
    except ProfileProblem:
        return
    depth, index, closed_at = 0, 0, -1
    while index < len(cil):
        char = cil[index]
        if char == ";":
            while index < len(cil) and cil[index] not in "\n\r":
                index += 1
            continue
        if char == '"':
            index = cil.index('"', index + 1)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                closed_at = index
        index += 1
    assert depth == 0
    assert closed_at == len(cil) - 2


# Examples -----------------------------------------------------------------------------------


def _examples() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def test_every_selinux_example_translates() -> None:
    docs = _examples()
    siblings = {
        d["metadata"]["name"]: SelinuxProfile.model_validate(d)
        for d in docs
        if d["kind"] == "SelinuxProfile"
    }
    kinds = set()
    for doc in docs:
        kinds.add(doc["kind"])
        model = SelinuxProfile if doc["kind"] == "SelinuxProfile" else RawSelinuxProfile
        cil = translate(model.model_validate(doc), siblings=siblings)
        assert cil.startswith(f"(block {doc['metadata']['name']}_security-profiles-operator\n")
    assert kinds == {"SelinuxProfile", "RawSelinuxProfile"}
    assert any(
        ref.get("kind") == "SelinuxProfile" for d in docs for ref in d["spec"].get("inherit", [])
    )


def test_the_wrapped_text_must_read_as_the_block_holding_exactly_the_statements() -> None:
    statements = '(blockinherit container)\n("allow" process var_t (file (read)))'
    good = (
        '(block raw_team-a\n    (blockinherit container)\n    ("allow" process var_t (file '
        "(read)))\n)\n"
    )
    rawrules.check_wrapped(good, "raw_team-a", statements)
    escaped = good.replace(
        "(blockinherit container)", "(blockinherit container))\n(sid x)\n(block y"
    )
    for cil, block in (
        (good, "other_team-a"),
        (escaped, "raw_team-a"),
        (good + "(sid x)\n", "raw_team-a"),
    ):
        with pytest.raises(ProfileProblem) as caught:
            rawrules.check_wrapped(cil, block, statements)
        assert caught.value.reason == "InvalidRawSelinuxProfile"
        assert "once in its block" in caught.value.message
