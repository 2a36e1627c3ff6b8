"""The relay timer's work: finish what a crash left half done.

Every two seconds, on every instance: decide the requests stored but left undecided
(``seating.finish_undecided``), then publish the events still waiting in an outbox.
Both are safe to run twice at once: deciding a request already decided is a no-op,
and consumers de-duplicate events by id.
"""

from services.enrolment import seating
from services.enrolment.ports import Repository, Runtime


def run(repo: Repository, runtime: Runtime) -> int:
    """One pass; how many requests it decided and events it published."""
    decided = seating.finish_undecided(repo, runtime)
    return decided + repo.publish_pending_events(runtime.dispatch)
