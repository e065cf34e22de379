"""`ucoder`: the command line of UCoder, a gRPC client of the orchestrator plus the local stack."""
