# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redaction of the text a report quotes, before any page or log shows it.

Error messages and summaries quote what the backend and its users sent, and
a failing task's message may quote a URL with its credentials: credentials in
URLs, bearer/basic tokens and ``password=``-style parameters are replaced by
``***``, terminal colours are dropped and characters XML forbids replaced, so
a log line can neither leak a secret nor break the page. Escaping is left to
whatever shows the text (the page's autoescaping template, the SVG writer).

Only the standard library is used, and the code stays importable on Python
3.8 (module_utils must import on targets too).
"""

from __future__ import annotations

import re

# Greedy up to the last "@" before the host, so a password holding an "@"
# is hidden whole.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s<>\"']*@")
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)=[^&\s\"'<>]+")
# A credential after "Bearer"/"Basic" has a digit or a symbol in it: prose
# such as "basic authentication." is left alone.
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)\s+(?=[A-Za-z]*(?:[0-9+/=_~-]|\.[A-Za-z0-9]))[A-Za-z0-9._~+/=-]{8,}")
_ANSI = re.compile("\x1b\\[[0-9;?]*[ -/]*[@-~]")
# Characters XML 1.0 forbids (and C0/C1 controls a browser would show as
# boxes): replaced, so that a log line cannot break the page.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def redact(text):
    """``text`` with credentials in URLs, bearer/basic tokens and secret-looking parameters replaced by ``***``."""
    text = _USERINFO.sub(r"\1***@", text)
    text = _SECRET_PARAM.sub(lambda m: m.group(1) + "=***", text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + " ***", text)


def clean_text(value):
    """A report value as printable, redacted text (not yet escaped)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    value = _ANSI.sub("", value)
    return _UNPRINTABLE.sub("\ufffd", redact(value))
