"""Tests of sync mode and the CQRS command side (workers.cqrs.sync, workers.cqrs)."""
