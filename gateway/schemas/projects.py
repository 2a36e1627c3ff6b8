from conciliare.contracts.common import Page
from conciliare.contracts.partners import ProjectOut, ProjectSpec

__all__ = ["ProjectOut", "ProjectPage", "ProjectSpec"]

ProjectPage = Page[ProjectOut]
