"""Tests of the neural-network engine, `lenet5.nn`, mirroring its modules."""
