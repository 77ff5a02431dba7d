"""The cluster side: the controllers Metacontroller calls, the admission webhooks, the web layer."""
