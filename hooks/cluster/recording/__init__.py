"""ProfileRecording: the recording table, the pod admission webhook and the recording controller."""
