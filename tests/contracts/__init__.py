"""Contract suites: one per port, each test run on the in-memory adapter and the real one."""
