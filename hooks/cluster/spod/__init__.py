"""The SecurityProfilesOperatorDaemon CompositeController: the spod object -> the nodesync
DaemonSet."""
