//go:build tools

// Package tools records the command this module builds, so `go mod tidy` keeps its deps.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
