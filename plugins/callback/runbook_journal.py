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

from ansible.plugins.callback import CallbackBase

_UTILS = ("runbook_clock", "bemore_api", "bemore_steps", "report_html", "runbook_core")


def _load_utils():
    """The project's module_utils, importable here as Ansible imports them for modules."""
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
    return sys.modules.get("ansible.module_utils.runbook_core")


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
        self._core = None
        self._failures = {}

    # -- signals -------------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        # ansible-core's task queue manager has installed its handlers by now
        # (they stop the workers and end the run); ours runs first, then them.
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

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
        core = self._utils()
        name = signal.Signals(signum).name
        hosts = self._unfinished_hosts("the run was interrupted (%s) before it finished this host" % name)
        reason = "%s received by ansible-playbook (pid %d)%s" % (
            name, self._pid, "; Ctrl-C" if signum == signal.SIGINT else "; cancelled")
        report = core.build_report(self._run, hosts, interrupted={"reason": reason, "signal": name.replace("SIG", "")})
        report["notes"] = ["The run was interrupted; the steps above are the ones it finished. It committed no state, "
                           "so the next run reviews the same log lines again, and takes over its locks at once."]
        paths = self._write(core, report, "interrupted")
        self._display.warning("runbook interrupted by %s: report of the interrupted run written to %s"
                              % (name, paths.get("markdown")))

    def _write_stopped(self):
        """The report of a run whose play ended before its report step."""
        core = self._utils()
        hosts = self._unfinished_hosts("the play ended before this host's report step")
        report = core.build_report(self._run, hosts)
        report["notes"] = ["The run stopped before its report step; each host says why. It committed no state, "
                           "so the next run reviews the same log lines again."]
        paths = self._write(core, report, "stopped")
        self._display.warning("runbook stopped before its report: report of the run written to %s"
                              % paths.get("markdown"))

    def _unfinished_hosts(self, reason):
        """Every host of the run, none finished: its journaled steps, and why (its failure, else ``reason``)."""
        names = self._run.get("hosts") or sorted(set(self._steps) | set(self._failures))
        return dict((h, {"completed": False, "steps": self._steps.get(h, []),
                         "reason": self._failures.get(h) or reason}) for h in names)

    def _write(self, core, report, outcome):
        html = None
        try:
            html_module = sys.modules.get("ansible.module_utils.report_html")
            html = html_module.render_html(report, html_module.load_history(
                self._run["report_dir"], self._run["schedule"], self._run["environment"]))
        except Exception:  # pylint: disable=broad-except
            html = None
        # keep=0: the next report of the schedule prunes with its own setting.
        paths = core.write_report(report, self._run["report_dir"], html, keep=0,
                                  file_mode=int(self._run.get("report_file_mode") or "0600", 8))
        core.finish_run(self._run["state_dir"], self._run["id"], outcome, paths.get("json"))
        self._reported = True
        return paths

    def _utils(self):
        if self._core is None:
            self._core = _load_utils()
        return self._core

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
        for name, stp in found:
            self._record(name, stp)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self._run is None or ignore_errors:
            return
        self._failure(result, "failed")

    def v2_runner_on_unreachable(self, result):
        if self._run is not None:
            self._failure(result, "unreachable")

    def _failure(self, result, kind):
        msg = result.result.get("msg") if isinstance(result.result, dict) else None
        if isinstance(msg, (list, tuple)):
            msg = "; ".join(str(m) for m in msg)
        # A task under no_log shows its name only: its message may hold a secret.
        if isinstance(result.result, dict) and result.result.get("_ansible_no_log"):
            msg = None
        text = "%s at task '%s'" % (kind, result.task_name or "unnamed")
        if msg:
            try:
                self._utils()
            except Exception:  # pylint: disable=broad-except
                pass
            redact = getattr(sys.modules.get("ansible.module_utils.report_html"), "redact", None)
            text += ": %s" % (redact(str(msg)) if redact else msg)
        # The last failure is the one that stopped the host (earlier ones may have been rescued).
        self._failures[result.host.get_name()] = text

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
            self._utils().journal_append(self._run["journal"], {"host": host, "step": stp})
        except (OSError, AttributeError) as exc:
            self._display.vvv("runbook_journal: cannot append to %s: %s" % (self._run.get("journal"), exc))
