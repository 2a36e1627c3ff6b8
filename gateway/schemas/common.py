from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel


class Pagination(BaseModel):
    limit: int
    offset: int


async def pagination(
    limit: Annotated[int, Query(ge=1, le=200, description="Quanti elementi per pagina")] = 50,
    offset: Annotated[int, Query(ge=0, description="Quanti elementi saltare")] = 0,
) -> Pagination:
    return Pagination(limit=limit, offset=offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]
