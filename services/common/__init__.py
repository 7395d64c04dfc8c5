"""The one copy of the machinery every service runs (the "service defaults"): settings, logging,
database and migrations, the transactional outbox and its relay, idempotent batch consumers with
dead letters, the Kafka connection, and health endpoints."""
