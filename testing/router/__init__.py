"""The router under nginx, its verifier and a RESP reader, for tests and benchmarks."""
