from pydantic import BaseModel


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - OAuth2 token type, not a secret
    expires_in: int
    scope: str


class Me(BaseModel):
    subject: str
    role: str
    scopes: list[str]
    alliance_ids: list[str]
    partner_id: str | None
    household_id: str | None
