"""Reason strings shared by logs, events, metric labels and node status messages.

They are the Go operator's CamelCase reasons, so dashboards built for it keep working.
"""

from __future__ import annotations

SECCOMP_NOT_SUPPORTED = "SeccompNotSupportedOnNode"
INVALID_PROFILE = "InvalidSeccompProfile"
CANNOT_GET_PATH = "CannotGetSeccompProfilePath"
CANNOT_SAVE = "CannotSaveSeccompProfile"
CANNOT_REMOVE = "CannotRemoveSeccompProfile"
CANNOT_UPDATE_STATUS = "CannotUpdateNodeStatus"
NOT_OWNED = "ConfigMapNotOwnedByProfile"  # a ConfigMap that is not its profile's (any kind)
SAVED = "SavedSeccompProfile"

SECCOMP_NOT_SUPPORTED_MESSAGE = "seccomp is not supported on this node"
