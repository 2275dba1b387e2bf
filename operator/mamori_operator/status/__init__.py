"""What admins read: ClusterSecurityPolicy status, and the background audit that feeds it."""
