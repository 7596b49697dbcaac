"""Helpers shared by tests that start real services (PostgreSQL, SeaweedFS, Orthanc, Ray)."""
