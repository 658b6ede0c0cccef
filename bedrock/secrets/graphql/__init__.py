"""The GraphQL layer of secrets and API tokens."""
