"""The relay timer's work: publish the events a crash left in an outbox.

Every two seconds, on every instance. Safe to run twice at once: consumers
de-duplicate events by id. (Requests need no relay: one left undecided by a crash
is still unacknowledged in its partition queue, and the next consumer decides it.)
"""

from services.enrolment.ports import Repository, Runtime


def run(repo: Repository, runtime: Runtime) -> int:
    """One pass; how many events it published."""
    return repo.publish_pending_events(runtime.dispatch)
