"""Promotion: gates.yaml, the paired bootstrap, the decision, its report, the registry, deploying."""
