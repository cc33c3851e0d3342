"""SQLite: the schema and its migrations, the queries, the file lock and backups."""
