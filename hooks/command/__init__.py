"""The ``spo`` command, composed on top of the cluster side and the node side."""
