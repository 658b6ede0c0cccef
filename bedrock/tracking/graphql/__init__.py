"""The GraphQL layer of what runs record: metrics, parameters and charts."""
