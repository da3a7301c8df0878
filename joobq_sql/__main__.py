"""`python -m joobq_sql` runs the `joobq-sql` command line."""

from joobq_sql.cli import main

if __name__ == "__main__":
    main()
