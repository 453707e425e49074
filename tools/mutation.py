#!/usr/bin/env python3
"""Mutation testing of the decision code with mutmut 3.x (`make mutation`).

mutmut names a mutant after the file's path (`module_utils/x.py` ->
`module_utils.x`) and a mutated function only switches to its mutant when the
function's `__module__` equals that name. The tests import module_utils/x.py
as `ansible.module_utils.x` (tests/helpers.py), so run from the repository
every mutant would be "no tests". This driver lays out, per file, a working
folder where the file sits at `src/ansible/module_utils/x.py`: mutmut strips
`src.` and names its mutants `ansible.module_utils.x...`, exactly the module
the tests import. In the `mutants/` copy mutmut runs the tests in, a pytest
plugin (`-p mutation_layout`) points the tests' own finder at
`src/ansible/module_utils`, so the pytest process loads the mutated copy
while the tests' subprocesses keep the plain `module_utils/`; the real
`ansible` package still wins the import of `ansible` itself (the
`src/ansible` folder has no __init__.py).

One file at a time, under `nice -n 10`, tests in file order (mutmut passes
`-p no:randomly`; hypothesis gets a fixed seed). Prints per file:
score = killed / (killed + survived), timeouts counted as killed, "no tests"
counted as survived, and the score once two kinds of survivor are set aside:
those that change only the wording of a message (found by the driver, listed
in .cache/mutation/<name>/message-only.txt) and the equivalent mutants named
in tests/mutation-set-aside.md. The surviving mutants, each with its line and
diff, are written to .cache/mutation/<name>/survivors.txt.

    python tools/mutation.py [--max-children N] [bemore_steps runbook_plan safe_tree]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(REPO, ".cache", "mutation")
SET_ASIDE = os.path.join(REPO, "tests", "mutation-set-aside.md")
MUTMUT = os.path.join(os.path.dirname(sys.executable), "mutmut")

# Each file against the unit tests that cover it, in this order.
# Every unit test file that imports the module: the incident rules of bemore_steps (classify_incident,
# incident_outcome, recheck_errors) are tested in test_rate_rules.py only, and a file left out here turns
# its functions' mutants into "no tests".
TARGETS = {
    "bemore_steps": ["tests/unit/test_steps.py", "tests/unit/test_steps_rules.py", "tests/unit/test_rate_rules.py",
                     "tests/unit/test_http_steps.py"],
    "runbook_plan": ["tests/unit/test_run_records.py", "tests/unit/test_plan_rules.py", "tests/unit/test_rate_rules.py",
                     "tests/unit/test_lifecycle_rules.py"],
    "safe_tree": ["tests/unit/test_tmp_cleanup.py", "tests/unit/test_safe_tree_rules.py"],
}

# Left out of the mutants/ copy: mutmut copies the tests itself, the rest is
# the tool's own or this machine's.
NOT_LINKED = {".git", ".venv", ".cache", "tests", "module_utils", "mutants", "src", "setup.cfg"}

KILLED = ("killed", "timeout")
SURVIVED = ("survived", "no tests")

# A diff for each survivor, from mutmut's own renderer (run in the working folder), headed by the
# line of the file it changes, "message-only" when it changes nothing but the text of a message (a
# problem, a summary, an error or exception text: set aside) and "string-only" when it changes other
# string literals only (keys and values: not set aside).
DIFFS = r"""
import ast, io, re, sys, tokenize
from mutmut.__main__ import find_mutant, get_diff_for_mutant

