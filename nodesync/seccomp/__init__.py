"""The seccomp agent: profile ConfigMaps to files under the kubelet's seccomp root."""
