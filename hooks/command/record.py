"""``spo record`` and ``spo run``: a profile for a program on this machine, and what a profile
refuses.

The command layer: it reads and writes profile files, merges a profile with its
bases the way the SeccompProfile hook does (:mod:`hooks.cluster.seccomp.merging`), and
hands the running to :mod:`nodesync.tracing` (seccomp user notification: see
there). Every message goes to stderr, the command's own output is untouched.

Exit codes: the command's own (128 + N when signal N ended it); 2 when spo
cannot do what was asked (a bad profile file, a machine that lacks what this
needs); 127 when the command is not found, 126 when it cannot be executed.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from hooks.api import GROUP, syscalls
from hooks.api import seccompprofile as api
from hooks.api.base import ObjectMeta
from hooks.api.problems import ProfileProblem
from hooks.api.seccompprofile import Action, SeccompProfile, SeccompProfileSpec, Syscall
from hooks.cluster.seccomp import merging, oci, validation
from nodesync.tracing import filters, recording, running
from nodesync.tracing.kernel import Unsupported
from nodesync.tracing.supervising import CommandFailedToStart, CommandNotFound, Exit

API_VERSION: Final = api.KIND.api_version
KIND: Final = api.KIND.kind
FAILED: Final = 2
NOT_FOUND: Final = 127
CANNOT_EXECUTE: Final = 126
PROFILE_SUFFIXES: Final = (".yaml", ".yml", ".json")
LETS_THROUGH: Final = (Action.ALLOW, Action.LOG)  # what a base "allows": the call goes through


class Failure(Exception):
    """spo cannot do what was asked: the message says why; exit code 2."""


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --- profile files --------------------------------------------------------------------------


def _documents(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise Failure(f"{path}: {error.strerror or error}") from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise Failure(f"{path}: not YAML or JSON: {error}") from None
    items: list[Any] = []
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            items.extend(document.get("items") or [])
        else:
            items.append(document)
    return items


def _is_seccomp_profile(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("kind") == KIND
        and str(document.get("apiVersion", "")).startswith(f"{GROUP}/")
    )


def _parse_profile(document: Mapping[str, Any], where: Path) -> SeccompProfile:
    try:
        return SeccompProfile.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise Failure(f"{where}: {field}: {first['msg']}") from None


def profiles_in(path: Path) -> list[SeccompProfile]:
    """The SeccompProfiles of a file."""
    return [_parse_profile(doc, path) for doc in _documents(path) if _is_seccomp_profile(doc)]


def _profile_files(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise Failure(f"{folder}: {error.strerror or error}") from None
    for entry in entries:
        if entry.suffix in PROFILE_SUFFIXES and entry.is_file():
            yield entry


def profiles_beside(folder: Path) -> dict[str, SeccompProfile]:
    """The SeccompProfiles of the files of ``folder``, by name (files that do not parse are
    skipped)."""
    found: dict[str, SeccompProfile] = {}
    for path in _profile_files(folder):
        try:
            for profile in profiles_in(path):
                found.setdefault(profile.name, profile)
        except Failure:
            continue
    return found


def _only_profile(path: Path) -> SeccompProfile:
    profiles = profiles_in(path)
    if len(profiles) != 1:
        raise Failure(f"{path}: expected one {KIND}, found {len(profiles)}")
    return profiles[0]


def merged_with_bases(
    profile: SeccompProfile, folder: Path
) -> tuple[SeccompProfileSpec, list[str], list[str]]:
    """``profile`` merged with its bases, found in the files of ``folder``; the bases' names;
    and the warnings the hook would put in the profile's status (names of other architectures).

    The checks and the merge are the SeccompProfile hook's, so what this gives
    is what a node would install.
    """
    try:
        warnings = validation.check_spec(profile.spec)
        siblings = profiles_beside(folder) if profile.spec.baseProfileName else {}
        chain = merging.base_chain(profile, siblings)
        validation.check_bases(chain)
    except ProfileProblem as problem:
        where = (
            f" (bases are looked up in {folder})" if problem.reason == "BaseProfileNotFound" else ""
        )
        raise Failure(f"{profile.name or KIND}: {problem.message}{where}") from None
    merged = merging.merge(profile.spec, [base.spec for base in chain])
    return merged, [base.name for base in chain], warnings


def runnable(path: Path, base_dir: Path | None) -> tuple[SeccompProfileSpec, int | None, str]:
    """The profile to run from ``path``: a SeccompProfile with its bases, or a runtime JSON.

    Returns the spec, the runtime's ``defaultErrnoRet`` (runtime JSON only) and
    a description for messages.
    """
    documents = _documents(path)
    if len(documents) == 1 and isinstance(documents[0], dict) and "defaultAction" in documents[0]:
        raw = dict(documents[0])
        default_errno = raw.pop("defaultErrnoRet", None)
        try:
            spec = SeccompProfileSpec.model_validate(raw)
            warnings = validation.check_spec(spec)
        except ValidationError as error:
            first = error.errors()[0]
            raise Failure(
                f"{path}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            ) from None
        except ProfileProblem as problem:
            raise Failure(f"{path}: {problem.message}") from None
        if spec.baseProfileName:
            raise Failure(f"{path}: a runtime profile has no baseProfileName")
        _warn(path, warnings)
        return (
            spec,
            default_errno if isinstance(default_errno, int) else None,
            f"runtime profile {path}",
        )
    profile = _only_profile(path)
    if profile.spec.disabled:
        _say(
            f"spo run: {profile.name} is disabled (spec.disabled): a node would not install "
            "it; running it anyway"
        )
    spec, bases, warnings = merged_with_bases(profile, base_dir or path.parent)
    _warn(path, warnings)
    described = f"{KIND} {profile.name}" + (f" (with {' -> '.join(bases)})" if bases else "")
    return spec, None, described


def _warn(path: Path, warnings: Sequence[str]) -> None:
    """Say what the SeccompProfile hook says in the status of a profile it accepts with a
    warning (the names libseccomp leaves out on the profile's architectures)."""
    for warning in warnings:
        _say(f"spo run: warning: {path}: {warning}")


# --- spo record -----------------------------------------------------------------------------


def profile_name(argv: Sequence[str]) -> str:
    """A valid object name from the command: its file name, lowercased, other characters as '-'."""
    base = os.path.basename(argv[0]) if argv else ""
    name = re.sub(r"[^a-z0-9.-]+", "-", base.lower()).strip("-.")
    return name[: validation.MAX_NAME] or "recorded"


def _base_of(argument: str, base_dir: Path | None) -> tuple[str, SeccompProfileSpec]:
    """The base's name and what it lets through (its own bases merged)."""
    path = Path(argument)
    if path.is_file():
        base = _only_profile(path)
        folder = base_dir or path.parent
    else:
        folder = base_dir or Path.cwd()
        found = profiles_beside(folder).get(argument)
        if found is None:
            raise Failure(
                f"--base {argument}: no {KIND} named {argument!r} in the files of {folder} "
                "(give its file, or --base-dir)"
            )
        base = found
    spec, _, _ = merged_with_bases(base, folder)  # the base's warnings are the base's own
    return base.name, spec


def let_through(spec: SeccompProfileSpec) -> set[str]:
    """The syscalls ``spec`` lets through whatever their arguments (empty when it allows everything
    by default: then the caller must not list anything)."""
    return {
        name
        for rule in spec.syscalls or []
        if rule.action in LETS_THROUGH and not rule.args
        for name in rule.names
    }


def recorded_profile(
    names: Sequence[str],
    architectures: Sequence[str],
    name: str,
    namespace: str | None,
    base: tuple[str, SeccompProfileSpec] | None,
) -> SeccompProfile:
    """Deny by default, allow the sorted ``names`` (minus what the base lets through)."""
    allowed = sorted(set(names))
    if base is not None:
        _, base_spec = base
        if base_spec.defaultAction in LETS_THROUGH:
            allowed = []
        else:
            covered = let_through(base_spec)
            allowed = [syscall for syscall in allowed if syscall not in covered]
    spec = SeccompProfileSpec(
        baseProfileName=base[0] if base else None,
        defaultAction=Action.ERRNO,
        architectures=[api.Arch(arch) for arch in sorted(set(architectures))],
        syscalls=[Syscall(names=allowed, action=Action.ALLOW)] if allowed else None,
    )
    return SeccompProfile(
        apiVersion=API_VERSION,
        kind=KIND,
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=spec,
    )


def _write(text: str, out: str) -> str:
    """Write the profile: a regular file atomically (a temporary file renamed over it); anything
    else (a device such as /dev/null, a pipe, a symbolic link) is written through, never
    replaced."""
    if out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return "standard output"
    path = Path(out)
    try:
        if path.is_symlink() or (path.exists() and not path.is_file()):
            with path.open("w", encoding="utf-8") as target:
                target.write(text)
            return str(path)
        temporary = path.with_name(f".{path.name}.spo-tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        raise Failure(f"{out}: {error.strerror or error}") from None
    return str(path)


def _on_stragglers(program: str) -> None:
    _say(
        f"spo {program}: the command has exited, but processes it started still run; "
        "waiting for them (Ctrl-C to stop)"
    )


def record(args: argparse.Namespace) -> int:
    argv: list[str] = args.argv
    base = (
        _base_of(args.base, Path(args.base_dir) if args.base_dir else None) if args.base else None
    )
    name = args.name or profile_name(argv)
    try:
        validation.check_name(name)
    except ProfileProblem as problem:
        raise Failure(problem.message) from None
    recorded = recording.record(argv, on_stragglers=lambda: _on_stragglers("record"))
    if recorded.unnamed():
        _say(
            "spo record: WARNING: calls the syscall table cannot name are left out of the profile "
            f"(libseccomp {syscalls.libseccomp_version()}): {', '.join(recorded.unnamed())}"
        )
    architectures = {syscalls.native_arch(), *recorded.architectures()}
    profile = recorded_profile(recorded.names(), sorted(architectures), name, args.namespace, base)
    if args.format == "oci":
        bases = [base[1]] if base else []
        text = oci.encode(oci.runtime_profile(merging.merge(profile.spec, bases)))
    else:
        text = yaml.safe_dump(profile.to_wire(), sort_keys=False)
    out = args.output or f"{name}.{'json' if args.format == 'oci' else 'yaml'}"
    where = _write(text, out)
    allowed = len(profile.spec.syscalls[0].names) if profile.spec.syscalls else 0
    based = f", {len(recorded.names()) - allowed} more allowed by {base[0]}" if base else ""
    _say(
        f"spo record: {len(recorded.names())} syscalls from {recorded.processes} processes "
        f"({recorded.threads} threads): {allowed} allowed{based}; wrote {where}"
    )
    if recorded.exit.returncode != 0:
        _say(
            f"spo record: the command {_ended(recorded.exit)}: "
            "the profile has what it did until then"
        )
    return recorded.exit.returncode


def _ended(exit: Exit) -> str:
    if exit.signal is not None:
        return f"was killed by signal {exit.signal}"
    return f"exited with code {exit.code}"


# --- spo run --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    spec, default_errno, described = runnable(
        Path(args.profile), Path(args.base_dir) if args.base_dir else None
    )
    try:
        compiled = filters.compile_profile(spec, default_errno)
    except filters.ProfileError as error:
        raise Failure(f"{args.profile}: {error}") from None
    if compiled.skipped:
        _say(
            f"spo run: not known to libseccomp {filters.libseccomp_version()}, skipped as runc "
            "skips them: " + ", ".join(compiled.skipped)
        )
    said: set[tuple[str, str]] = set()

    def report(refusal: running.Refusal) -> None:
        key = (refusal.syscall, refusal.executable)
        if key in said:
            return
        said.add(key)
        _say(
            f"spo run: refused {refusal.syscall} "
            f"({errno.errorcode.get(refusal.errno, refusal.errno)}) "
            f"to {refusal.executable} (pid {refusal.pid})"
        )

    ran = running.run(
        args.argv, compiled, on_refusal=report, on_stragglers=lambda: _on_stragglers("run")
    )
    counts = Counter(refusal.syscall for refusal in ran.refusals)
    if counts:
        listed = ", ".join(f"{name} ({count}x)" for name, count in sorted(counts.items()))
        _say(f"spo run: {described} refused {len(counts)} syscalls: {listed}")
    else:
        _say(f"spo run: {described} refused nothing")
    if ran.exit.signal is not None:
        _say(f"spo run: the command {_ended(ran.exit)}")
    return ran.exit.returncode


# --- the command line -----------------------------------------------------------------------


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help=(
            "where to write the profile (default NAME.yaml, NAME.json with --format oci; - for "
            "standard output)"
        ),
    )
    parser.add_argument(
        "--name", help="metadata.name of the profile (default: the command's file name)"
    )
    parser.add_argument(
        "--namespace", help="metadata.namespace of the profile (default: none, kubectl's)"
    )
    parser.add_argument(
        "--base",
        metavar="NAME|FILE",
        help="build on this base profile (baseProfileName): what it allows is left out",
    )
    parser.add_argument(
        "--base-dir",
        metavar="DIR",
        help=(
            "where base profiles given by name are looked up (default: beside --base FILE, else "
            "the current folder)"
        ),
    )
    parser.add_argument(
        "--format",
        choices=("crd", "oci"),
        default="crd",
        help=(
            "crd: a SeccompProfile for kubectl apply (default); oci: the runtime's JSON, bases "
            "merged in"
        ),
    )
    parser.add_argument("argv", nargs="+", metavar="-- CMD [ARGS...]", help="the command to record")
    parser.set_defaults(func=_guarded(record, "record"))


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        required=True,
        metavar="FILE",
        help="a SeccompProfile manifest (bases merged) or a runtime seccomp JSON",
    )
    parser.add_argument(
        "--base-dir",
        metavar="DIR",
        help="where base profiles are looked up (default: beside --profile)",
    )
    parser.add_argument("argv", nargs="+", metavar="-- CMD [ARGS...]", help="the command to run")
    parser.set_defaults(func=_guarded(run, "run"))


def _guarded(
    command: Callable[[argparse.Namespace], int], program: str
) -> Callable[[argparse.Namespace], int]:
    def guarded(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except Failure as failure:
            _say(f"spo {program}: {failure}")
            return FAILED
        except Unsupported as unsupported:
            _say(
                f"spo {program}: this machine cannot run a command under a seccomp listener: "
                f"{unsupported}"
            )
            return FAILED
        except CommandNotFound as error:
            _say(f"spo {program}: {error.strerror}")
            return NOT_FOUND
        except CommandFailedToStart as error:
            _say(f"spo {program}: {args.argv[0]}: {error.strerror}")
            return NOT_FOUND if error.errno == errno.ENOENT else CANNOT_EXECUTE

    return guarded
