-- Jobs matching every given filter (NULL: any), newest first, one page.
SELECT *
FROM {schema}.jobs
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(job_type)s::text IS NULL OR job_type = %(job_type)s::text)
ORDER BY id DESC
OFFSET %(offset)s
LIMIT %(limit)s
