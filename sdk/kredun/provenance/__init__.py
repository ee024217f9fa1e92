"""Provenance: the SQL record of executions, jobs, cached calls, values and tasks.

`records` holds the plain dataclasses the scheduler fills in; `store.ProvenanceStore` writes
and reads them. Nothing is imported here so that importing the records stays free of SQLAlchemy.
"""
