# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the runbook_report module with the report page's template, read on the controller.

AnsiballZ ships only the .py files of module_utils, so the module cannot
reach the report role's Jinja2 template (templates/report.html.j2) itself:
this action plugin finds it as the template module finds its source (the
role's templates/ first, then the playbook's) and passes its text in as
I(html_template). The module does everything else.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

TEMPLATE = "report.html.j2"
# The report role's template in this repository, for a task outside the role (a test playbook).
REPO_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
                             "roles", "report", "templates", TEMPLATE)


class ActionModule(ActionBase):

    def _template_path(self):
        try:
            return self._find_needle("templates", TEMPLATE)
        except AnsibleError:
            return REPO_TEMPLATE if os.path.isfile(REPO_TEMPLATE) else None

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = dict(self._task.args)
        if not args.get("html_template"):
            path = self._template_path()
            if path:
                with open(path, encoding="utf-8") as handle:
                    args["html_template"] = handle.read()
        # Without a template the module still writes the JSON and Markdown report and says why the page is missing.
        result.update(self._execute_module(module_name="runbook_report", module_args=args, task_vars=task_vars))
        return result
