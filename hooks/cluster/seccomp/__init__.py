"""The SeccompProfile controller: base-profile merging, validation, the OCI profile, status."""
