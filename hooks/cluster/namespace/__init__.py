"""The operator Namespace DecoratorController: the binding and recording tables, the webhook
configuration."""
