"""Tests of eventfleet: unit tests mirror the package, integration tests use the real stack."""
