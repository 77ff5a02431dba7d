"""nodesync: the node agent that turns profile ConfigMaps into files under the kubelet's root.

It does no policy: it writes exactly what the ConfigMaps say, atomically and
idempotently, and reports what happened as SecurityProfileNodeStatus objects.
"""
