"""The GraphQL layer of events and webhooks."""
