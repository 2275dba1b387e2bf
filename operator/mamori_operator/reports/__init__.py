"""PolicyReports (``wgpolicyk8s.io/v1alpha2``): what the background audit found, where admins'
other tools read it.

``workloads`` says which workload a pod belongs to, ``build`` turns the audit's findings into
report bodies (pure, bounded in size), ``writer`` keeps the cluster's reports equal to them.
"""
