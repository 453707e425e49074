# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The first-run check (playbooks/doctor.yml): what the schedules need.

Three parts: ``probe_controller`` reads the control node (the host's SSH key
in known_hosts, the state and report folders, the API and its token when the
control node reads it, a test notification), ``probe_host`` reads the host
(its Python, become, the log source, the app and temp folders, npm,
mysqldump, the database, the API when the host reads it, its clock), and
``decide`` turns both into the report step, item by item. Every item is
``{"name", "status", "detail", "fix"}``; a failed or warning item always
carries a one-line fix.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time

OK, WARNING, FAILED, SKIPPED = "ok", "warning", "failed", "skipped"
# A missing prerequisite stops a schedule, but it is a setup problem, not an
# incident in the guide's escalation table: medium, never high.
SEVERITY_OF = {OK: "none", SKIPPED: "none", WARNING: "low", FAILED: "medium"}
COMMAND_TIMEOUT_S = 20


def item(name, status, detail, fix=""):
    return {"name": name, "status": status, "detail": detail, "fix": fix if status in (WARNING, FAILED) else ""}


def _run(argv, timeout=COMMAND_TIMEOUT_S, env=None):
    """(rc, stdout, stderr) of a command; rc None when it could not start or ran out of time."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, check=False)
    except (OSError, ValueError) as exc:
        return None, "", str(exc)
    except subprocess.TimeoutExpired:
        return None, "", "no answer within %ds" % timeout
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


# ------------------------------------------------------------ control node

def folder_item(name, path, option):
    """A folder the control node writes: writable, or creatable under a writable parent."""
    path = os.path.expanduser(path or "")
    if not path:
        return item(name, FAILED, "%s is empty" % option, "set %s to a folder on the control node" % option)
    if os.path.exists(path):
        if not os.path.isdir(path):
            return item(name, FAILED, "%s is not a folder" % path, "point %s at a folder, or remove the file %s" % (option, path))
        if not os.access(path, os.W_OK | os.X_OK):
            return item(name, FAILED, "%s is not writable by %s" % (path, _user()),
                        "chown %s %s (or set %s to a folder this user owns)" % (_user(), path, option))
        return item(name, OK, "%s is writable" % path)
    parent = os.path.dirname(path.rstrip("/")) or "/"
    while not os.path.exists(parent):
        parent = os.path.dirname(parent) or "/"
    if os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK):
        return item(name, OK, "%s does not exist yet; the first run creates it under %s" % (path, parent))
    return item(name, FAILED, "%s does not exist and %s is not writable by %s" % (path, parent, _user()),
                "mkdir -p %s && chown %s %s (or set %s)" % (path, _user(), path, option))


def _user():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def ssh_config(host, port, user, args):
    """ssh's effective settings for this host (``ssh -G``), with the inventory's own arguments."""
    argv = ["ssh", "-G"] + list(args or [])
    if port:
        argv += ["-p", str(port)]
    if user:
        argv += ["-l", str(user)]
    rc, out, err = _run(argv + [host])
    if rc != 0:
        return None, (err.strip() or "ssh -G failed").splitlines()[-1]
    conf = {}
    for line in out.splitlines():
        key, dummy, value = line.partition(" ")
        conf.setdefault(key.lower(), value.strip())
    return conf, None


def host_key_item(conn):
    """The host's key is in a known_hosts file ssh reads, as host_key_checking expects."""
    if conn.get("connection") not in ("ssh", "paramiko", "smart"):
        return item("ssh_host_key", SKIPPED, "connection %s: no SSH host key involved" % conn.get("connection"))
    if not conn.get("host_key_checking", True):
        return item("ssh_host_key", WARNING, "host_key_checking is off: any machine answering as %s is trusted" % conn["host"],
                    "set host_key_checking = True in ansible.cfg and add the host's key to known_hosts")
    if not shutil.which("ssh-keygen") or not shutil.which("ssh"):
        return item("ssh_host_key", FAILED, "the OpenSSH client (ssh, ssh-keygen) is not installed on the control node",
                    "apt-get install openssh-client")
    args = conn.get("args") or []
    if not isinstance(args, list):
        args = shlex.split(str(args))
    conf, error = ssh_config(conn["host"], conn.get("port"), conn.get("user"), args)
    if conf is None:
        return item("ssh_host_key", FAILED, "ssh cannot read its settings for %s: %s" % (conn["host"], error),
                    "fix ansible_ssh_common_args / ~/.ssh/config for this host")
    hostname, port = conf.get("hostname", conn["host"]), conf.get("port", "22")
    name = hostname if port == "22" else "[%s]:%s" % (hostname, port)
    files = []
    for key in ("userknownhostsfile", "globalknownhostsfile"):
        files += [os.path.expanduser(f) for f in shlex.split(conf.get(key, "")) if f != "/dev/null"]
    for path in files:
        if os.path.isfile(path):
            rc, out, dummy = _run(["ssh-keygen", "-F", name, "-f", path])
            if rc == 0 and out.strip():
                return item("ssh_host_key", OK, "%s is in %s" % (name, path))
    scan = "ssh-keyscan%s %s" % ("" if port == "22" else " -p %s" % port, hostname)
    return item("ssh_host_key", FAILED, "no key of %s in %s" % (name, ", ".join(files) or "any known_hosts file"),
                "check the host's fingerprint out of band, then: %s >> %s" % (scan, files[0] if files else "~/.ssh/known_hosts"))


