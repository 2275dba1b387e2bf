"""Scan-result sources: ECR, Trivy Operator VulnerabilityReports, pipeline ImageScans."""
