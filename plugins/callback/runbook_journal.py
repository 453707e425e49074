# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: runbook_journal
type: notification
short_description: Journal each finished runbook step, and report a run that is interrupted
description:
  - Keeps the journal of a BeMore runbook run on the control node - one line
    per finished step, appended as the step finishes - so a run that is
    killed outright (SIGKILL, as ansible-runner and AWX cancel a job) leaves
    what it found, and the next run writes its report, marked interrupted.
  - On SIGTERM (a CI job's cancel) or SIGINT (Ctrl-C) it writes the
    interrupted run's report itself, with the steps finished so far, before
    ansible-core's own handling ends the run. The run commits no state, so
    the next run reviews the same log lines again.
  - When the play ends before the run's report step - every host stopped
    early, for example by another run's maintenance lock, or unreachable -
    it writes that run's report itself at the end of the playbook, with each
    host's failure, and closes the run as stopped, so the next run does not
    mistake it for a killed one.
  - Each host's failure (its task, message and exit code - a module killed by
    a signal is named with it) and each task that changed a host are
    journaled as they happen, so every report of the run - its own, an
    interrupted one, a stopped one, one written after a kill - says why a
    host left the run and what was changed before.
  - Its stopped and interrupted reports notify the webhook as the run's own
    report would (the same notification function and the report role's
    settings), so an unreachable fleet pages.
  - It needs no enabling and loads from the folder next to the playbooks
    (C(playbooks/callback_plugins)), so ansible-runner and AWX, which set
    their own callback folder, load it too.
author:
  - BeMore maintenance runbooks contributors (@bemore-runbooks)
