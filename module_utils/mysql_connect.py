# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection to the BeMore database for mysql_maintenance: PyMySQL's
parameters, the option file mysqldump reads the same credentials from, and
a connection error that says what went wrong without the password.

PyMySQL is optional at import (HAS_PYMYSQL): the module reports it missing
as a finding instead of failing to load.
"""

from __future__ import annotations

import os

try:
    import pymysql
    HAS_PYMYSQL = True
    MySQLError = pymysql.MySQLError
except ImportError:
    HAS_PYMYSQL = False

    class MySQLError(Exception):
        """Stands in for pymysql.MySQLError where PyMySQL is missing (nothing can raise it then)."""

# Server error numbers: the credentials are wrong or lack the right to connect.
ACCESS_DENIED = (1044, 1045, 1698)
# The server is not there (no route, refused, unknown host, socket missing, gone at once).
UNREACHABLE = (2002, 2003, 2005, 2006, 2013)


def connect_params(p):
    # PyMySQL sends a str password as latin-1; the mysql clients (and mysqldump
    # here) send what they read as UTF-8, so both must send the same bytes.
    kwargs = {"user": p["login_user"], "password": (p["login_password"] or "").encode("utf-8"),
              "connect_timeout": p["connect_timeout"],
              "autocommit": True, "charset": "utf8mb4"}
    config_file = p["config_file"]
    if config_file and os.path.exists(config_file):
        kwargs["read_default_file"] = config_file
    if p["login_unix_socket"]:
        kwargs["unix_socket"] = p["login_unix_socket"]
    else:
        kwargs["host"], kwargs["port"] = p["login_host"], p["login_port"]
    if p["ca_cert"] or p["client_cert"]:
        kwargs["ssl"] = {"ca": p["ca_cert"], "cert": p["client_cert"], "key": p["client_key"],
                         "check_hostname": p["check_hostname"]}
    if kwargs["user"] is None:
        del kwargs["user"]
    return kwargs


def where(p):
    return p["login_unix_socket"] or "%s:%s" % (p["login_host"], p["login_port"])


def connect(p):
    """(connection, None) or (None, (kind, message)); the message never holds the password."""
    try:
        return pymysql.connect(**connect_params(p)), None
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        if p["login_password"]:
            reason = reason.replace(p["login_password"], "********")
        kind = "denied" if code in ACCESS_DENIED else "unreachable" if code in UNREACHABLE else "error"
        return None, (kind, "cannot connect to MySQL at %s as %s for schema %r: %s"
                      % (where(p), p["login_user"] or "(default user)", p["schema"], reason))


def local_server(p):
    """Whether the server's data directory can be on this host (socket or loopback)."""
    return bool(p["login_unix_socket"]) or p["login_host"] in ("localhost", "127.0.0.1", "::1")


def option_value(value):
    """A value for a MySQL option file: double-quoted, with the escapes its parser reads."""
    return '"%s"' % (str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                     .replace("\r", "\\r").replace("\t", "\\t"))


def option_file_text(p):
    """The [client] section mysqldump reads the connection and the credentials from."""
    lines = ["[client]"]
    if p["login_user"]:
        lines.append("user=%s" % option_value(p["login_user"]))
    if p["login_password"]:
        lines.append("password=%s" % option_value(p["login_password"]))
    if p["login_unix_socket"]:
        lines += ["socket=%s" % option_value(p["login_unix_socket"]), "protocol=SOCKET"]
    else:
        lines += ["host=%s" % option_value(p["login_host"]), "port=%d" % p["login_port"], "protocol=TCP"]
    for key, name in (("ca_cert", "ssl-ca"), ("client_cert", "ssl-cert"), ("client_key", "ssl-key")):
        if p[key]:
            lines.append("%s=%s" % (name, option_value(p[key])))
    if p["ca_cert"] and p["check_hostname"]:
        lines.append("ssl-verify-server-cert")
    return "\n".join(lines) + "\n"