def tls_of(params):
    """The client's TLS files from a module's parameters."""
    return dict((k, params.get(k)) for k in ("ca_path", "client_cert", "client_key"))


def api_item(base_url, api_token, timeout, validate_certs, where, tls=None):
    """One authenticated request to the backend's own health verdict; the token never appears in the result.

    ``tls``: the client's ca_path, client_cert and client_key (bemore_api_*), None where unset.
    """
    # Imported here: the host probe runs without the API where the control node reads it.
    from ansible.module_utils.bemore_api import ENDPOINTS, ApiError, Client

    endpoint = ENDPOINTS["monitoring_health"]
    try:
        client = Client(base_url, timeout=timeout, retries=0, validate_certs=validate_certs, api_token=api_token or None,
                        user_agent="bemore-runbooks-doctor", **(tls or {}))
        resp = client.request("GET", endpoint, retry=False)
    except ValueError as exc:
        if str(exc).startswith(("ca_path", "client_", "cannot use the TLS files")):
            return item("api", FAILED, "bemore_api_ca_path, bemore_api_client_cert, bemore_api_client_key: %s" % exc,
                        "give PEM files readable where the API is read from (bemore_api_from)")
        return item("api", FAILED, "bemore_base_url: %s" % exc, "set bemore_base_url to scheme://host[:port]")
    except ApiError as exc:
        fix = ("set bemore_api_from: host if the API answers only on the host's loopback"
               if where == "controller" and exc.kind in ("connect", "timeout") else
               "check bemore_base_url and that the backend runs (systemctl status bemore)")
        return item("api", FAILED, "%s from the %s: %s" % (endpoint, where, exc.reason), fix)
    token = "with the token" if api_token else "without a token (bemore_api_token is not set)"
    if resp.status in (401, 403):
        return item("api", FAILED, "%s answered HTTP %d %s: the token is refused" % (endpoint, resp.status, token),
                    "put the backend's current API token in bemore_api_token (group_vars/bemore/secrets.yml, vault)")
    if not 200 <= resp.status < 300:
        return item("api", FAILED, "%s answered HTTP %d %s" % (endpoint, resp.status, token),
                    "check bemore_base_url: it must be the backend's own origin")
    return item("api", OK, "%s answered HTTP %d in %.0f ms from the %s, %s" % (endpoint, resp.status, resp.elapsed * 1000, where, token))


def notification_item(webhook_url, enabled, check_mode, environment):
    if not webhook_url:
        return item("notification", SKIPPED, "no bemore_webhook_url: runs notify nobody")
    if not enabled:
        return item("notification", SKIPPED, "test notification turned off (doctor_notify_test: false)")
    if check_mode:
        return item("notification", SKIPPED, "check mode: no test notification sent")
    from ansible.module_utils.runbook_notify import post_webhook

    ok, outcome = post_webhook(webhook_url, {"text": "BeMore runbooks doctor: test notification for %s from %s" % (environment, _node())},
                               timeout=10.0, retries=0)
    if ok:
        return item("notification", OK, "test notification %s" % outcome)
    return item("notification", FAILED, "test notification %s" % outcome,
                "check bemore_webhook_url (the incoming webhook's full URL) and that the control node can reach it")


def _node():
    return os.uname()[1]


