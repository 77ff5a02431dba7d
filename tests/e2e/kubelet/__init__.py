"""The node tests: a package so that its cluster (a package-scoped fixture) stops when they end."""
