"""The GraphQL layer of API tokens."""
