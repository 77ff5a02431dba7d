"""The hook service: API models and the pure functions Metacontroller calls."""