def probe_controller(p, check_mode=False):
    items = [host_key_item(p["connection"]),
             folder_item("state_dir", p["state_dir"], "bemore_state_dir"),
             folder_item("report_dir", p["report_dir"], "bemore_report_dir")]
    if p["api_from"] == "controller":
        items.append(api_item(p["base_url"], p.get("api_token"), p["api_timeout"], p["validate_certs"], "controller",
                              tls_of(p)))
    items.append(notification_item(p.get("webhook_url"), p["notify_test"], check_mode, p["environment"]))
    return {"items": items, "time": time.time()}


# ------------------------------------------------------------------ host

def python_item():
    version = "%d.%d.%d" % sys.version_info[:3]
    if sys.version_info < (3, 8):
        return item("python", FAILED, "%s is Python %s" % (sys.executable, version),
                    "install python3 (3.8 or later) and set ansible_python_interpreter to it")
    return item("python", OK, "%s, Python %s" % (sys.executable, version))


def become_item(expected):
    if os.geteuid() == 0:
        return item("become", OK, "connected as root: no become needed")
    rc, dummy, err = _run(["sudo", "-n", "true"]) if shutil.which("sudo") else (None, "", "sudo is not installed")
    if rc == 0:
        return item("become", OK, "sudo -n works for %s" % _user())
    detail = "sudo -n asks for a password or is refused for %s (%s)" % (_user(), (err.strip().splitlines() or ["rc %s" % rc])[-1])
    fix = "add '%s ALL=(root) NOPASSWD: ALL' (or the commands needed) with visudo -f /etc/sudoers.d/bemore-runbooks" % _user()
    if expected:
        return item("become", FAILED, detail, fix)
    return item("become", WARNING, detail + "; the inventory asks for no become, so the schedules run without it", fix)


def log_item(source, files, service):
    if source == "journal":
        if not service:
            return item("log_source", FAILED, "bemore_log_source is journal but bemore_service_name is empty",
                        "set bemore_service_name to the backend's systemd unit")
        groups = set()
        try:
            groups = set(grp.getgrgid(g).gr_name for g in os.getgroups())
        except KeyError:
            pass
        if os.geteuid() != 0 and not groups & {"systemd-journal", "adm", "wheel"}:
            return item("log_source", FAILED, "%s cannot read the system journal (groups: %s)" % (_user(), ", ".join(sorted(groups)) or "none"),
                        "usermod -aG systemd-journal %s" % _user())
        rc, out, err = _run(["journalctl", "--unit", service, "--lines", "1", "--no-pager", "--quiet", "--output", "cat"])
        if rc != 0:
            return item("log_source", FAILED, "journalctl --unit %s failed: %s" % (service, (err.strip() or "rc %s" % rc)),
                        "install systemd's journalctl, or set bemore_log_source: file with bemore_log_files")
        if not out.strip():
            return item("log_source", WARNING, "the journal holds no line of %s" % service,
                        "check bemore_service_name: it must be the unit that runs the backend")
        return item("log_source", OK, "the journal of %s is readable" % service)
    if not files:
        return item("log_source", FAILED, "bemore_log_source is file but bemore_log_files is empty",
                    "list the backend's log file(s) in bemore_log_files")
    bad = []
    for path in files:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            bad.append("%s (%s)" % (path, exc.strerror or exc))
    if bad:
        return item("log_source", FAILED, "cannot read %s as %s" % (", ".join(bad), _user()),
                    "make the log readable by %s (a group it is in, e.g. chmod g+r with logrotate's create mode) or fix bemore_log_files" % _user())
    return item("log_source", OK, "%s readable" % ", ".join(files))


def dir_item(name, path, option, write):
    if not path:
        return item(name, FAILED, "%s is empty" % option, "set %s" % option)
    if not os.path.isdir(path):
        return item(name, FAILED, "%s does not exist on the host" % path, "create it or fix %s" % option)
    mode = os.R_OK | os.X_OK | (os.W_OK if write else 0)
    if not os.access(path, mode):
        need = "read and write" if write else "read"
        return item(name, FAILED, "%s cannot %s %s" % (_user(), need, path),
                    "give %s %s access to %s (the app's group, or run the schedules as the app's user)" % (_user(), need, path))
    return item(name, OK, "%s %s" % (path, "readable and writable" if write else "readable"))


