"""Several studies on one storage and the processes that work them: the queue and its
claims (`queue`), one worker process (`worker`), the pool of workers (`workers`) and their
placement as Ray actors (`cluster`). Heartbeats and recovery live in `search.liveness`:
a single `search run` beats too.

May import: everything below the command line.
"""
