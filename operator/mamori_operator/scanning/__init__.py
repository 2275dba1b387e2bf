"""Image scans: providers answer per digest, the scanner annotates pods and records ImageScans."""