def env_item(path, manage):
    if not os.path.isfile(path):
        return item("env_file", FAILED if manage else WARNING, "%s does not exist" % path,
                    "fix tmp_cleanup_env_file, or create the app's .env")
    if not os.access(path, os.R_OK):
        return item("env_file", FAILED, "%s cannot read %s" % (_user(), path), "give %s read access to %s" % (_user(), path))
    if manage and not (os.access(path, os.W_OK) and os.access(os.path.dirname(path) or ".", os.W_OK | os.X_OK)):
        return item("env_file", FAILED, "%s cannot write %s (the weekly temp policy writes it, next to it)" % (_user(), path),
                    "give %s write access to %s and its folder, or set tmp_cleanup_manage_env: false" % (_user(), path))
    return item("env_file", OK, "%s %s" % (path, "readable and writable" if manage else "readable"))


def tool_item(name, needed, install, option):
    if not needed:
        return item(name, SKIPPED, "not needed (%s: false)" % option)
    path = shutil.which(name)
    if not path:
        return item(name, FAILED, "%s is not on the PATH of a non-interactive SSH session (%s)" % (name, os.environ.get("PATH", "")),
                    "%s, or put it on that PATH (not only in ~/.bashrc)" % install)
    rc, out, err = _run([path, "--version"], timeout=60)
    if rc != 0:
        return item(name, FAILED, "%s --version failed: %s" % (path, (err.strip() or "rc %s" % rc).splitlines()[-1]), "reinstall it: %s" % install)
    return item(name, OK, "%s %s" % (path, out.strip().splitlines()[0] if out.strip() else ""))


def database_item(p):
    if not p["check_database"]:
        return item("database", SKIPPED, "not needed (doctor_check_database: false)")
    try:
        import pymysql  # pylint: disable=import-outside-toplevel
    except ImportError:
        return item("database", FAILED, "PyMySQL is not installed for %s" % sys.executable, "apt-get install python3-pymysql")
    password = p.get("db_password") or ""
    try:
        conn = pymysql.connect(host=p["db_host"], port=p["db_port"], user=p["db_user"],
                               password=password.encode("utf-8"), database=p["db_schema"] or None,
                               connect_timeout=10, read_timeout=10, write_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args else None
        if code == 1045:
            fix = "set bemore_db_user / bemore_db_password (vault) to an account of the database"
        elif code in (1044, 1049):
            fix = "grant %s access to schema %s, or fix bemore_db_schema" % (p["db_user"], p["db_schema"])
        else:
            fix = "check bemore_db_host / bemore_db_port and that the database runs"
        return item("database", FAILED, "cannot connect as %s to %s:%s/%s: %s" % (p["db_user"], p["db_host"], p["db_port"], p["db_schema"],
                                                                                  _mysql_message(exc)), fix)
    return item("database", OK, "connected as %s to %s:%s/%s" % (p["db_user"], p["db_host"], p["db_port"], p["db_schema"]))


def _mysql_message(exc):
    # MariaDB's message may echo the user and host, never the password.
    return " ".join(str(a) for a in exc.args[1:]) or type(exc).__name__


def probe_host(p):
    items = [python_item(),
             become_item(p["become_expected"]),
             log_item(p["log_source"], p["log_files"], p["service_name"]),
             dir_item("app_dir", p["app_dir"], "bemore_app_dir", write=False),
             env_item(p["env_file"], p["manage_env"]),
             dir_item("temp_dir", p["temp_dir"], "tmp_cleanup_path", write=True),
             tool_item("npm", p["check_npm"], "apt-get install npm", "doctor_check_npm"),
             tool_item("mysqldump", p["check_database"], "apt-get install mariadb-client", "doctor_check_database"),
             database_item(p)]
    if p["api_from"] == "host":
        items.append(api_item(p["base_url"], p.get("api_token"), p["api_timeout"], p["validate_certs"], "host", tls_of(p)))
    return {"items": items, "time": time.time(), "user": _user()}


# ---------------------------------------------------------------- decide

CONNECTION_FIXES = (
    ("host key verification failed", "the host's key is not in known_hosts (host_key_checking is on)",
     "check the host's fingerprint out of band, then add it: ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts"),
    ("remote host identification has changed", "the host's key changed since it was recorded",
     "confirm the new key out of band, then ssh-keygen -R HOST and add the new one"),
    ("permission denied", "the host refused the login",
     "install the control node's public key for the remote user (ssh-copy-id USER@HOST) or fix ansible_user / the key"),
    ("connection refused", "nothing listens for SSH at that address",
     "start sshd on the host or fix ansible_host / ansible_port"),
    ("timed out", "no answer from the host's SSH port", "check ansible_host, ansible_port and the firewall"),
    ("could not resolve", "the host name does not resolve", "fix ansible_host or DNS"),
)


def connection_item(host_result):
    """The connection itself, from the host probe's registered result."""
    msg = str(host_result.get("msg") or host_result.get("module_stderr") or "")
    if host_result.get("unreachable"):
        low = msg.lower()
        for needle, detail, fix in CONNECTION_FIXES:
            if needle in low:
                return item("connection", FAILED, "%s: %s" % (detail, _last_line(msg)), fix)
        return item("connection", FAILED, "unreachable: %s" % _last_line(msg), "connect by hand with ssh -v USER@HOST and fix what it shows")
    return item("connection", OK, "connected")


def _last_line(text):
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[-1] if lines else "no message")[:300]


