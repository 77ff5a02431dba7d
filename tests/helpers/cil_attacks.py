"""RawSelinuxProfile attacks: CIL that a tenant could write into ``spec.policy``.

Every payload here is refused by the hooks' validation (tests/unit/test_selinux_attacks.py,
with the reason and a part of the message), and every one of them, wrapped in its block as
the hooks wrap it, is real CIL that ``semodule`` installs into the test policy store
(tests/node/test_selinux_attacks_install.py): the corpus has teeth.

A profile ``<name>`` of the namespace ``NAMESPACE`` becomes the block ``<name>_team-a``.
``VICTIM`` is another tenant's profile, installed beside the payloads in the node test.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "team-a"
VICTIM_BLOCK = "victim_team-b"
VICTIM = f"(block {VICTIM_BLOCK}\n    (blockinherit container)\n)\n"

INVALID = "InvalidRawSelinuxProfile"
FORBIDDEN = "ForbiddenCILStatement"
DENIED = "DeniedSelinuxRule"
NOT_ALLOWED = "SystemProfileNotAllowed"

ISSUE_QUOTED = "issue 12, 2"
ISSUE_ATTRIBUTES = "issue 12, 3"
NEW = "new"


@dataclass(frozen=True)
class Attack:
    name: str  # the profile's name: a DNS label
    policy: str  # spec.policy
    does: str  # what it would do once installed
    reason: str  # the condition's reason the validation answers
    says: str  # a part of the validation's message
    origin: str = NEW


_BASE = "(blockinherit container)\n"
_SHADOW = "(allow process .shadow_t (file (read open)))"


def _nested(depth: int) -> str:
    text = _SHADOW
    for level in range(depth):
        text = f"(optional nest{level} {text})"
    return text


_LONG = "t" + "x" * 1999

ATTACKS: tuple[Attack, ...] = (
    # issue 12, 2: quoted tokens
    Attack(
        "quoted-typepermissive",
        _BASE + '("typepermissive" process)',
        "the profile's containers run permissive: every denial is logged and allowed",
        FORBIDDEN,
        "'typepermissive' statement acts on the whole policy",
        ISSUE_QUOTED,
    ),
    Attack(
        "quoted-in",
        _BASE + '("in" "container" (allow process "shadow_t" (file (read))))',
        "adds the rule to the shared container template: every profile that inherits it reads "
        "/etc/shadow",
        FORBIDDEN,
        "'in' statement acts on the whole policy",
        ISSUE_QUOTED,
    ),
    Attack(
        "quoted-kernel-t",
        _BASE + '(allow process "kernel_t" (system (module_request)))',
        "asks the kernel to load modules",
        DENIED,
        "type 'kernel_t' is on the deny list",
        ISSUE_QUOTED,
    ),
    Attack(
        "quoted-security",
        _BASE + '(allow process "security_t" ("security" ("setenforce" "load_policy")))',
        "switches SELinux to permissive and loads a new policy",
        DENIED,
        "type 'security_t' is on the deny list",
        ISSUE_QUOTED,
    ),
    Attack(
        "quoted-unconfined-attr",
        _BASE + '(typeattributeset "unconfined_domain_type" (process))',
        "makes the container's domain unconfined",
        DENIED,
        "type 'unconfined_domain_type' is on the deny list",
        ISSUE_QUOTED,
    ),
    Attack(
        "quoted-blockinherit",
        '("blockinherit" "home_container")',
        "inherits a template the daemon does not allow (read and write of users' home "
        "directories); "
        "the issue's `spc` is not in the test store",
        NOT_ALLOWED,
        "system profile 'home_container' is not in",
        ISSUE_QUOTED,
    ),
    Attack(
        "quoted-sid",
        _BASE
        + '("sid" x)\n("sidorder" (devnull x))\n'
        + '("sidcontext" x (system_u object_r unlabeled_t ((s0) (s0))))',
        "declares an initial SID and reorders the kernel's SID list",
        FORBIDDEN,
        "'sid' statement acts on the whole policy",
        ISSUE_QUOTED,
    ),
    Attack(
        "quoted-block",
        _BASE + '("block" "inner" ("blockinherit" "container") ("typepermissive" "process"))',
        "a nested block whose process type is permissive, usable by any pod of the namespace",
        FORBIDDEN,
        "'block' statement acts on the whole policy",
        ISSUE_QUOTED,
    ),
    # issue 12, 3: attributes and capabilities
    Attack(
        "attr-file-type",
        _BASE + "(allow process .file_type (file (read write open getattr)))",
        "read and write every file type (shadow_t, security_t, policy_config_t included)",
        DENIED,
        "'file_type' is an attribute, not a type",
        ISSUE_ATTRIBUTES,
    ),
    Attack(
        "attr-domain",
        _BASE + "(allow process .domain (process (ptrace transition)))",
        "ptrace and enter every domain (kernel_t, init_t included)",
        DENIED,
        "'domain' is an attribute, not a type",
        ISSUE_ATTRIBUTES,
    ),
    Attack(
        "attr-device-node",
        _BASE + "(allow process .device_node (chr_file (read write open)))",
        "read and write every device (memory_device_t: /dev/mem)",
        DENIED,
        "'device_node' is an attribute, not a type",
        ISSUE_ATTRIBUTES,
    ),
    Attack(
        "fixed-disk",
        _BASE + "(allow process .fixed_disk_device_t (blk_file (read write open)))",
        "read and write the node's disks",
        DENIED,
        "type 'fixed_disk_device_t' is on the deny list",
        ISSUE_ATTRIBUTES,
    ),
    Attack(
        "attrset-shadow",
        _BASE + "(typeattributeset .can_write_shadow_passwords (process))",
        "gives the container the right to write /etc/shadow",
        FORBIDDEN,
        "typeattributeset of '.can_write_shadow_passwords'",
        ISSUE_ATTRIBUTES,
    ),
    Attack(
        "cap-sys-admin",
        _BASE + "(allow process self (capability (sys_admin)))",
        "CAP_SYS_ADMIN: mount, and most ways out of a container",
        DENIED,
        "permission 'sys_admin' is on the deny list",
        ISSUE_ATTRIBUTES,
    ),
    # new: quoting and the template
    Attack(
        "fully-quoted-allow",
        _BASE + '("allow" "process" ".shadow_t" ("file" ("read" "open")))',
        "reads /etc/shadow, every token quoted",
        DENIED,
        "type 'shadow_t' is on the deny list",
    ),
    Attack(
        "bare-in",
        _BASE + "(in container (typepermissive process))",
        "every container of every profile that inherits the template runs permissive",
        FORBIDDEN,
        "'in' statement acts on the whole policy",
    ),
    Attack(
        "in-global-allow",
        _BASE + "(in container (allow process .etc_t (file (write))))",
        "every profile that inherits the template writes /etc",
        FORBIDDEN,
        "'in' statement acts on the whole policy",
    ),
    Attack(
        "in-other-tenant",
        _BASE + f'("in" "{VICTIM_BLOCK}" ("typepermissive" "process"))',
        "makes another tenant's profile permissive",
        FORBIDDEN,
        "'in' statement acts on the whole policy",
    ),
    Attack(
        "template-type",
        _BASE + "(allow process container.process (process (ptrace)))",
        "names a type inside the shared template's block",
        DENIED,
        "'container.process' names a type inside another block",
    ),
    Attack(
        "cross-tenant",
        _BASE + f"(allow process {VICTIM_BLOCK}.process (process (ptrace)))",
        "ptraces another namespace's containers",
        DENIED,
        f"'{VICTIM_BLOCK}.process' names a type inside another block",
    ),
    Attack(
        "inherit-tenant",
        f"(blockinherit {VICTIM_BLOCK})",
        "inherits another namespace's profile",
        NOT_ALLOWED,
        f"system profile '{VICTIM_BLOCK}' is not in",
    ),
    # new: statements that carry other statements
    Attack(
        "macro-call",
        _BASE
        + "(macro grant ((type t)) (allow t .shadow_t (file (read open))))\n(call grant (process))",
        "a macro grants, through its parameter, what the rule itself would be refused",
        FORBIDDEN,
        "'macro' statement acts on the whole policy",
    ),
    Attack(
        "call-quoted",
        _BASE + '("macro" "grant" ((type t)) (allow t .etc_t (file (write))))\n("call" "grant" '
        '("process"))',
        "the same, quoted",
        FORBIDDEN,
        "'macro' statement acts on the whole policy",
    ),
    Attack(
        "optional",
        _BASE + f"(optional extra {_SHADOW})",
        "an optional block around a denied rule",
        FORBIDDEN,
        "'optional' statement acts on the whole policy",
    ),
    Attack(
        "boolean",
        _BASE + f"(boolean on true)\n(booleanif on (true {_SHADOW}))",
        "a boolean that switches a denied rule on",
        FORBIDDEN,
        "'boolean' statement acts on the whole policy",
    ),
    Attack(
        "tunable",
        _BASE + f"(tunable on true)\n(tunableif on (true {_SHADOW}))",
        "a tunable that switches a denied rule on",
        FORBIDDEN,
        "'tunable' statement acts on the whole policy",
    ),
    Attack(
        "deep-nesting",
        _BASE + _nested(60),
        "a denied rule under 60 optional blocks (a checker that stops descending misses it)",
        INVALID,
        "nested more than 16 deep",
    ),
    # new: permissions
    Attack(
        "classpermissionset",
        _BASE + "(classpermission reading)\n(classpermissionset reading (file (read open)))\n"
        "(allow process .etc_t reading)",
        "a named class permission set hides the class and permissions from the rule",
        FORBIDDEN,
        "'classpermission' statement acts on the whole policy",
    ),
    Attack(
        "classpermission-all",
        _BASE + "(classpermission every)\n(classpermissionset every (file (all)))\n"
        "(allow process var_log_t every)",
        "every file permission, relabelto included",
        FORBIDDEN,
        "'classpermission' statement acts on the whole policy",
    ),
    Attack(
        "perm-all",
        _BASE + "(allow process var_log_t (file (all)))",
        "'all' is every permission of the class, relabelto included",
        DENIED,
        "'all' makes the permissions an expression",
    ),
    Attack(
        "perm-not",
        _BASE + "(allow process var_log_t (file (not (read))))",
        "'not' is every other permission, relabelto included",
        DENIED,
        "'not' makes the permissions an expression",
    ),
    Attack(
        "classmap",
        _BASE + "(classmap files (r))\n(classmapping files r (file (read open)))\n"
        "(allow process .etc_t (files (r)))",
        "a class map renames classes and permissions",
        FORBIDDEN,
        "'classmap' statement acts on the whole policy",
    ),
    Attack(
        "allowx",
        _BASE + "(allow process self (tcp_socket (ioctl)))\n"
        "(allowx process self (ioctl tcp_socket (range 0x0000 0xffff)))",
        "every ioctl command",
        FORBIDDEN,
        "'allowx' statement acts on the whole policy",
    ),
    Attack(
        "cap-userns",
        _BASE + "(allow process self (cap_userns (sys_admin sys_ptrace)))",
        "CAP_SYS_ADMIN in a user namespace",
        DENIED,
        "permission 'sys_admin' is on the deny list",
    ),
    Attack(
        "cap-net-admin",
        _BASE + "(allow process self (capability (net_admin)))",
        "reconfigures the node's network",
        DENIED,
        "permission 'net_admin' is on the deny list",
    ),
    Attack(
        "cap-ptrace",
        _BASE + "(allow process self (capability (sys_ptrace dac_read_search)))",
        "ptrace any process of the same domain, read any file regardless of its mode",
        DENIED,
        "permission 'sys_ptrace' is on the deny list",
    ),
    Attack(
        "cap2-mac-admin",
        _BASE + "(allow process self (capability2 (mac_admin)))",
        "sets labels the policy does not know",
        DENIED,
        "permission 'mac_admin' is on the deny list",
    ),
    # new: types, aliases, attributes
    Attack(
        "typealias",
        _BASE
        + "(typealias secret)\n(typealiasactual secret .shadow_t)\n(allow process secret (file "
        "(read open)))",
        "a local alias of a denied type",
        FORBIDDEN,
        "'typealias' statement acts on the whole policy",
    ),
    Attack(
        "alias-of-denied",
        _BASE + "(allow process .restorecon_t (process (transition)))",
        "the policy's own alias of setfiles_t (relabels any file)",
        DENIED,
        "type 'restorecon_t' is on the deny list",
    ),
    Attack(
        "alias-semanage",
        _BASE + "(allow process .semanage_var_lib_t (dir (write add_name)))",
        "the policy's own alias of semanage_store_t (the policy store)",
        DENIED,
        "type 'semanage_var_lib_t' is on the deny list",
    ),
    Attack(
        "typebounds",
        _BASE + "(type child_t)\n(typebounds process child_t)\n(roletype system_r child_t)\n"
        "(typeattributeset .domain (child_t))",
        "a second domain of the profile, made a domain through a global attribute",
        FORBIDDEN,
        "'typebounds' statement acts on the whole policy",
    ),
    Attack(
        "attrset-all",
        _BASE + "(typeattribute everything_t)\n(typeattributeset everything_t (all))\n"
        "(allow process everything_t (file (read open)))",
        "a local attribute holding every type of the policy",
        FORBIDDEN,
        "attribute expressions (all, not, and, or, xor) are not allowed",
    ),
    Attack(
        "attrset-not",
        _BASE + "(typeattribute others_t)\n(typeattributeset others_t (not process))\n"
        "(allow process others_t (process (ptrace)))",
        "a local attribute holding every type but its own",
        FORBIDDEN,
        "attribute expressions (all, not, and, or, xor) are not allowed",
    ),
    Attack(
        "attrset-or",
        _BASE + "(typeattribute mine_t)\n(typeattributeset mine_t (or .etc_t .bin_t))\n"
        "(allow process mine_t (file (write)))",
        "a local attribute holding global types: writes /etc and /usr/bin",
        FORBIDDEN,
        "attribute expressions (all, not, and, or, xor) are not allowed",
    ),
    Attack(
        "attrset-and",
        _BASE + "(typeattribute secrets_t)\n(typeattributeset secrets_t (and .file_type "
        ".auth_file_type))\n"
        "(allow process secrets_t (file (read open)))",
        "a local attribute holding the authentication files",
        FORBIDDEN,
        "attribute expressions (all, not, and, or, xor) are not allowed",
    ),
    Attack(
        "local-attr-global-member",
        _BASE + "(typeattribute group_t)\n(typeattributeset group_t (.etc_t))\n"
        "(allow process group_t (file (write)))",
        "a local attribute holding a global type (hides the type from the rule)",
        FORBIDDEN,
        "'.etc_t' is not a type of the profile's own block",
    ),
    Attack(
        "attrset-mcs",
        _BASE
        + "(typeattributeset .mcsreadall (process))\n(typeattributeset .mcswriteall (process))",
        "reads and writes every other container's files across MCS categories",
        FORBIDDEN,
        "typeattributeset of '.mcsreadall'",
    ),
    Attack(
        "attrset-container-domain",
        _BASE + "(type helper_t)\n(typeattributeset container_domain (helper_t))",
        "adds a type to the template's attribute (accepted before this change)",
        FORBIDDEN,
        "typeattributeset of 'container_domain'",
    ),
    Attack(
        "shadow-template-attribute",
        _BASE + "(typeattribute container_domain)\n(typeattribute svirt_sandbox_domain)",
        "the template's typeattributeset statements fill these local attributes instead: the "
        "container's type leaves container_domain and svirt_sandbox_domain, which "
        "container-selinux makes MCS-constrained (other containers' files across categories)",
        FORBIDDEN,
        "typeattribute 'container_domain': a name the profile declares must end in '_t'",
    ),
    Attack(
        "attr-port-type",
        _BASE + "(allow process .port_type (tcp_socket (name_bind)))",
        "binds any port, ssh's included",
        DENIED,
        "'port_type' is an attribute, not a type",
    ),
    Attack(
        "long-token",
        _BASE + f"(type {_LONG})\n(allow process {_LONG} (file (read)))",
        "a 2000-character type name (CIL takes up to 2047): breaks audit records and log lines",
        INVALID,
        "is not a name of at most 255",
    ),
    # new: transitions and rules for other domains
    Attack(
        "process-transition-global",
        _BASE + "(allow process .sshd_t (process (transition)))",
        "enters sshd's domain and gets its rights",
        DENIED,
        "permission 'transition' of class 'process' on '.sshd_t'",
    ),
    Attack(
        "dyntransition",
        _BASE + "(allow process self (process (setcurrent)))\n(allow process .crond_t (process "
        "(dyntransition)))",
        "switches to cron's domain at run time",
        DENIED,
        "permission 'dyntransition' of class 'process' on '.crond_t'",
    ),
    Attack(
        "typetransition-process-foreign",
        _BASE + "(typetransition process .bin_t process .sshd_t)",
        "executing a program enters sshd's domain",
        DENIED,
        "typetransition into '.sshd_t'",
    ),
    Attack(
        "named-transition-foreign",
        _BASE + '(typetransition .user_t .user_home_dir_t file ".bashrc" process)',
        "users' new .bashrc files get the container's type, which the container may write",
        FORBIDDEN,
        "typetransition from '.user_t': the source must be a type of the profile's own block",
    ),
    Attack(
        "transition-result-denied",
        _BASE + '(typetransition process .etc_t file "shadow" .shadow_t)',
        "files the container creates in /etc named shadow are labelled shadow_t",
        DENIED,
        "type 'shadow_t' is on the deny list",
    ),
    Attack(
        "allow-foreign-source",
        _BASE + "(allow .user_t .var_log_t (file (write)))",
        "a rule for another domain: host users write the node's logs",
        FORBIDDEN,
        "allow from '.user_t': the source must be a type of the profile's own block",
    ),
    Attack(
        "dontaudit-foreign",
        _BASE + "(dontaudit .sshd_t .etc_t (file (write)))",
        "hides another domain's denials from the audit log",
        FORBIDDEN,
        "dontaudit from '.sshd_t': the source must be a type of the profile's own block",
    ),
    Attack(
        "typemember",
        _BASE + "(typemember .crond_t .tmp_t dir process)",
        "polyinstantiated directories of cron get the container's type",
        FORBIDDEN,
        "'typemember' statement acts on the whole policy",
    ),
    Attack(
        "neverallow",
        _BASE + "(neverallow .container_domain .http_port_t (tcp_socket (name_bind)))",
        "other tenants' profiles that bind HTTP ports no longer install",
        FORBIDDEN,
        "'neverallow' statement acts on the whole policy",
    ),
    # new: labelling, roles, users, MLS
    Attack(
        "filecon",
        _BASE + '(filecon "/etc/shadow" file (system_u object_r var_log_t ((s0) (s0))))',
        "the next relabel gives /etc/shadow a type the container may read",
        FORBIDDEN,
        "'filecon' statement acts on the whole policy",
    ),
    Attack(
        "context-filecon",
        _BASE
        + '(context secret (system_u object_r shadow_t ((s0) (s0))))\n(filecon "/var/log/app" '
        "file secret)",
        "a named context labels a path shadow_t",
        FORBIDDEN,
        "'context' statement acts on the whole policy",
    ),
    Attack(
        "portcon",
        _BASE + "(portcon tcp 10250 (system_u object_r http_port_t ((s0) (s0))))",
        "labels the kubelet's port as an HTTP port, which containers may bind and connect to",
        FORBIDDEN,
        "'portcon' statement acts on the whole policy",
    ),
    Attack(
        "genfscon",
        _BASE
        + '(genfscon proc "/sys/kernel/core_pattern" (system_u object_r var_log_t ((s0) (s0))))',
        "labels core_pattern with a type containers may write: the next crash runs the tenant's "
        "program on the node",
        FORBIDDEN,
        "'genfscon' statement acts on the whole policy",
    ),
    Attack(
        "rangetransition",
        _BASE + "(rangetransition process .bin_t process ((s0) (s0 (range c0 c1023))))",
        "executing a program gives the container every MCS category: other containers' files",
        FORBIDDEN,
        "'rangetransition' statement acts on the whole policy",
    ),
    Attack(
        "roletype-other",
        _BASE + "(roletype sysadm_r process)",
        "the administrators' role may run the container's type",
        FORBIDDEN,
        "'roletype' statement acts on the whole policy",
    ),
    Attack(
        "userrole",
        _BASE + "(userrole user_u sysadm_r)",
        "unprivileged users get the administrators' role",
        FORBIDDEN,
        "'userrole' statement acts on the whole policy",
    ),
    Attack(
        "roleallow",
        _BASE + "(roleallow staff_r sysadm_r)",
        "staff users may switch to the administrators' role",
        FORBIDDEN,
        "'roleallow' statement acts on the whole policy",
    ),
    Attack(
        "roletransition",
        _BASE + "(roletransition staff_r .bin_t process sysadm_r)",
        "staff users running a program enter the administrators' role",
        FORBIDDEN,
        "'roletransition' statement acts on the whole policy",
    ),
    Attack(
        "selinuxuser",
        _BASE + "(selinuxuser alice sysadm_u ((s0) (s0)))",
        "maps a login to the administrators' SELinux user",
        FORBIDDEN,
        "'selinuxuser' statement acts on the whole policy",
    ),
    Attack(
        "user-decl",
        _BASE + "(user intruder)\n(userrole intruder sysadm_r)\n(userlevel intruder (s0))\n"
        "(userrange intruder ((s0) (s0 (range c0 c1023))))",
        "a new SELinux user with the administrators' role and every category",
        FORBIDDEN,
        "'user' statement acts on the whole policy",
    ),
    Attack(
        "class-decl",
        _BASE + "(class intrusion (read))\n(classorder (unordered intrusion))",
        "a new kernel class (the node's kernel treats it as unknown: the policy allows unknown "
        "classes)",
        FORBIDDEN,
        "'class' statement acts on the whole policy",
    ),
    # new: leaving the block
    Attack(
        "unbalanced-close",
        "(blockinherit container))\n(allow .user_t .shadow_t (file (read write)))\n(block x",
        "closes the profile's block early: host users read and write /etc/shadow (the wrapper's "
        "')' closes block x)",
        INVALID,
        "unmatched ')' would close the profile's block",
    ),
    Attack(
        "unbalanced-quoted",
        '(blockinherit container))\n("typepermissive" "user_t")\n("block" "y"',
        "the same, quoted: host users' domain permissive",
        INVALID,
        "unmatched ')' would close the profile's block",
    ),
    Attack(
        "escape-mls",
        "(blockinherit container))\n(sensitivity s1)\n(sensitivityorder (s0 s1))\n"
        "(sensitivitycategory s1 (range c0 c1023))\n(block z",
        "leaves the block to add an MLS sensitivity to the whole policy",
        INVALID,
        "unmatched ')' would close the profile's block",
    ),
    Attack(
        "nul-in-comment",
        '(blockinherit container) ;\x00\n("typepermissive" process)',
        "a NUL byte: tools written in C see the text end there, semodule reads on",
        INVALID,
        "must not contain NUL characters",
    ),
    Attack(
        "cr-ends-comment",
        "(blockinherit container)\n; a note\r(typepermissive .crond_t)",
        "a carriage return ends a CIL comment: what looks commented out makes cron permissive",
        FORBIDDEN,
        "'typepermissive' statement acts on the whole policy",
    ),
    Attack(
        "ambiguous-comment",
        '(blockinherit container)\n; "a\r" (typepermissive .sshd_t) "\n',
        "libsepol 3.4 reads the whole line as a comment; a lexer that ends comments at any "
        "carriage return reads a typepermissive",
        INVALID,
        "a quoted string in a comment holds a carriage return",
    ),
)
