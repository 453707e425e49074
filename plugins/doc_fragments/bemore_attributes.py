# -*- coding: utf-8 -*-
# Copyright: BeMore maintenance runbooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attributes shared by the read-only modules of the project."""

from __future__ import annotations


class ModuleDocFragment(object):
    # A module that only reads: check mode runs it unchanged, there is no diff.
    READONLY = r"""
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""
