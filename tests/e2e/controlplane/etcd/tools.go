//go:build tools

// Package tools records the binary build.sh compiles from this module so that
// `go mod tidy` keeps its dependencies in go.mod and go.sum.
package tools

import _ "go.etcd.io/etcd/server/v3"
