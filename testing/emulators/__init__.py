"""Emulators for the APIs that cannot run on a test machine (Kubernetes with Agones).

They speak the real HTTP paths and semantics so the code under test uses its production
client unchanged; they are never the code under test.
"""
