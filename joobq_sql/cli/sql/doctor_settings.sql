-- Server settings that decide how well the jobs table keeps its size and speed.
SELECT current_setting('autovacuum')::bool AS autovacuum,
       extract(epoch FROM current_setting('autovacuum_naptime')::interval)::float8
           AS autovacuum_naptime_s
