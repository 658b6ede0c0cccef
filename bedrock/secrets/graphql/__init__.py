"""The GraphQL layer of secrets and API tokens, and who is asking (``viewer``)."""