def tokens(line):
    # The tokens of one line, which may close brackets opened on an earlier one.
    out = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
                out.append((t.type, t.string, t.start[1]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out

def message_spans(text):
    # Where the string literals that are the text of a message lie: a problem, a summary, an error, an exception.
    tree = ast.parse(text)
    message, other = set(), set()
    def strings(node):
        # The literal text, not the keys read to fill it in (cfg.get("x"), figures["x"]).
        if isinstance(node, (ast.Call, ast.Subscript)):
            return []
        if isinstance(node, ast.Constant):
            return [node] if isinstance(node.value, str) else []
        return [s for child in ast.iter_child_nodes(node) for s in strings(child)]
    marked = set()
    for node in ast.walk(tree):
        parts = []
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = getattr(f.value, "id", getattr(f.value, "attr", "")) if isinstance(f, ast.Attribute) else ""
            if name == "append" and owner in ("problems", "errors", "parts"):
                parts = node.args
            elif name == "step" and not owner:
                parts = node.args[3:4] + node.args[5:6]  # step(name, status, severity, summary, figures, problems)
            elif name == "add" and owner == "problems":
                parts = node.args[2:]
            elif name in ("UnsafeRoot", "unreadable", "not_applicable"):
                parts = node.args
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(t, "id", "") == "summary" for t in targets):
                parts = [node.value]
        for part in parts:
            for s in strings(part):
                marked.add(id(s))
    return [(s.lineno, s.col_offset, s.end_lineno, s.end_col_offset) for s in ast.walk(tree) if id(s) in marked]


def in_message(spans, line, col):
    return any((l0, c0) <= (line, col) < (l1, c1) for l0, c0, l1, c1 in spans)

source, messages = {}, {}
for name in sys.argv[1:]:
    path = find_mutant(name).path
    diff = get_diff_for_mutant(name, path=path)
    if path not in source:
        text = open(path).read()
        source[path], messages[path] = text.split("\n"), message_spans(text)
    lines = source[path]
    func = name.rpartition(".")[2].partition("__mutmut_")[0].split("\u01c1")[-1]
    func = func[2:] if func.startswith("x_") else func
    start = next((i for i, l in enumerate(lines) if re.match(r"\s*def %s\(" % re.escape(func), l)), 0)
    old = [l[1:] for l in diff.split("\n") if l.startswith("-") and not l.startswith("---")]
    new = [l[1:] for l in diff.split("\n") if l.startswith("+") and not l.startswith("+++")]
    at = next((i + 1 for i in range(start, len(lines)) if old and lines[i].strip() == old[0].strip()), "?")
    kind = ""
    if len(old) == len(new) == 1:
        a, b = tokens(old[0]), tokens(new[0])
        if a and b and len(a) == len(b) and all(x[:2] == y[:2] or x[0] == y[0] == tokenize.STRING for x, y in zip(a, b)):
            indent = len(old[0]) - len(old[0].lstrip())
            changed = [x[2] for x, y in zip(a, b) if x[:2] != y[:2]]
            # The diff's lines keep the function's own indentation; the file's line may sit deeper (a method).
            if at != "?":
                indent = len(lines[at - 1]) - len(lines[at - 1].lstrip())
            message = at != "?" and changed and all(in_message(messages[path], at, indent + c) for c in changed)
            kind = " message-only" if message else " string-only"
    print("=== %s line %s%s" % (name, at, kind))
    print(diff)
"""


# A pytest plugin (-p mutation_layout), loaded before tests/conftest.py registers module_utils: the
# tests' finder (tests/helpers.py) then loads ansible.module_utils.* from the package mutmut mutated.
PLUGIN = """\"\"\"Written by tools/mutation.py: the tests import the mutated module_utils in this process.\"\"\"
import os

from tests import helpers

helpers._ProjectModuleUtils.folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", "ansible", "module_utils")
"""


def layout(name, tests, timeout_multiplier):
    """A working folder where mutmut's name for the file is the module the tests import."""
    work = os.path.join(WORK, name)
    shutil.rmtree(work, ignore_errors=True)
    package = os.path.join(work, "src", "ansible", "module_utils")
    mutants = os.path.join(work, "mutants")
    mutated_package = os.path.join(mutants, "src", "ansible", "module_utils")
    os.makedirs(package)
    os.makedirs(mutated_package)
    shutil.copy2(os.path.join(REPO, "module_utils", name + ".py"), package)
    # The other module_utils, unmutated, beside the mutated file: its imports find them there.
    for filename in sorted(os.listdir(os.path.join(REPO, "module_utils"))):
        if filename.endswith(".py") and filename != name + ".py":
            shutil.copy2(os.path.join(REPO, "module_utils", filename), mutated_package)
    # module_utils/ stays unmutated for the tests' subprocesses (a module run, a second process);
    # in the pytest process mutmut runs, the plugin below points the tests' finder at the mutated copy.
    shutil.copytree(os.path.join(REPO, "module_utils"), os.path.join(mutants, "module_utils"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(os.path.join(mutants, "mutation_layout.py"), "w") as fh:
        fh.write(PLUGIN)
    shutil.copytree(os.path.join(REPO, "tests"), os.path.join(mutants, "tests"),
                    ignore=shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache"))
    for entry in sorted(os.listdir(REPO)):
        if entry not in NOT_LINKED:
            os.symlink(os.path.join(REPO, entry), os.path.join(mutants, entry))
    write_config(work, name, tests, timeout_multiplier)
    return work


def write_config(work, name, tests, timeout_multiplier):
    """mutmut's setup.cfg: the file to mutate and the tests that cover it, in order."""
    with open(os.path.join(work, "setup.cfg"), "w") as fh:
        fh.write("[mutmut]\n")
        fh.write("source_paths = src/ansible/module_utils/%s.py\n" % name)
        fh.write("pytest_add_cli_args_test_selection =\n" + "".join("    %s\n" % t for t in tests))
        # Same examples every run: a mutant's verdict must not depend on hypothesis's draw.
        fh.write("pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -p\n    mutation_layout\n    --hypothesis-seed=0\n")
        # A mutant that makes a test hang costs this many times the tests' own time before it counts as killed.
        fh.write("timeout_multiplier = %s\n" % timeout_multiplier)


def read_set_aside():
    """The mutant names listed in tests/mutation-set-aside.md (in backquotes, one a line)."""
    names = set()
    if os.path.exists(SET_ASIDE):
        with open(SET_ASIDE) as fh:
            for line in fh:
                names.update(re.findall(r"`(ansible\.module_utils\.[\w.ǁ]+__mutmut_\d+)`", line))
    return names


def results(work):
    out = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=work, capture_output=True, text=True, check=True,
                         timeout=600).stdout
    statuses = {}
    for line in out.splitlines():
        key, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in key:
            statuses[key] = status
    return statuses


def score(killed, survived):
    return 100.0 * killed / (killed + survived) if killed + survived else 100.0


def run_one(name, tests, max_children, set_aside, timeout_multiplier, sample, rescore=False, retest=False):
    work = os.path.join(WORK, name)
    start = time.monotonic()
    if retest:
        # The last run's survivors again, against the tests as they are now.
        with open(os.path.join(work, "survivors.txt")) as fh:
            survivors = re.findall(r"^=== (\S+) ", fh.read(), re.M)
        shutil.copytree(os.path.join(REPO, "tests"), os.path.join(work, "mutants", "tests"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache"))
        write_config(work, name, tests, timeout_multiplier)  # the test files as TARGETS names them now
        if survivors:
            _run_mutmut(work, name, max_children, None, survivors)
    elif not rescore:
        work = layout(name, tests, timeout_multiplier)
        _run_mutmut(work, name, max_children, sample)
    return _score(work, name, tests, set_aside, sample, time.monotonic() - start)


def _run_mutmut(work, name, max_children, sample, names=()):
    # A sample: the mutants whose number ends in one of the digits given (spread over every function).
    patterns = ["ansible.module_utils.%s.*__mutmut_*%s" % (name, "[%s]" % sample)] if sample else list(names)
    with open(os.path.join(work, "mutmut.log"), "w") as log:
        rc = subprocess.run(["nice", "-n", "10", MUTMUT, "run", "--max-children", str(max_children)] + patterns,
                            cwd=work, stdout=log, stderr=subprocess.STDOUT, timeout=4 * 3600, check=False).returncode
    if rc != 0:
        with open(os.path.join(work, "mutmut.log")) as log:
            print("".join(log.readlines()[-40:]))
        raise SystemExit("mutation: %s: mutmut run exited %d (log: %s/mutmut.log)" % (name, rc, work))


def _score(work, name, tests, set_aside, sample, elapsed):
    statuses = results(work)
    if sample:
        statuses = dict((k, v) for k, v in statuses.items() if k[-1] in sample)
    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    survivors = sorted((k for k, s in statuses.items() if s in SURVIVED), key=_natural)
    diffs = ""
    if survivors:
        diffs = subprocess.run([sys.executable, "-c", DIFFS] + survivors, cwd=work, capture_output=True, text=True,
                               check=True, timeout=600).stdout
    with open(os.path.join(work, "survivors.txt"), "w") as fh:
        fh.write(diffs)
    string_only = len(re.findall(r"^=== .* (string|message)-only$", diffs, re.M))
    message_only = sorted(re.findall(r"^=== (\S+) line (\d+) message-only$", diffs, re.M), key=lambda m: _natural(m[0]))
    with open(os.path.join(work, "message-only.txt"), "w") as fh:
        fh.write("".join("%s %s\n" % m for m in message_only))
    killed = sum(counts.get(s, 0) for s in KILLED)
    survived = len(survivors)
    # Set aside: the survivors that change only a message's wording, and the equivalent ones listed by name.
    wording = set(m[0] for m in message_only)
    aside = len([k for k in survivors if k in wording or k in set_aside])
    return {"file": "module_utils/%s.py" % name, "tests": tests, "mutants": len(statuses), "sample": sample, "counts": counts,
            "killed": killed, "survived": survived, "score": round(score(killed, survived), 1),
            "string_only": string_only, "message_only": len(message_only), "score_without_string_only": round(score(killed, survived - string_only), 1),
            "set_aside": aside, "score_without_set_aside": round(score(killed, survived - aside), 1),
            "seconds": round(elapsed), "survivors_file": os.path.relpath(os.path.join(work, "survivors.txt"), REPO)}


def _natural(key):
    head, _, number = key.rpartition("__mutmut_")
    return head, int(number)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("names", nargs="*", metavar="NAME", help="files to mutate (default: %s)" % " ".join(TARGETS))
    parser.add_argument("--timeout-multiplier", type=float, default=15.0,
                        help="a mutant times out after this many times its tests' clean duration (mutmut's default 15)")
    parser.add_argument("--baseline", action="store_true",
                        help="leave out the tests/unit/test_*_rules.py files (the score before them)")
    parser.add_argument("--sample", default="", metavar="DIGITS",
                        help="test only the mutants whose number ends in one of these digits (37: about a fifth)")
    parser.add_argument("--retest", action="store_true",
                        help="test the last run's survivors again against the tests as they are now, then score")
    parser.add_argument("--rescore", action="store_true",
                        help="score the last run again (after editing tests/mutation-set-aside.md) without running mutmut")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in TARGETS]
    if unknown:
        parser.error("unknown file %s (choose from %s)" % (", ".join(unknown), ", ".join(TARGETS)))
    if not os.path.exists(MUTMUT):
        raise SystemExit("mutation: mutmut is not installed in %s (pip install -r requirements.txt)" % os.path.dirname(MUTMUT))
    set_aside = read_set_aside()
    rows = []
    for name in args.names or list(TARGETS):
        tests = [t for t in TARGETS[name] if os.path.exists(os.path.join(REPO, t))
                 and not (args.baseline and t.endswith("_rules.py"))]
        print("mutation: %s against %s ..." % (name, " ".join(tests)), flush=True)
        row = run_one(name, tests, args.max_children, set_aside, args.timeout_multiplier, args.sample, args.rescore,
                      args.retest)
        rows.append(row)
        print("mutation: %(file)s: %(mutants)d mutants (sample: %(sample)s), %(killed)d killed, %(survived)d survived: score %(score).1f %%"
              " (%(score_without_set_aside).1f %% with %(set_aside)d set aside) in %(seconds)ds; survivors: %(survivors_file)s"
              % row, flush=True)
    with open(os.path.join(WORK, "scores.json"), "w") as fh:
        json.dump(rows, fh, indent=2)
    print()
    print("| file | mutants | killed (timeouts) | survived (no tests) | score | string-only survivors | score without them"
          " | set aside | score without those |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        c = row["counts"]
        print("| `%s` | %d | %d (%d) | %d (%d) | %.1f %% | %d | %.1f %% | %d | %.1f %% |" % (
            row["file"], row["mutants"], row["killed"], c.get("timeout", 0), row["survived"], c.get("no tests", 0),
            row["score"], row["string_only"], row["score_without_string_only"], row["set_aside"],
            row["score_without_set_aside"]))


if __name__ == "__main__":
    main()
