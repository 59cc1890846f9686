"""Several studies on one storage and the processes that work them: the queue and its
claims (`queue`), heartbeats and recovery (`liveness`), one worker process (`worker`),
the pool of workers (`workers`) and their placement as Ray actors (`cluster`).

May import: everything below the command line.
"""
