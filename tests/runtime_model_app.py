"""A worker process of the runtime model's long version (tests/test_runtime_model.py):

    JOOBQ_DATABASE_URL=... MODEL_SEED=7 MODEL_NAME=model-p0 MODEL_LOG_DSN=... \
        python -m tests.runtime_model_app

It runs the model's queues with the model's settings on a FaultyStore (the same seeded fault
streams as a thread worker of that name would meet), logs every run like the thread workers,
and knows the model's late job type when MODEL_LATE_TYPE names it (a worker of a newer
deploy). The test SIGKILLs some of these processes, and stops the others with SIGTERM.
"""

from __future__ import annotations

import logging
import os
import sys

from joobq_sql import JoobQ
from tests.runtime_model_faults import Chaos, FaultyStore
from tests.runtime_model_jobs import QUEUE, late_job_class, model_middleware, queue_classes
from tests.runtime_model_support import MODEL_SETTINGS


def build_app() -> JoobQ:
    url = os.environ["JOOBQ_DATABASE_URL"]
    chaos = Chaos(int(os.environ["MODEL_SEED"]))
    store = FaultyStore(
        url,
        chaos=chaos,
        name=os.environ["MODEL_NAME"],
        lease=MODEL_SETTINGS["lease"],
        dead_letter_ttl=3600,
        pool_size=6,
    )
    app = JoobQ(store=store, database_url=url, **MODEL_SETTINGS)
    late_type = os.environ.get("MODEL_LATE_TYPE")
    late = late_job_class(late_type) if late_type else None
    slots = int(os.environ.get("MODEL_SLOTS", "3"))
    for queue, classes in queue_classes(late).items():
        app.queue(queue, workers=slots if queue == QUEUE else 1, jobs=classes)
    app.use(model_middleware)
    return app


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("FAULT_LOG_LEVEL", "WARNING"),
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    # FaultWorker waits for the Worker's "running queues" line, logged at INFO.
    logging.getLogger("joobq_sql.worker").setLevel(logging.INFO)
    app = build_app()
    try:
        code = app.run()
    finally:
        app.close()
    sys.exit(code)


if __name__ == "__main__":
    main()
