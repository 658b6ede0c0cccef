"""The GraphQL layer of secrets."""
