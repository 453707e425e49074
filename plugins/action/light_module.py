# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a stdlib-only project module without AnsiballZ.

Why: every module task costs about 0.3 s of CPU, most of it compiling
ansible.module_utils.basic from the AnsiballZ zip on the target (about
135 ms) and the controller's payload handling. A daily run has a dozen small
checks per host; on a fleet of 20 hosts and 2 cores that CPU, not the
network, sets the run time (measured: 60 s for 20 hosts against 6.7 s for
one).

The modules of this project that need nothing but the standard library and
the project's own stdlib-only module_utils get this action plugin under
their own name (a symlink to this file, as ansible-core pairs ``copy`` with
its action). It keeps everything a module run guarantees and changes only
how the code reaches the target:

- the arguments are validated on the controller with the module's own
  argument_spec and constraints, through ansible-core's
  ``ArgumentSpecValidator`` (the validator AnsibleModule uses), so bad input
  fails before anything runs, with the same messages;
- the module's source and its module_utils are sent over the task's own
  connection (delegation, become and check/diff mode as usual) to the
  target's Python, which runs the module's unchanged ``main()`` against a
  small AnsibleModule stand-in holding the validated parameters. When the
  target is the controller itself as the same user (local connection, no
  become: the state kept on the control node, the sandbox), ``main()`` runs
  in this task's own forked worker process instead, which is as isolated
  and saves starting a Python;
- values of ``no_log`` options are removed from the result.

Everything else, and anything this path cannot serve (no known interpreter,
a connection without pipelining, async, a module importing other
module_utils, ``bemore_light_modules: false``), runs through ``_execute_module`` as usual: the module files stay
complete modules, for ``ansible-doc``, ad-hoc use and that fallback.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import traceback

from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

# The AnsibleModule subset the light modules use; runs on the target with the
# standard library only. Parameters, check and diff mode arrive on stdin with
# the sources of the module and its module_utils.
_STANDIN = r'''
import json, os, shutil, subprocess, sys
class AnsibleModule(object):
    # Holds the parameters validated on the controller (P); prints the result as a module does.
    def __init__(self, argument_spec=None, supports_check_mode=False, **kwargs):
        self.params = P["params"]
        for key in P["path_keys"]:
            v = self.params.get(key)
            if isinstance(v, str):
                self.params[key] = os.path.expanduser(os.path.expandvars(v))
            elif isinstance(v, list):
                self.params[key] = [os.path.expanduser(os.path.expandvars(i)) for i in v]
        self.check_mode = P["check_mode"]
        self._diff = P["diff"]
        self._warnings = []
    def warn(self, msg):
        self._warnings.append(str(msg))
    def get_bin_path(self, name, required=False, opt_dirs=None):
        dirs = list(opt_dirs or []) + [os.environ.get("PATH", ""), "/sbin", "/usr/sbin", "/usr/local/sbin"]
        found = shutil.which(name, path=os.pathsep.join(dirs))
        if required and not found:
            self.fail_json(msg="Failed to find required executable %s" % name)
        return found
    def run_command(self, args, check_rc=False, data=None, **kwargs):
        try:
            proc = subprocess.run(args, input=data, capture_output=True, text=True, shell=isinstance(args, str))
        except OSError as exc:
            if check_rc:
                self.fail_json(msg=str(exc), cmd=args)
            return 2, "", str(exc)
        if check_rc and proc.returncode:
            self.fail_json(msg=proc.stderr.strip() or "command failed", rc=proc.returncode, cmd=args)
        return proc.returncode, proc.stdout, proc.stderr
    def _out(self, result, rc):
        if self._warnings:
            result["warnings"] = self._warnings
        OUT.append(json.dumps(result, default=str))
        raise SystemExit(rc)
    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        self._out(kwargs, 0)
    def fail_json(self, msg, **kwargs):
        kwargs.update(failed=True, msg=msg)
        self._out(kwargs, 1)
'''

# Runs on the target: parameters, mode and sources arrive on stdin.
_BOOTSTRAP = r'''
import json, sys, traceback, types
P = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogateescape"))
OUT = []
def new(name, src=None, pkg=False):
    m = types.ModuleType(name)
    if pkg:
        m.__path__ = []
    sys.modules[name] = m
    if src is not None:
        exec(compile(src, "<light %s>" % name, "exec"), m.__dict__)
    return m
new("ansible", pkg=True)
new("ansible.module_utils", pkg=True)
exec(P["standin"], globals())
new("ansible.module_utils.basic").AnsibleModule = AnsibleModule
for name, src in P["utils"]:
    new("ansible.module_utils." + name, src)
try:
    new("__light_module__", P["module"]).main()
except SystemExit:
    pass
except Exception as exc:
    OUT.append(json.dumps({"failed": True, "msg": "%s: %s" % (type(exc).__name__, exc),
                           "exception": traceback.format_exc()}))
sys.stdout.write(OUT[0] if OUT else '{"failed": true, "msg": "the module returned no result"}')
'''


