"""``--token-auth-file``: static bearer tokens in Kubernetes' CSV format.

One line per token: ``token,user,uid[,"group1,group2"]`` (a fourth column, quoted
when it holds several groups, lists the user's groups; more columns are ignored,
as kube-apiserver does). Blank lines are skipped. The file is read once at start;
any line that would make a token mean nothing or two things — fewer than three
columns, an empty token or user name, a token given twice — stops the server with
the file and line named, rather than being skipped with a warning.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

from apiserver.auth.user import UserInfo


class TokenFileError(ValueError):
    """The token file can't be used; the message names the file and line."""


def parse_token_csv(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """Pure: the CSV text → {token: user} (groups as written, without system ones)."""
    tokens: dict[str, UserInfo] = {}
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    try:
        for record in reader:
            line = reader.line_num
            if not record or record == [""]:
                continue
            if len(record) < 3:
                raise TokenFileError(f"{source}, line {line}: must have at least 3 columns "
                                     f"(token, user name, user uid), found {len(record)}")
            token, name, uid = record[0], record[1], record[2]
            if not token:
                raise TokenFileError(f"{source}, line {line}: the token is empty")
            if not name:
                raise TokenFileError(f"{source}, line {line}: the user name is empty")
            if token in tokens:
                raise TokenFileError(f"{source}, line {line}: duplicate token (also on an "
                                     f"earlier line)")
            groups = tuple(g for g in record[3].split(",") if g) if len(record) > 3 else ()
            tokens[token] = UserInfo(name, groups, uid)
    except csv.Error as exc:
        raise TokenFileError(f"{source}, line {reader.line_num}: {exc}") from None
    return tokens


def load_token_file(path: str | os.PathLike[str]) -> dict[str, UserInfo]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"token file {path}: not UTF-8 text") from None
    return parse_token_csv(text, str(path))


class TokenFile:
    """The static-token authenticator: a dict lookup, nothing else per request."""

    def __init__(self, tokens: Mapping[str, UserInfo]) -> None:
        self._tokens = dict(tokens)

    def authenticate(self, token: str) -> UserInfo | None:
        return self._tokens.get(token)

    def __len__(self) -> int:
        return len(self._tokens)
