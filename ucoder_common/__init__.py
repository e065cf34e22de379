"""Code shared by every UCoder service: config, bus, gRPC bootstrap, metrics, logging, protos."""
