# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attributes shared by the modules of the project."""

from __future__ import annotations


class ModuleDocFragment(object):
    # A module that only reads: check mode runs it unchanged, there is no diff.
    READONLY = r"""
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is nothing to show a difference of.
    support: none
  platform:
    description: Targets where the module runs.
    support: full
    platforms: posix
"""

    # A module that runs on the control node for every host of the play.
    CONTROLLER = r"""
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing on a managed host, so there is nothing to show a difference of.
    support: none
  platform:
    description: Runs on the control node (C(delegate_to) localhost, C(run_once)); Linux for the process checks.
    support: full
    platforms: posix
"""
