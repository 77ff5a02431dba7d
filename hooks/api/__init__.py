"""Pydantic models of the custom resources, spelled as the Kubernetes API spells them."""

GROUP = "security-profiles-operator.x-k8s.io"
