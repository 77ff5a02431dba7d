"""The admission webhooks' own state: the tables they read, kept from watches."""
