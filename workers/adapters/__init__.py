"""Adapters: one package per technology (MongoDB, Redis, Kafka, in-memory), each implementing the ports."""
