"""The GraphQL layer of runs and their steps."""
