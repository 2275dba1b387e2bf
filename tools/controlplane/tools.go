//go:build tools

// Package tools records the commands this module builds, so `go mod tidy` keeps their deps.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
