"""The SQL the web app runs itself (read-only), one statement per file."""
