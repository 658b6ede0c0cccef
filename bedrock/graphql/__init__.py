"""What every app's GraphQL shares: scalars and ids, errors, filter comparisons, who is asking
(the viewer) and the base type that scopes every model's rows. ``bedrock.schema`` composes the
apps' queries and mutations into one schema."""
