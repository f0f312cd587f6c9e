"""The operator console: its role logic, sampler, action log, CLI and pages in a real browser."""
