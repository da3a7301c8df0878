-- Who this check connects as and who owns the jobs table: what the advice on the workers' own
-- VACUUM of it (the self_vacuum setting) names. Whether the role may VACUUM it is the store's
-- hot_table_health statement (MAINTAIN from PostgreSQL 17, ownership before).
SELECT current_user AS role,
       pg_get_userbyid(c.relowner) AS owner,
       current_setting('server_version_num')::int AS server_version
FROM pg_class AS c
WHERE c.oid = '{schema}.jobs'::regclass
