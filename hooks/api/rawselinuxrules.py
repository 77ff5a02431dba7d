"""What a RawSelinuxProfile's CIL may hold: read as the compiler reads it (hooks.api.cilreader), an
allow-list of statements that act only inside the profile's block, and the rules' targets and
permissions checked as a SelinuxProfile's are (hooks.api.selinuxrules)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from hooks.api import cilreader
from hooks.api.cilreader import Atom, CilSyntaxError, Form, Node
from hooks.api.problems import ProfileProblem
from hooks.api.selinuxrules import (
    DEFAULT_DENY,
    DENIED,
    FORBIDDEN_STATEMENT,
    INVALID_RAW,
    MAX_IDENTIFIER,
    OPERATORS,
    OWN_TYPES,
    TYPE_PATTERN,
    TYPE_SUFFIX,
    WORD_PATTERN,
    DenyList,
    check_system_template,
    permission_problem,
    target_problem,
)

# A name a RawSelinuxProfile declares in its block: one CIL symbol, no dots.
_DECLARED = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# A name of the global namespace (".x" is the global x in CIL).
_GLOBAL = re.compile(r"\.?[A-Za-z0-9_-]+")
# Reading a RawSelinuxProfile: the allowed statements nest three deep at most.
MAX_DEPTH = 16


def _shown(text: str, limit: int = 60) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


RULES = ("allow", "auditallow", "dontaudit")


RAW_STATEMENTS = (
    *RULES,
    "typetransition",
    "type",
    "typeattribute",
    "typeattributeset",
    "blockinherit",
)

# Statements that act on the whole policy (or hold statements that may): refused with that
# reason. Every other statement not in RAW_STATEMENTS is refused too.
GLOBAL_STATEMENTS = frozenset(
    {
        "block", "blockabstract", "in", "optional", "macro", "call",
        "booleanif", "tunableif", "boolean", "tunable",
        "class", "classorder", "classcommon", "common", "classmap", "classmapping",
        "classpermission", "classpermissionset",
        "sid", "sidorder", "sidcontext", "context",
        "role", "roletype", "roleallow", "roleattribute", "roleattributeset", "rolebounds",
        "roletransition",
        "user", "userrole", "userattribute", "userattributeset", "userbounds", "userlevel",
        "userprefix",
        "userrange", "selinuxuser", "selinuxuserdefault",
        "mls", "sensitivity", "sensitivityorder", "sensitivityalias", "sensitivityaliasactual",
        "sensitivitycategory", "category", "categoryorder", "categoryalias", "categoryaliasactual",
        "dominance", "level", "levelrange", "rangetransition",
        "typepermissive", "typealias", "typealiasactual", "typebounds", "typechange", "typemember",
        "expandtypeattribute", "neverallow", "neverallowx", "allowx", "auditallowx", "dontauditx",
        "deny",
        "constrain", "mlsconstrain", "validatetrans", "mlsvalidatetrans",
        "defaultuser", "defaultrole", "defaulttype", "defaultrange",
        "filecon", "fsuse", "genfscon", "portcon", "netifcon", "nodecon", "ibpkeycon",
        "ibendportcon",
        "iomemcon", "ioportcon", "pcidevicecon", "pirqcon", "devicetreecon",
        "policycap", "handleunknown", "ipaddr", "<src_info>",
    }
)  # fmt: skip


def check_raw_policy(
    policy: str | None,
    allowed: Sequence[str],
    deny: DenyList = DEFAULT_DENY,
    namespace: str | None = None,
) -> tuple[Form, ...]:
    """The statements of a RawSelinuxProfile's CIL, once checked to act only inside its block
    and to grant nothing denied.

    ``blockinherit`` may name an allowed system template and nothing else: a block
    name cannot tell a system template (``net_container``) from a profile of a
    namespace called ``container``.
    """
    if policy is None or not policy.strip():
        raise ProfileProblem(INVALID_RAW, "spec.policy: required, and not only white space")
    if "\x00" in policy:
        raise ProfileProblem(INVALID_RAW, "spec.policy: must not contain NUL characters")
    try:
        policy.encode()
    except UnicodeEncodeError as error:
        raise ProfileProblem(INVALID_RAW, "spec.policy: must be valid UTF-8") from error
    statements = _read(policy)
    _RawCheck(statements, allowed, deny, namespace).run()
    return statements


def check_wrapped(cil: str, block: str, policy: str) -> None:
    """``cil`` reads as the one block ``block`` holding exactly the tokens of ``policy``.

    A guard on the wrapping: whatever the text, it cannot read differently once in its block.
    """
    try:
        wrapped = cilreader.tokens(cil)
    except CilSyntaxError as error:
        raise ProfileProblem(
            INVALID_RAW, f"spec.policy: once in its block, it does not read: {error}"
        ) from error
    expected = ["(", "block", block, *cilreader.tokens(policy), ")"]
    if wrapped != expected:
        raise ProfileProblem(INVALID_RAW, "spec.policy: once in its block, it reads differently")


def _read(policy: str) -> tuple[Form, ...]:
    try:
        return cilreader.read(policy, max_depth=MAX_DEPTH)
    except cilreader.UnmatchedClose as error:
        raise ProfileProblem(
            INVALID_RAW,
            f"spec.policy line {error.line}: unmatched ')' would close the profile's block",
        ) from error
    except CilSyntaxError as error:
        where = "spec.policy" if error.line is None else f"spec.policy line {error.line}"
        raise ProfileProblem(INVALID_RAW, f"{where}: {error.message}") from error


class _RawCheck:
    """The checks of one RawSelinuxProfile's statements (see the module's doc)."""

    def __init__(
        self,
        statements: Sequence[Form],
        allowed: Sequence[str],
        deny: DenyList,
        namespace: str | None,
    ) -> None:
        self.statements = statements
        self.allowed = allowed
        self.deny = deny
        self.namespace = namespace
        self.types: set[str] = set()
        self.attributes: set[str] = set()
        self.own = OWN_TYPES
        self.denied: dict[str, str | None] = {}  # deny.reason_for, by symbol

    def run(self) -> None:
        for statement in self.statements:  # declarations hold for the whole block: read first
            if statement.head in ("type", "typeattribute") and len(statement.items) == 2:
                name = statement.items[1]
                if isinstance(name, Atom):
                    (self.types if statement.head == "type" else self.attributes).add(name.text)
        self.own = OWN_TYPES | self.types | self.attributes
        for statement in self.statements:
            self.statement(statement)

    def statement(self, form: Form) -> None:
        where = f"spec.policy line {form.line}"
        keyword = form.head
        if keyword is None:
            raise ProfileProblem(INVALID_RAW, f"{where}: a statement starts with its keyword")
        if keyword not in RAW_STATEMENTS:
            if keyword in GLOBAL_STATEMENTS:
                message = (
                    f"the {keyword!r} statement acts on the whole policy and is not allowed in a "
                    "RawSelinuxProfile"
                )
            else:
                message = (
                    f"the {keyword!r} statement is not allowed in a RawSelinuxProfile "
                    f"(allowed: {', '.join(RAW_STATEMENTS)})"
                )
            raise ProfileProblem(FORBIDDEN_STATEMENT, f"{where}: {message}")
        args = form.items[1:]
        skip = args[3] if keyword == "typetransition" and len(args) == 5 else None  # a file name
        for atom in _atoms(args):
            if atom is skip:
                continue
            denied = self.denied.get(atom.text, "")
            if denied == "":
                denied = self.denied[atom.text] = self.deny.reason_for(atom.text)
            if denied:
                raise ProfileProblem(
                    DENIED,
                    f"spec.policy line {atom.line}: {denied} is on the deny list: no workload "
                    "profile may grant it",
                )
        if keyword in RULES:
            self.rule(where, keyword, args)
        elif keyword == "typetransition":
            self.typetransition(where, args)
        elif keyword in ("type", "typeattribute"):
            self.declaration(where, keyword, args)
        elif keyword == "typeattributeset":
            self.attribute_set(where, args)
        else:
            self.blockinherit(where, args)

    def rule(self, where: str, keyword: str, args: tuple[Node, ...]) -> None:
        if len(args) != 3:
            raise ProfileProblem(
                INVALID_RAW,
                f"{where}: {keyword} takes a source, a target and (class (permissions))",
            )
        source = self.source(where, keyword, args[0])
        target = self.target(where, args[1])
        classperms = args[2]
        if isinstance(classperms, Atom):
            raise ProfileProblem(
                FORBIDDEN_STATEMENT,
                f"{where}: {classperms.text!r}: named class permissions are not allowed; write "
                "(class (permissions))",
            )
        if len(classperms.items) != 2 or not isinstance(classperms.items[0], Atom):
            raise ProfileProblem(
                INVALID_RAW, f"{where}: {keyword} {source} {target}: write (class (permissions))"
            )
        cls = self.word(where, "class", classperms.items[0])
        perms = classperms.items[1]
        if isinstance(perms, Atom) or not perms.items:
            raise ProfileProblem(
                INVALID_RAW, f"{where}: class {cls!r}: the permissions are a list, e.g. (read open)"
            )
        for item in perms.items:
            if isinstance(item, Form):
                raise ProfileProblem(
                    FORBIDDEN_STATEMENT,
                    f"{where}: class {cls!r}: permission expressions are not allowed",
                )
            perm = self.word(where, "permission", item)
            problem = permission_problem(cls, perm, target, self.own, self.deny)
            if problem:
                raise ProfileProblem(DENIED, f"{where}: {problem}")

    def typetransition(self, where: str, args: tuple[Node, ...]) -> None:
        if len(args) not in (4, 5):
            raise ProfileProblem(
                INVALID_RAW,
                f"{where}: typetransition takes a source, a target, a class, [a file name,] "
                "and a result",
            )
        self.source(where, "typetransition", args[0])
        self.target(where, args[1])
        cls = self.word(where, "class", args[2])
        if len(args) == 5 and not isinstance(args[3], Atom):
            raise ProfileProblem(
                INVALID_RAW, f"{where}: typetransition: the file name is one string"
            )
        result = self.target(where, args[-1])
        if cls == "process" and result not in self.own:
            raise ProfileProblem(
                DENIED,
                f"{where}: typetransition into {result!r}: a process may only enter a type of "
                "the profile's own block",
            )

    def declaration(self, where: str, keyword: str, args: tuple[Node, ...]) -> None:
        if len(args) != 1 or not isinstance(args[0], Atom):
            raise ProfileProblem(INVALID_RAW, f"{where}: {keyword} takes one name")
        name = args[0].text
        if len(name) > MAX_IDENTIFIER or not _DECLARED.fullmatch(name):
            raise ProfileProblem(
                INVALID_RAW,
                f"{where}: {keyword} {_shown(name)} is not a name of at most {MAX_IDENTIFIER} "
                "letters, digits, '_' and '-'",
            )
        if not name.endswith(TYPE_SUFFIX):
            raise ProfileProblem(
                FORBIDDEN_STATEMENT,
                f"{where}: {keyword} {name!r}: a name the profile declares must end in "
                f"{TYPE_SUFFIX!r}; any other may be an attribute the inherited template puts the "
                "container's type in (container_domain, ...), which a declaration in the block "
                "would take it out of",
            )

    def attribute_set(self, where: str, args: tuple[Node, ...]) -> None:
        if len(args) != 2 or not isinstance(args[0], Atom):
            raise ProfileProblem(
                INVALID_RAW, f"{where}: typeattributeset takes an attribute and (its types)"
            )
        attribute = args[0].text
        if attribute not in self.attributes:
            raise ProfileProblem(
                FORBIDDEN_STATEMENT,
                f"{where}: typeattributeset of {attribute!r}: only an attribute the profile "
                "declares "
                "(typeattribute) may be given types; adding a type to another attribute gives it "
                "that attribute's rights",
            )
        members = args[1].items if isinstance(args[1], Form) else (args[1],)
        for member in members:
            if isinstance(member, Form) or member.text in OPERATORS:
                raise ProfileProblem(
                    FORBIDDEN_STATEMENT,
                    f"{where}: typeattributeset {attribute}: attribute expressions (all, not, "
                    "and, or, xor) "
                    "are not allowed; list the profile's own types",
                )
            if member.text not in self.own:
                raise ProfileProblem(
                    FORBIDDEN_STATEMENT,
                    f"{where}: typeattributeset {attribute}: {_shown(member.text)} is not a "
                    "type of the "
                    "profile's own block (process, socket, or one it declares)",
                )

    def blockinherit(self, where: str, args: tuple[Node, ...]) -> None:
        if len(args) != 1 or not isinstance(args[0], Atom):
            raise ProfileProblem(INVALID_RAW, f"{where}: blockinherit takes one block name")
        check_system_template(f"{where}: blockinherit", args[0].text, self.allowed)

    def source(self, where: str, keyword: str, node: Node) -> str:
        name = self.name(where, "source", node)
        if name not in self.own:
            raise ProfileProblem(
                FORBIDDEN_STATEMENT,
                f"{where}: {keyword} from {_shown(name)}: the source must be a type of the "
                "profile's own "
                "block (process, socket, or one it declares); a rule for any other type acts "
                "outside it",
            )
        return name

    def target(self, where: str, node: Node) -> str:
        name = self.name(where, "type", node)
        if not _GLOBAL.fullmatch(name) and not TYPE_PATTERN.fullmatch(name):
            raise ProfileProblem(
                INVALID_RAW, f"{where}: {_shown(name)} is not a valid SELinux type name"
            )
        problem = target_problem(name, self.own, self.namespace, self.deny)
        if problem:
            raise ProfileProblem(DENIED, f"{where}: {problem}")
        return name

    def name(self, where: str, what: str, node: Node) -> str:
        if isinstance(node, Form):
            raise ProfileProblem(
                FORBIDDEN_STATEMENT,
                f"{where}: a {what} is one name, not an expression or anonymous list",
            )
        if len(node.text) > MAX_IDENTIFIER:
            raise ProfileProblem(
                INVALID_RAW,
                f"{where}: {what} {_shown(node.text)} is longer than {MAX_IDENTIFIER} characters",
            )
        return node.text

    def word(self, where: str, what: str, node: Node) -> str:
        if (
            isinstance(node, Form)
            or len(node.text) > MAX_IDENTIFIER
            or not WORD_PATTERN.fullmatch(node.text)
        ):
            shown = "a list" if isinstance(node, Form) else _shown(node.text)
            raise ProfileProblem(
                INVALID_RAW, f"{where}: {what} {shown} is not a valid SELinux {what} name"
            )
        if what == "class" and node.text in self.deny.classes:
            raise ProfileProblem(
                DENIED,
                f"{where}: class {node.text!r} is on the deny list: no workload profile may "
                "grant it",
            )
        return node.text


def _atoms(nodes: Sequence[Node]) -> list[Atom]:
    """Every atom of ``nodes``, at any depth (the allowed statements nest three deep at most)."""
    found: list[Atom] = []
    pending = list(reversed(nodes))
    while pending:
        node = pending.pop()
        if isinstance(node, Atom):
            found.append(node)
        else:
            pending.extend(reversed(node.items))
    return found
