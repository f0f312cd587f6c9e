"""Unit tests of pure logic: no server needed."""
