from conciliare.contracts.common import Page
from conciliare.contracts.partners import ProjectOut, ProjectSpec, ProjectUpdate

__all__ = ["ProjectOut", "ProjectPage", "ProjectSpec", "ProjectUpdate"]

ProjectPage = Page[ProjectOut]
