"""The node side's shared I/O: the cluster client, the watcher, atomic files, node statuses and
events."""
