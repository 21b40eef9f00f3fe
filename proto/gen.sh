#!/usr/bin/env bash
# Regenerates proto/fluxopb from proto/fluxo/v1/*.proto with pinned tools:
# protoc from Debian bookworm's protobuf-compiler (3.21.12) and protoc-gen-go at
# the google.golang.org/protobuf version in go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."
want="libprotoc 3.21.12"
have="$(protoc --version 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
  echo "proto/gen.sh: need protoc '$want' (apt-get install protobuf-compiler), have '$have'" >&2
  exit 1
fi
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" -I proto \
  --go_out=. --go_opt=module=github.com/fluxo-broker/fluxo \
  proto/fluxo/v1/*.proto
