"""The PostgreSQL store: schema, named SQL statements, and the Store built on them."""
