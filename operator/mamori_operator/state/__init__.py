"""What the operator knows of the cluster (policies, namespaces, pods), kept current."""
