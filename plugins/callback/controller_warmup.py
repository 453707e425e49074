# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fill the controller's per-process caches once, before the task workers fork.

Why: ansible-core forks one worker process per host and task, and a worker
dies with everything it cached. ansible-core 2.19 builds its Jinja lexer and
loads every filter and test plugin lazily, on the first template that needs
them, and that is nearly always inside a worker: each of the hundreds of
workers of a fleet run paid for it again (profiled: a third of a daily run's
worker CPU on 20 hosts, together with the light modules' plan below). Done
once in the main process at the start of the first play, it reaches every
worker through fork.

It also prepares the plans of this project's light modules
(plugins/action/light_module.py: each module's argument_spec and
module_utils sources) for the same reason.

A cache warmed here only spares work; if any of it fails, the workers do it
themselves as before, so this plugin never fails a run.
"""

from __future__ import annotations

DOCUMENTATION = """
name: controller_warmup
type: aggregate
short_description: Warm the controller's template and light-module caches before workers fork
description:
  - Builds the Jinja lexer, loads the filter and test plugins and prepares the plans of the
    project's light modules in the controller's main process at the start of the first play, so
    the forked task workers inherit them instead of redoing the work per host and task.
  - Changes no result and no output; a failure here is ignored (the workers then do the work).
  - Loaded automatically from the project's callback_plugins folder.
author: BeMore maintenance runbooks contributors
"""

import os

from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import action_loader, filter_loader, test_loader
from ansible.template import Templar, trust_as_template
from ansible.utils.display import Display

display = Display()

_LIGHT_ACTION = "light_module.py"


def light_module_names(folders):
    """Names of the action plugins in FOLDERS that are the light-module plugin under another name."""
    names = set()
    for folder in folders:
        target = os.path.join(folder, _LIGHT_ACTION)
        if not os.path.isfile(target):
            continue
        real = os.path.realpath(target)
        for entry in os.scandir(folder):
            if entry.name.endswith(".py") and entry.name != _LIGHT_ACTION and os.path.realpath(entry.path) == real:
                names.add(entry.name[:-3])
    return sorted(names)


class CallbackModule(CallbackBase):
    """Warms the caches at the start of the first play; they hold for the rest of the run."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "controller_warmup"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._warm = False

    def v2_playbook_on_play_start(self, play):
        if self._warm:
            return
        self._warm = True
        try:
            list(filter_loader.all())
            list(test_loader.all())
            # A filter and a test in one template build and cache the lexer.
            Templar(loader=None).template(trust_as_template("{{ [1] | length is number }}"))
            names = light_module_names(C.DEFAULT_ACTION_PLUGIN_PATH)
            for name in names:
                plugin = action_loader.get(name, class_only=True)
                if plugin is not None and hasattr(plugin, "warm_up"):
                    plugin.warm_up(name)
            display.vvvv("controller_warmup: Jinja plugins and %d light module plan(s) ready before the workers fork"
                         % len(names))
        except Exception as exc:  # pylint: disable=broad-except
            display.vvv("controller_warmup: caches not warmed (%s); the workers fill them" % exc)
