"""The HTTP edge: Flask blueprints that decode a hook request, call a pure function, encode."""