# Compiled once: the module-level caches below are filled in the controller's
# main process before it forks the task workers (see
# plugins/callback/controller_warmup.py), so each worker inherits them
# instead of parsing and compiling the same sources again.
_STANDIN_CODE = compile(_STANDIN, "<light stand-in>", "exec")
_PLANS = {}


class _Captured(Exception):
    """Raised by the capturing stand-in with the module's AnsibleModule arguments."""

    def __init__(self, kwargs):
        super().__init__("captured")
        self.kwargs = kwargs


def _capture_spec(source, path):
    """The keyword arguments the module's main() passes to AnsibleModule."""
    namespace = {"__name__": "__light_spec__", "__file__": path}
    exec(compile(source, path, "exec"), namespace)  # pylint: disable=exec-used

    def capture(*args, **kwargs):
        if args:
            kwargs["argument_spec"] = args[0]
        raise _Captured(kwargs)

    namespace["AnsibleModule"] = capture
    try:
        namespace["main"]()
    except _Captured as captured:
        return namespace, captured.kwargs
    raise ValueError("%s: main() did not create an AnsibleModule" % path)


def _module_utils_paths():
    return [p for p in C.DEFAULT_MODULE_UTILS_PATH if os.path.isdir(p)]


def _project_imports(source):
    """Names of ansible.module_utils.X imported by the source; None if one is not a project file."""
    names = []
    for node in ast.walk(ast.parse(source)):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        for module in modules:
            if not module.startswith("ansible"):
                continue
            if module == "ansible.module_utils.basic":
                continue
            parts = module.split(".")
            if parts[:2] != ["ansible", "module_utils"] or len(parts) != 3:
                return None
            names.append(parts[2])
    return names


def _collect_utils(source):
    """[(name, source)] of the project module_utils the module needs, dependencies first; None if unsupported."""
    found, order = {}, []

    def visit(src):
        names = _project_imports(src)
        if names is None:
            return False
        for name in names:
            if name in found:
                continue
            path = next((os.path.join(d, name + ".py") for d in _module_utils_paths()
                         if os.path.isfile(os.path.join(d, name + ".py"))), None)
            if path is None:
                return False
            with open(path, encoding="utf-8") as handle:
                found[name] = handle.read()
            if not visit(found[name]):
                return False
            order.append(name)
        return True

    if not visit(source):
        return None
    return [(name, found[name]) for name in order]


def _run_in_process(namespace, payload):
    """Run the module's main() here, in this forked task worker, against the stand-in."""
    standin = {"P": json.loads(payload), "OUT": []}
    exec(_STANDIN_CODE, standin)  # pylint: disable=exec-used
    namespace["AnsibleModule"] = standin["AnsibleModule"]
    try:
        namespace["main"]()
    except SystemExit:
        pass
    except Exception as exc:  # pylint: disable=broad-except
        return {"failed": True, "msg": "%s: %s" % (type(exc).__name__, exc), "exception": traceback.format_exc()}
    if not standin["OUT"]:
        return {"failed": True, "msg": "the module returned no result"}
    return json.loads(standin["OUT"][0])


