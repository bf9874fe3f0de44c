"""Metrics over recorded runs, and the HTML report."""
