"""Readers and writers of medical image and annotation formats."""
