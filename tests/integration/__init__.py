"""Integration tests: real Kafka, MongoDB and Redis protocols on the embedded stack."""
