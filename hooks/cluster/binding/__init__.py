"""ProfileBinding: the binding table, the pod admission webhook and the binding controller."""
