"""What tests, benchmarks and `make demo` share: real servers on loopback (helpers), the
Kubernetes/Agones emulator (emulators), the router under nginx (router) and the batch stack on
moto with stand-in WebUIs (batch). Nothing here is a test; tests/ holds those."""
