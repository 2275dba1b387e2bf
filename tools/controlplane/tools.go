//go:build tools

// Package tools records the commands this module builds, so `go mod tidy` keeps their deps:
// the control plane (tools/controlplane/build.sh) and the Kubernetes node binaries
// (tools/node/build.sh), all from the one k8s.io/kubernetes pin below.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
