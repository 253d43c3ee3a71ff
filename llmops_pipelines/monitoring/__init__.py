"""Monitoring: scoring served traffic against the gates, question drift, nightly provider drift."""
