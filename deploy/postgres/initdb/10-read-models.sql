-- Runs once, when the postgres service initializes an empty data volume
-- (mounted at /docker-entrypoint-initdb.d). The event store lives in the database
-- "agora" (POSTGRES_DB); the read models get their own database, READ_DATABASE_URL in
-- docker-compose.yml. `agora migrate` creates the tables in both.
CREATE DATABASE agora_read;
