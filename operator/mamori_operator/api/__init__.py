"""Talking to the API server: the counted client, Kubernetes Events, the leader Lease."""