def clock_item(host_time, before, after, max_skew_s):
    """Skew outside the interval [before, after] in which the host read its clock (zero inside it)."""
    if host_time is None:
        return item("clock", SKIPPED, "not read: the host probe did not run")
    if host_time < before:
        skew = host_time - before
    elif host_time > after:
        skew = host_time - after
    else:
        skew = 0.0
    detail = "host clock %+.1f s from the control node's (read within %.1f s)" % (skew, after - before)
    if abs(skew) > max_skew_s:
        return item("clock", FAILED, detail + ", more than the %s s allowed" % _num(max_skew_s),
                    "enable time sync on the host and the control node (timedatectl set-ntp true); log windows and lock ages depend on it")
    return item("clock", OK, detail)


def _num(value):
    return ("%g" % value)


def decide(controller, host_result, max_skew_s, now):
    """The doctor's report step for one host.

    ``controller``: probe_controller's result. ``host_result``: the host
    probe task's registered result (``unreachable``, ``failed``/``msg`` or
    ``items``, ``time``). ``now``: the control node's time after the host
    probe.
    """
    items = list(controller.get("items") or [])
    reached = not host_result.get("unreachable") and not host_result.get("skipped")
    items.insert(0, connection_item(host_result) if not host_result.get("skipped") else
                 item("connection", SKIPPED, "not connected: %s" % (host_result.get("skip_reason") or "host probe skipped")))
    if reached and "items" in host_result:
        items.extend(host_result["items"])
        items.append(clock_item(host_result.get("time"), controller.get("time", now), now, max_skew_s))
    elif reached:
        # failed_when: false keeps the host in the play; a probe without items did not run.
        msg = _last_line(host_result.get("module_stderr") or host_result.get("msg") or "")
        low = msg.lower()
        if "sudo" in low or "privilege escalation" in low or "become" in low:
            items.append(item("become", FAILED, "become failed before the check ran: %s" % msg,
                              "allow the remote user sudo without a password (visudo -f /etc/sudoers.d/bemore-runbooks: "
                              "'USER ALL=(root) NOPASSWD: ALL'), or drop ansible_become"))
        elif "python" in low or host_result.get("rc") == 127:
            items.append(item("python", FAILED, "the host's Python did not run the check: %s" % msg,
                              "install python3 on the host, or set ansible_python_interpreter to its path"))
        else:
            items.append(item("host_probe", FAILED, "the host check failed: %s" % msg, "run ansible-playbook -vvv playbooks/doctor.yml and fix what it shows"))
    status = OK
    for entry in items:
        if entry["status"] == FAILED:
            status = FAILED
        elif entry["status"] == WARNING and status == OK:
            status = WARNING
    problems = ["%s: %s; fix: %s" % (e["name"], e["detail"], e["fix"]) for e in items if e["status"] in (FAILED, WARNING)]
    checked = [e for e in items if e["status"] != SKIPPED]
    passed = [e for e in checked if e["status"] == OK]
    summary = "%d of %d checks passed" % (len(passed), len(checked))
    failing = [e["name"] for e in items if e["status"] in (FAILED, WARNING)]
    if failing:
        summary += "; to fix: %s" % ", ".join(failing)
    return {"step": "doctor", "status": status, "severity": SEVERITY_OF[status], "summary": summary,
            "figures": {"items": items, "checked": len(checked), "passed": len(passed)}, "problems": problems}
