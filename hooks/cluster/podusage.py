"""Which profiles and recordings a pod uses, as labels on the pod, so that each controller asks
Metacontroller only for the pods that concern one of its objects.

A profile, binding or recording needs the pods that use it (``status.activeWorkloads``, and
its finalize hook waits for them). Asking for every pod of the namespace made every pod event
sync every profile of the namespace, each sync carrying every pod: K x P per event. The
DecoratorController ``spo-pod-usage`` (``metacontroller/base/pod-usage-decorator.yaml``) syncs
each pod once per event and labels it ``uses.spo.x-k8s.io/<Kind>-<name>: "true"`` for every
object of its own namespace it uses:

- ``SeccompProfile``: a Localhost seccomp profile ``operator/<namespace>/<name>.json`` (pod,
  container or legacy annotation);
- ``SelinuxProfile`` and ``RawSelinuxProfile``: the SELinux type ``<name>_<namespace>.process``;
- ``ProfileRecording``: a recording annotation naming it (the recording webhook's).

A binding's pods are those of its profile. The controllers select on the label (``rule``), so
a pod event syncs only the objects it uses. The label is a hint, never a verdict: what a pod
uses is read from its spec again (``hooks.cluster.workloads``), and a profile being deleted
asks for every pod of its namespace (the deletion bumps its generation, so Metacontroller asks
the customize hook again), so a pod not yet labelled, or whose label a user removed, still keeps
the profile from being deleted while it runs. Labels with the prefix that the pod does not use
are removed.
"""

from __future__ import annotations

from hooks.api import podannotations
from hooks.api import profilerecording as recording_api
from hooks.api import rawselinuxprofile as raw_api
from hooks.api import seccompprofile as seccomp_api
from hooks.api import selinuxprofile as selinux_api
from hooks.api.base import Object, Wire
from hooks.api.nodestatuslabels import profile_id
from hooks.cluster.contract import LabelSelector, ResourceRule
from hooks.cluster.workloads import seccomp_profiles_used, selinux_types_used

PREFIX = "uses.spo.x-k8s.io/"


def label(kind: str, name: str) -> str:
    """The label key a pod carries when it uses the object ``kind``/``name`` of its namespace."""
    return PREFIX + profile_id(kind, name)


def rule(parent: Object, kind: str, name: str) -> ResourceRule:
    """The related pods of an object: those labelled as using ``kind``/``name``; every pod of
    its namespace once it is being deleted (the finalize hook must not trust a label)."""
    meta = parent.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    if meta.get("deletionTimestamp"):
        return every_pod(namespace)
    return ResourceRule(
        apiVersion="v1",
        resource="pods",
        namespace=namespace,
        labelSelector=LabelSelector(matchLabels={label(kind, name): "true"}),
    )


def every_pod(namespace: str) -> ResourceRule:
    return ResourceRule(apiVersion="v1", resource="pods", namespace=namespace)


def used(pod: Object) -> set[str]:
    """The label keys of what ``pod`` uses in its own namespace."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    keys = set()
    for path in seccomp_profiles_used(pod):
        if (name := seccomp_api.profile_of_localhost(path, namespace)) is not None:
            keys.add(label(seccomp_api.KIND.kind, name))
    for selinux_type in selinux_types_used(pod):
        if (name := selinux_api.profile_of_usage(selinux_type, namespace)) is not None:
            keys.add(label(selinux_api.KIND.kind, name))
            keys.add(label(raw_api.KIND.kind, name))
    for recording in podannotations.recordings_named(meta.get("annotations") or {}):
        keys.add(label(recording_api.KIND.kind, recording))
    return keys


class PodSyncResponse(Wire):
    """A DecoratorController's answer that changes only the pod's labels (``None`` removes)."""

    labels: dict[str, str | None]


def sync(pod: Object) -> PodSyncResponse:
    """The usage labels ``pod`` should carry: set those it uses, remove the others."""
    current = (pod.get("metadata") or {}).get("labels") or {}
    wanted = used(pod)
    labels: dict[str, str | None] = dict.fromkeys(sorted(wanted), "true")
    for key in sorted(current):
        if key.startswith(PREFIX) and key not in wanted:
            labels[key] = None
    return PodSyncResponse(labels=labels)
