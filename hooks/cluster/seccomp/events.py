"""The warning Event of a SeccompProfile: a child of the profile, computed like its ConfigMap.

A hook has no credentials and calls no API, so a warning reaches ``kubectl describe`` as a
desired child: Metacontroller creates the Event while the hook returns it, and deletes it
when the hook stops returning it (the warning is gone, or the profile is). Everything in
it comes from the request, so that the same request gives the same Event:

- its name is the profile's name and a digest of the profile's name and the message, so
  that a new warning is a new Event and an unchanged one is left alone;
- its time is that of the Event already there, else that of the profile's Ready condition
  in this answer (kept by the condition while the condition holds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hooks.api.base import Object

COMPONENT = "spo-seccompprofile-controller"
REASON = "SyscallsNotOnArchitecture"
MAX_NAME = 253
DIGEST = 10  # hex digits of the digest in the name
MAX_MESSAGE = 1024  # the most events.k8s.io/v1 takes in a note (the core API takes more)


def event_name(profile: str, message: str) -> str:
    digest = hashlib.sha256(f"{profile}\n{message}".encode()).hexdigest()[:DIGEST]
    stem = profile[: MAX_NAME - DIGEST - 1].rstrip(".-")
    return f"{stem}.{digest}"


def shortened(message: str) -> str:
    if len(message.encode()) <= MAX_MESSAGE:
        return message
    return message.encode()[: MAX_MESSAGE - 3].decode(errors="ignore") + "..."


def warning_event(
    parent: Object, warnings: Sequence[str], observed: Sequence[Object], since: str
) -> Object:
    """The Warning Event about ``parent`` saying ``warnings``; ``observed`` are the Events the
    request shows as children, ``since`` the time of the Ready condition answered."""
    meta = parent.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    message = shortened("; ".join(warnings))
    event = event_name(name, message)
    when = since
    for old in observed:
        if (old.get("metadata") or {}).get("name") == event and old.get("firstTimestamp"):
            when = str(old["firstTimestamp"])
    involved: dict[str, str] = {
        "apiVersion": str(parent.get("apiVersion", "")),
        "kind": str(parent.get("kind", "")),
        "name": name,
        "namespace": namespace,
    }
    if meta.get("uid"):
        involved["uid"] = str(meta["uid"])
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event, "namespace": namespace},
        "involvedObject": involved,
        "reason": REASON,
        "message": message,
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }
