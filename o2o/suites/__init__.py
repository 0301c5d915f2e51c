"""Bench suites shipped with o2o: `o2o bench --suite NAME`."""
