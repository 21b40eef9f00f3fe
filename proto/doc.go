// Package proto holds Fluxo's protobuf definitions (proto/fluxo/v1) and the
// script that regenerates the Go code in proto/fluxopb. It contains no logic.
package proto

//go:generate ./gen.sh
