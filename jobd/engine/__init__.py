"""The job engine: durable Postgres jobs. It knows nothing of resources or triggers."""
