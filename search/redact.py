"""Passwords out of everything the service prints, logs or records."""

from __future__ import annotations

import re

# scheme://user:password@host... ; a password may hold @: it ends at the @ before the host
_CREDENTIALS = re.compile(
    r"(?P<head>\b[A-Za-z][\w+.-]*://[^\s:/@]*:)(?P<secret>\S+?)(?=@[^\s@/]+(?:[/?\s'\"]|$))"
)
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|token|secret)=)(?P<secret>[^&\s]+)", re.I)


def mask_password(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    return mask_text(url)


def mask_text(text: str) -> str:
    """Every URL password (`user:secret@`, `?password=secret`) in `text` replaced by ***."""
    text = _CREDENTIALS.sub(lambda m: f"{m['head']}***", text)
    return _QUERY.sub(lambda m: f"{m['head']}***", text)
