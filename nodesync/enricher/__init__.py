"""The log enricher and recorder: audit records told with their pod, recorded profiles."""
