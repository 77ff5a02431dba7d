"""The node programs' command lines: ``spo nodesync`` and ``spo log-enricher``."""
