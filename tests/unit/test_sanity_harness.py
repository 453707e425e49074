"""tools/sanity.py: the collection layout keeps the project's code as it is
(line numbers, line lengths, visual indents), ansible-test's findings come
back under the project's paths, and the offline get-pip stand-in is put in
place once."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap

from tests.helpers import REPO

_spec = importlib.util.spec_from_file_location("tools_sanity", os.path.join(REPO, "tools", "sanity.py"))
sanity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sanity)

NAMES = {"library": {"demo", "other"}, "module_utils": {"demo_util"}, "plugins/doc_fragments": {"demo_frag"}}


def rewrite(text):
    return sanity.rewrite_source(text, sanity.import_rules(NAMES), NAMES["plugins/doc_fragments"], NAMES["library"])


def test_imports_become_relative_and_keep_length_and_visual_indent():
    source = textwrap.dedent("""\
        from ansible.module_utils.basic import AnsibleModule
        from ansible.module_utils.demo_util import (alpha, beta,
                                                    gamma)
        from ansible.module_utils.demo_util import (
            alpha,
        )
        from ansible.module_utils import demo_util
        from ansible.module_utils.demo_utility import alpha
        """)
    text, shifts, resized = rewrite(source)
    old, new = source.split("\n"), text.split("\n")
    assert new[0] == old[0]  # ansible-core's own module_utils stay as they are
    assert new[1].startswith("from ..module_utils.demo_util import (alpha, beta,")
    assert new[3].startswith("from ..module_utils.demo_util import (")
    assert new[6].startswith("from ..module_utils import demo_util")
    assert new[7] == old[7]  # not a project module_utils, only a longer name
    assert [len(line) for line in new] == [len(line) for line in old]
    # the visual indent still lines up under the first name
    assert new[2].index("gamma") == new[1].index("alpha")
    # the hanging indent is left where it was
    assert new[4] == old[4]
    assert resized == []
    assert shifts[2] == [(5, -6)] and shifts[3] == [(0, -6)]
    # the rewritten file is still valid Python with the same line count
    compile(text, "demo.py", "exec")


def test_fragments_and_seealso_get_the_collection_name():
    source = textwrap.dedent('''\
        DOCUMENTATION = r"""
        extends_documentation_fragment:
          - demo_frag
          - demo_frag.readonly
          - ansible.builtin.action_common_attributes
        seealso:
          - module: other
          - module: ansible.builtin.uri
        options:
          module:
            description: demo
        """
        OTHER = r"""
        extends_documentation_fragment: [demo_frag, unknown]
        """
        ''')
    text, _shifts, resized = rewrite(source)
    new = text.split("\n")
    assert new[2] == "  - bemore.runbooks.demo_frag"
    assert new[3] == "  - bemore.runbooks.demo_frag.readonly"
    assert new[4] == "  - ansible.builtin.action_common_attributes"
    assert new[6] == "  - module: bemore.runbooks.other"
    assert new[7] == "  - module: ansible.builtin.uri"
    assert new[13] == "extends_documentation_fragment: [bemore.runbooks.demo_frag, unknown]"
    assert resized == [3, 4, 7, 14]
    assert len(new) == len(source.split("\n"))


def test_every_project_file_still_compiles_with_its_line_numbers(tmp_path):
    """The real library/, module_utils/ and plugins/ survive the rewrite."""
    coll, pairs, _shifts, _notes = sanity.build_collection(REPO, str(tmp_path))
    local_utils = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "module_utils")) if f.endswith(".py"))
    short_import = re.compile(r"^\s*from\s+ansible\.module_utils\.(%s)\s+import" % "|".join(local_utils), re.M)
    checked = []
    for src, dst in pairs:
        for rel in sanity.source_files(REPO, src):
            target = os.path.join(coll, dst + rel[len(src):])
            if not rel.endswith(".py") or os.path.islink(target):
                continue
            with open(os.path.join(REPO, rel), encoding="utf-8") as handle:
                before = handle.read().split("\n")
            with open(target, encoding="utf-8") as handle:
                after = handle.read()
            compile(after, target, "exec")
            assert len(after.split("\n")) == len(before), rel
            assert not short_import.search(after), rel
            checked.append(rel)
    modules = ["library/" + f for f in os.listdir(os.path.join(REPO, "library"))
               if f.endswith(".py") and not os.path.islink(os.path.join(REPO, "library", f))]
    assert modules and set(modules) <= set(checked)
    tracked = subprocess.run(["git", "ls-files"], cwd=coll, capture_output=True, text=True, check=True).stdout.split()
    assert "galaxy.yml" in tracked and "plugins/modules/" + modules[0][len("library/"):] in tracked


def test_output_paths_and_columns_map_back_to_the_project():
    pairs = [("library", "plugins/modules"), ("module_utils", "plugins/module_utils"), ("plugins/action", "plugins/action")]
    shifts = {"plugins/modules/demo.py": {3: ([(5, -6)], 100), 4: ([(0, -6)], 90)}}
    mapper = sanity.OutputMapper("/tmp/x/ansible_collections/bemore/runbooks", pairs, shifts)
    assert mapper.map("ERROR: plugins/modules/demo.py:4:40: E128: continuation\n") == \
        "ERROR: library/demo.py:4:46: E128: continuation\n"
    # pep8 reports E501 at the limit + 1, in the padding: unchanged
    assert mapper.map("plugins/modules/demo.py:3:98: E501") == "library/demo.py:3:98: E501"
    assert mapper.map("plugins/modules/demo.py:3:20: x") == "library/demo.py:3:26: x"
    assert mapper.map("(/tmp/x/ansible_collections/bemore/runbooks/plugins/module_utils/a.py)") == "(module_utils/a.py)"
    assert mapper.map("plugins/action/light.py:0:0: no module") == "plugins/action/light.py:0:0: no module"
    assert mapper.map("see tests/plugins/modules/x.py") == "see tests/plugins/modules/x.py"


def test_get_pip_stand_in_is_written_once_and_never_over_a_foreign_file(tmp_path):
    path, written = sanity.ensure_get_pip(home=str(tmp_path))
    assert written and path == str(tmp_path / ".ansible" / "test" / "cache" /
                                   ("get_pip_%s.py" % sanity.pinned_pip_version().replace(".", "_")))
    with open(os.path.join(REPO, "tools", "sanity", "get_pip_standin.py"), "rb") as handle:
        assert open(path, "rb").read() == handle.read()
    assert sanity.ensure_get_pip(home=str(tmp_path)) == (path, False)
    # an older copy of the stand-in is refreshed; anything else is left alone
    with open(path, "wb") as handle:
        handle.write(sanity.STANDIN_MARKER + b"\nold\n")
    assert sanity.ensure_get_pip(home=str(tmp_path)) == (path, True)
    with open(path, "wb") as handle:
        handle.write(b"# the real get-pip.py\n")
    assert sanity.ensure_get_pip(home=str(tmp_path)) == (path, False)
    assert open(path, "rb").read() == b"# the real get-pip.py\n"


def test_broken_interpreters_are_skipped_with_the_reason(tmp_path, monkeypatch):
    shim = tmp_path / "bin" / "python3.8"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.8: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    real = "%d.%d" % sys.version_info[:2]
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", "%s:%s" % (shim.parent, os.path.dirname(os.path.realpath(sys.executable))))
    found, missing = sanity.find_pythons(["3.8", real])
    assert "3.8" not in found and "command not found" in missing["3.8"]
    assert found[real] == os.path.realpath(sys.executable)


def test_pep8_findings_are_the_projects_own(tmp_path, capsys):
    """End to end with ansible-test's pep8: an import 160 characters long is
    fine after the rewrite, one of 161 is reported, a visual indent that
    lines up passes and one that does not is reported, under library/."""
    (tmp_path / "library").mkdir()
    (tmp_path / "module_utils").mkdir()
    (tmp_path / "module_utils" / "demo_util.py").write_text("alpha = beta = gamma = 1\n")
    head = "from ansible.module_utils.demo_util import alpha, beta, gamma  # "
    lines = [
        "from ansible.module_utils.demo_util import (alpha, beta,",
        "                                            gamma)",
        head + "x" * (160 - len(head)),
        head + "x" * (161 - len(head)),
        "from ansible.module_utils.demo_util import (alpha,",
        "                                          beta)",
    ]
    (tmp_path / "library" / "demo.py").write_text("\n".join(lines) + "\n")
    rc = sanity.main(["--project", str(tmp_path), "--python-versions", "%d.%d" % sys.version_info[:2],
                      "--", "--test", "pep8"])
    out = capsys.readouterr().out
    found = sorted(line for line in out.splitlines() if line.startswith("ERROR: library/"))
    assert found == ["ERROR: library/demo.py:4:161: E501: line too long (161 > 160 characters)",
                     "ERROR: library/demo.py:6:43: E128: continuation line under-indented for visual indent"], out
    assert rc == 1
    assert "sanity: FAILED pep8: 2 errors" in out
    assert re.match(r"^sanity: 1 tests, 1 results: 1 failed, 2 errors, 0 skipped; "
                    r"\d+ s; exit 1$", out.rstrip().splitlines()[-1]), out
