"""Named accounts of the desk: the table, the shapes the API takes and gives, and the commands.

An account's token is shown once, when it is issued or rotated, and stored only as its hash.
Revoking keeps the row (who had access, and until when) and drops the hash.
"""

from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import StringConstraints, field_validator, model_validator
from sqlalchemy import JSON
from sqlmodel import Column, Field, Session, SQLModel, col, select

from contracts.accounts import Caller, GrantError, Role, check_grant
from contracts.tokens import hash_token, new_token
from registration.commands import Conflict, NotFound
from registration.events import account_changed
from registration.store import (
    Line,
    OutboxEvent,
    UtcDateTime,
    official_provinces,
    timestamp_column,
    utc_now,
)

ACCOUNT_TOKEN_PREFIX = "ac_"
AccountName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]


class AccountBase(SQLModel):
    full_name: Line = Field(default="", max_length=200)
    role: Role
    # A coordinator's provinces (official codes); empty for every other role.
    provinces: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )


# What an administrator sends to issue an account.
class AccountCreate(AccountBase):
    name: AccountName

    _official_provinces = field_validator("provinces")(official_provinces)

    @model_validator(mode="after")
    def _grant(self) -> Self:
        try:
            check_grant(self.role, self.provinces)
        except GrantError as error:
            raise ValueError(str(error)) from None
        return self


# An account as stored.
class Account(AccountBase, table=True):
    name: str = Field(primary_key=True, max_length=64)
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utc_now, sa_column=timestamp_column())
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


# What the API shows of an account (never its token or its hash).
class AccountPublic(AccountBase):
    name: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedAccount(SQLModel):
    account: AccountPublic
    token: str


def caller_of(account: Account) -> Caller:
    return Caller(account.name, Role(account.role), frozenset(account.provinces))


def account_with_token(db: Session, token: str) -> Account | None:
    """The live account this token belongs to, if any."""
    token_hash = hash_token(token)
    return db.exec(select(Account).where(col(Account.token_hash) == token_hash)).first()


def issue_account(*, db: Session, account_in: AccountCreate) -> tuple[Account, str]:
    if db.get(Account, account_in.name) is not None:
        raise Conflict(f"account {account_in.name} already exists")
    token = new_token(ACCOUNT_TOKEN_PREFIX)
    account = Account(**account_in.model_dump(), token_hash=hash_token(token))
    db.add(account)
    db.add(_published(account))
    db.commit()
    db.refresh(account)
    return account, token


def rotate_account_token(*, db: Session, name: str) -> str:
    """A new token; the old one stops working at once. A revoked account comes back."""
    account = get_account(db=db, name=name)
    token = new_token(ACCOUNT_TOKEN_PREFIX)
    account.token_hash, account.revoked_at = hash_token(token), None
    db.add(account)
    db.add(_published(account))
    db.commit()
    return token


def revoke_account(*, db: Session, name: str) -> Account:
    account = get_account(db=db, name=name)
    if account.revoked_at is None:
        account.token_hash, account.revoked_at = None, datetime.now(UTC)
        db.add(account)
        db.add(_published(account))
        db.commit()
        db.refresh(account)
    return account


def _published(account: Account) -> OutboxEvent:
    # In the same transaction as the change: every service hears of it, Kafka up or not.
    return account_changed(account.name, account.role, account.provinces, account.token_hash)


def get_account(*, db: Session, name: str) -> Account:
    account = db.get(Account, name)
    if account is None:
        raise NotFound(f"unknown account {name}")
    return account


def list_accounts(db: Session) -> list[Account]:
    return list(db.exec(select(Account).order_by(col(Account.name))).all())
