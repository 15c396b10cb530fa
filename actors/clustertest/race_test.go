//go:build race

package clustertest

// raceEnabled is set under -race. Several members in one process race in
// protoactor's remote.Start, which sets grpc's global logger for each
// member while the previous member's gRPC server reads it.
const raceEnabled = true