class ActionModule(ActionBase):
    """Runs the module of the same name through the light path when it can."""

    TRANSFERS_FILES = False
    _requires_connection = True

    def _vars_of_target(self, task_vars):
        if self._task.delegate_to:
            return (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to) or {}
        return task_vars

    def _interpreter(self, task_vars):
        target = self._vars_of_target(task_vars)
        value = target.get("ansible_python_interpreter")
        if value is None:
            value = (target.get("ansible_facts") or {}).get("discovered_interpreter_python")
        if value is None:
            return None
        value = self._templar.copy_with_new_env(available_variables=target).template(value)
        return value if isinstance(value, str) and value.startswith("/") else None

    def _local_and_same_user(self):
        """True when the target is this machine as this user: the module can run in this worker."""
        return self._connection.transport == "local" and not self._play_context.become

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        name = self._task.action.rsplit(".", 1)[-1]
        # bemore_light_modules: true (default), false (always the standard
        # path) or "subprocess" (never in this worker; tests use it to run the
        # target bootstrap on localhost).
        light = str(self._templar.template(task_vars.get("bemore_light_modules", True))).lower()
        plan = None
        if light not in ("false", "no", "0") and not self._task.async_val \
                and self._connection._shell.SHELL_FAMILY == "sh":
            in_process = light != "subprocess" and self._local_and_same_user()
            # The payload travels on stdin, which a connection passes only
            # where it can pipeline (not podman, say), and only where the
            # user allows it (sudo's requiretty).
            interpreter = None if in_process or not self._connection.is_pipelining_enabled() \
                else self._interpreter(task_vars)
            if in_process or interpreter:
                plan = self._plan(name)
        if plan is None:
            result.update(self._execute_module(module_name=name, task_vars=task_vars))
            return result

        source, utils, namespace, spec_kwargs = plan
        spec = spec_kwargs.pop("argument_spec", {}) or {}
        constraints = {key: spec_kwargs[key] for key in ("mutually_exclusive", "required_together", "required_one_of",
                                                         "required_if", "required_by") if spec_kwargs.get(key)}
        validated = ArgumentSpecValidator(spec, **constraints).validate(dict(self._task.args))
        if validated.error_messages:  # worded as AnsibleModule words it
            msg = validated.errors.msg
            if isinstance(validated.errors[0], UnsupportedError):
                msg = "Unsupported parameters for (%s) module: %s" % (name, msg)
            result.update(failed=True, msg=msg)
            return result
        check_mode = bool(self._play_context.check_mode)
        if check_mode and not spec_kwargs.get("supports_check_mode"):
            result.update(skipped=True, msg="remote module (%s) does not support check mode" % name)
            return result
        path_keys = [key for key, option in spec.items()
                     if option.get("type") == "path" or option.get("elements") == "path"]
        request = {"params": dict(validated.validated_parameters), "path_keys": path_keys, "check_mode": check_mode,
                   "diff": bool(self._play_context.diff)}
        if not in_process:  # the target gets the code too; this worker has it loaded already
            request.update(module=source, utils=utils, standin=_STANDIN)
        # Encoded as for any module, so tagged templating results arrive as plain values either way.
        payload = get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE)().encode(request)
        if in_process:
            data = _run_in_process(namespace, payload)
        else:
            cmd = "%s -c %s" % (shlex.quote(interpreter), shlex.quote(_BOOTSTRAP))
            environment = self._compute_environment_string()
            if environment:
                cmd = "%s %s" % (environment, cmd)
            res = self._low_level_execute_command(cmd, sudoable=True,
                                                  in_data=payload.encode("utf-8", "surrogateescape"))
            self._used_interpreter = interpreter
            data = self._parse_returned_data(res, "legacy")
            data.pop("_ansible_parsed", None)
            if not data.get("failed") and res.get("rc") not in (0, None):
                data.update(failed=True, msg=data.get("msg") or "module exited with rc %s" % res.get("rc"))
        result.update(remove_values(data, validated._no_log_values))  # pylint: disable=protected-access
        return result

    def _plan(self, name):
        """(source, utils, namespace, AnsibleModule kwargs) of the module, or None for the standard path."""
        return plan_for_name(self._shared_loader_obj.module_loader, name, self._task.collections)

    @staticmethod
    def warm_up(name):
        """Fill the plan cache for the module NAME in this (the controller's main) process."""
        from ansible.plugins.loader import module_loader  # pylint: disable=import-outside-toplevel
        plan_for_name(module_loader, name)


def plan_for_name(module_loader, name, collection_list=None):
    """The cached plan of the module NAME as MODULE_LOADER resolves it; None for the standard path."""
    context = module_loader.find_plugin_with_context(name, collection_list=collection_list)
    if not context.resolved or not context.plugin_resolved_path.endswith(".py"):
        return None
    return plan_for(context.plugin_resolved_path)


def plan_for(path):
    """The cached plan of the module file at PATH (see ActionModule._plan); None for the standard path."""
    try:
        stamp = os.stat(path)
    except OSError:
        return None
    key = (path, stamp.st_mtime_ns, stamp.st_size)
    if key not in _PLANS:
        _PLANS[key] = _make_plan(path)
    plan = _PLANS[key]
    if plan is None:
        return None
    source, utils, namespace, spec_kwargs = plan
    return source, utils, namespace, dict(spec_kwargs)


def _make_plan(path):
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    utils = _collect_utils(source)
    if utils is None:
        return None
    # The module's own code is loaded here once, to read the argument_spec
    # it gives AnsibleModule; its module_utils resolve from the project's
    # module_utils folders.
    import ansible.module_utils as package  # pylint: disable=import-outside-toplevel
    for folder in _module_utils_paths():
        if folder not in package.__path__:
            package.__path__.append(folder)
    namespace, spec_kwargs = _capture_spec(source, path)
    return source, utils, namespace, spec_kwargs