"""

import importlib.util
import os
import signal
import sys
import types

from ansible.plugins.callback import CallbackBase

# In import order: a module here may import only those before it.
_UTILS = ("runbook_common", "runbook_clock", "bemore_http", "bemore_api", "bemore_steps", "report_redact",
          "report_history", "report_chart_data", "report_svg", "report_html", "runbook_files", "runbook_runs",
          "report_files", "runbook_notify")
# The report role's page template, which this plugin reads as the runbook_report action plugin does.
_PAGE_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
                              "roles", "report", "templates", "report.html.j2")


def _load_utils():
    """The project's module_utils, importable here as Ansible imports them for modules; returned by name."""
    import ansible.module_utils  # pylint: disable=import-outside-toplevel

    here = os.path.dirname(os.path.realpath(__file__))
    folder = os.path.join(os.path.dirname(os.path.dirname(here)), "module_utils")
    for name in _UTILS:
        full = "ansible.module_utils." + name
        path = os.path.join(folder, name + ".py")
        if full in sys.modules or not os.path.exists(path):
            continue
        spec = importlib.util.spec_from_file_location(full, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        setattr(ansible.module_utils, name, module)
    return types.SimpleNamespace(**dict((name, sys.modules.get("ansible.module_utils." + name)) for name in _UTILS))


def _looks_like_step(value):
    return isinstance(value, dict) and isinstance(value.get("step"), str) and "status" in value and "severity" in value


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "runbook_journal"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pid = os.getpid()
        self._run = None
        self._steps = {}
        self._reported = False
        self._previous = {}
        self._utils_loaded = None
        self._failures = {}
        self._play = None

    # -- signals -------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        # ansible-core's task queue manager has installed its handlers by now
        # (they stop the workers and end the run); ours runs first, then them.
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def v2_playbook_on_play_start(self, play):
        # Kept for the webhook setting, which only the play's variables hold (it is never in the run's record).
        self._play = play

    def _on_signal(self, signum, frame):
        if os.getpid() == self._pid:
            try:
                self._write_interrupted(signum)
            except Exception as exc:  # pylint: disable=broad-except
                # The run is ending anyway; the next run reports it from the journal.
                self._display.error("runbook_journal: could not write the interrupted run's report: %s" % exc)
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _write_interrupted(self, signum):
        if self._run is None or self._reported:
            return
        utils = self._utils()
        name = signal.Signals(signum).name
        hosts = self._unfinished_hosts("the run was interrupted (%s) before it finished this host" % name)
        reason = "%s received by ansible-playbook (pid %d)%s" % (
            name, self._pid, "; Ctrl-C" if signum == signal.SIGINT else "; cancelled")
        report = utils.report_files.build_report(self._run, hosts,
                                                 interrupted={"reason": reason, "signal": name.replace("SIG", "")})
        report["notes"] = ["The run was interrupted; the steps above are the ones it finished. It committed no state, "
                           "so the next run reviews the same log lines again, and takes over its locks at once."]
        paths = self._write(utils, report, "interrupted")
        # A cancelled job is killed outright after a short grace period: one short attempt, not the full retries.
        settings = dict(self._run.get("notify") or {}, webhook_retries=0)
        settings["webhook_timeout"] = min(float(settings.get("webhook_timeout") or 5), 5.0)
        self._display.warning("runbook interrupted by %s: report of the interrupted run written to %s; notification: %s"
                              % (name, paths.get("markdown"), self._notify(utils, report, paths, settings)))

    def _write_stopped(self):
        """The report of a run whose play ended before its report step."""
        utils = self._utils()
        hosts = self._unfinished_hosts("the play ended before this host's report step")
        report = utils.report_files.build_report(self._run, hosts)
        report["notes"] = ["The run stopped before its report step; each host says why. It committed no state, "
                           "so the next run reviews the same log lines again."]
        paths = self._write(utils, report, "stopped")
        self._display.warning("runbook stopped before its report: report of the run written to %s; notification: %s"
                              % (paths.get("markdown"), self._notify(utils, report, paths)))

    def _unfinished_hosts(self, reason):
        """Every host of the run, none finished: its journaled steps, and why (its failure, else ``reason``)."""
        utils = self._utils()
        names = self._run.get("hosts") or sorted(set(self._steps) | set(self._failures))
        hosts = {}
        for h in names:
            failure = self._failures.get(h)
            hosts[h] = {"completed": False, "steps": self._steps.get(h, []),
                        "unreachable": bool(failure) and failure.get("kind") == "unreachable",
                        "reason": utils.runbook_runs.failure_text(failure) if failure else reason}
        return hosts

    def _webhook_url(self):
        """The run's webhook, read from the play's host variables the way its report step reads it."""
        if self._play is None:
            return None
        try:
            hostvars = self._play.get_variable_manager().get_vars(play=self._play)["hostvars"]
            for host in self._run.get("hosts") or []:
                if host not in hostvars:
                    continue
                values = hostvars[host]
                for name in ("report_webhook_url", "bemore_webhook_url"):
                    if name in values and values[name]:
                        return str(values[name])
        except Exception:  # pylint: disable=broad-except
            return None
        return None

    def _notify(self, utils, report, paths, settings=None):
        """The same notification as the run's own report step; never raises, never names the URL."""
        settings = self._run.get("notify") if settings is None else settings
        try:
            notify = utils.runbook_notify
            page = notify.page_url((settings or {}).get("url_base"), report) if paths.get("html") else None
            return notify.notify(report, utils.report_files.summary_lines(report), settings, self._webhook_url(), page)
        except Exception as exc:  # pylint: disable=broad-except
            return "failed: %s" % type(exc).__name__

    def _write(self, utils, report, outcome):
        html = None
        try:
            history = sys.modules.get("ansible.module_utils.report_history").load_history(
                self._run["report_dir"], self._run["schedule"], self._run["environment"])
            with open(_PAGE_TEMPLATE, encoding="utf-8") as handle:
                template = handle.read()
            html = sys.modules.get("ansible.module_utils.report_html").render_html(report, history, None, template)
        except Exception as exc:  # pylint: disable=broad-except
            # The JSON and Markdown report are what matters now; the missing page is named, not fatal.
            self._display.warning("runbook_journal: the report's HTML page could not be rendered: %s" % exc)
            html = None
        # keep=0: the next report of the schedule prunes with its own setting.
        paths = utils.report_files.write_report(report, self._run["report_dir"], html, keep=0,
                                                file_mode=int(self._run.get("report_file_mode") or "0600", 8))
        utils.runbook_runs.finish_run(self._run["state_dir"], self._run["id"], outcome, paths.get("json"))
        self._reported = True
        return paths

    def _utils(self):
        if self._utils_loaded is None:
            self._utils_loaded = _load_utils()
        return self._utils_loaded

    # -- results -------------------------------------------------------------
    def v2_runner_on_ok(self, result):
        data = result.result
        host = result.host.get_name()
        run = data.get("run")
        if isinstance(run, dict) and run.get("id") and run.get("journal") and "dead_runs" in data:
            if self._run is not None and not self._reported and self._run.get("id") != run["id"]:
                # An earlier play's run that never reached its report step.
                try:
                    self._write_stopped()
                except Exception as exc:  # pylint: disable=broad-except
                    self._display.error("runbook_journal: could not write the stopped run's report: %s" % exc)
            self._run = dict(run)
            self._steps = {}
            self._failures = {}
            self._reported = False
            self._display.vvvv("runbook_journal: journaling run %s to %s" % (run["id"], run["journal"]))
            return
        if self._run is None:
            return
        if "report" in data and "gate_failed" in data:
            # The report step ran: it wrote the report, or said why not and
            # closed the run itself. Either way the run is not "stopped".
            self._reported = True
            return
        found = []
        steps = data.get("runbook_steps")
        if isinstance(steps, dict):
            for name, host_steps in steps.items():
                found += [(name, s) for s in host_steps or [] if _looks_like_step(s)]
        if _looks_like_step(data.get("step")):
            found.append((host, data["step"]))
        for value in (data.get("ansible_facts") or {}).values():
            if _looks_like_step(value):
                found.append((host, value))
        if not found and self._changed_host(data):
            # What changed a host is journaled as soon as it is done: a run that dies next still reports it.
            utils = self._utils()
            runs = utils.runbook_runs
            found.append((host, runs.change_step(result.task_name or "unnamed task", runs.change_figures(data))))
        for name, stp in found:
            self._record(name, stp)

    def _changed_host(self, data):
        if not data.get("changed") or self._run.get("check_mode") or data.get("_ansible_delegated_vars"):
            return False  # a check-mode run changed nothing; delegated tasks are the control node's own files
        # The run's own maintenance lock is not a change it reports.
        return not ("lock_file" in data and "acquired" in data)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self._run is None or ignore_errors:
            return
        self._failure(result, "failed")

    def v2_runner_on_unreachable(self, result):
        if self._run is not None:
            self._failure(result, "unreachable")

    def _failure(self, result, kind):
        data = result.result if isinstance(result.result, dict) else {}
        msg = data.get("msg")
        if isinstance(msg, (list, tuple)):
            msg = "; ".join(str(m) for m in msg)
        # A task under no_log shows its name only: its message may hold a secret.
        if data.get("_ansible_no_log"):
            msg = None
        failure = {"kind": kind, "task": result.task_name or "unnamed"}
        if isinstance(data.get("rc"), int) and not isinstance(data.get("rc"), bool):
            failure["rc"] = data["rc"]
        if msg:
            try:
                self._utils()
            except Exception:  # pylint: disable=broad-except
                pass
            redact = getattr(sys.modules.get("ansible.module_utils.report_redact"), "redact", None)
            failure["reason"] = (redact(str(msg)) if redact else str(msg)).strip()
        # The last failure is the one that stopped the host (earlier ones may have been rescued).
        host = result.host.get_name()
        self._failures[host] = failure
        try:
            self._utils().runbook_runs.journal_append(self._run["journal"], {"host": host, "failure": failure})
        except (OSError, AttributeError) as exc:
            self._display.vvv("runbook_journal: cannot append to %s: %s" % (self._run.get("journal"), exc))

    def v2_playbook_on_stats(self, stats):
        if self._run is None or self._reported or os.getpid() != self._pid:
            return
        try:
            self._write_stopped()
        except Exception as exc:  # pylint: disable=broad-except
            self._display.error("runbook_journal: could not write the stopped run's report: %s" % exc)

    def _record(self, host, stp):
        steps = self._steps.setdefault(host, [])
        steps[:] = [s for s in steps if s.get("step") != stp["step"]] + [stp]
        try:
            self._utils().runbook_runs.journal_append(self._run["journal"], {"host": host, "step": stp})
        except (OSError, AttributeError) as exc:
            self._display.vvv("runbook_journal: cannot append to %s: %s" % (self._run.get("journal"), exc))
