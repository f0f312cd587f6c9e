"""Tests of sync mode and the CQRS command side (workers.sync, workers.cqrs)."""
