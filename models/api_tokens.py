"""API tokens: how the office's downstream products authenticate to /api/v1."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import utcnow


class ApiToken(SQLModel, table=True):
    """A bearer token of one office. The token itself is shown once; only its hash is kept."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    # The first characters, to tell tokens apart in the list ("erpapi_AbCd…").
    prefix: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 hex of the whole token
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    # May read the audit log through /api/v1/audit (only an administrator can give that).
    reads_audit: bool = Field(default=False)
