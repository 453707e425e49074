"""deploy.yml with the git_push strategy: a local bare repository is the
remote, and a watcher thread plays the CI/CD that deploys the deploy branch
to the sandbox simulator (a commit whose message says "broken" starts a
service whose /health fails)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from tests.integration.test_sandbox_playbooks import latest, play, steps

GIT_ENV = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.test", "GIT_COMMITTER_NAME": "dev",
           "GIT_COMMITTER_EMAIL": "dev@example.test"}


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=dict(os.environ, **GIT_ENV)).stdout.strip()


class FakeCICD(threading.Thread):
    """Deploys whatever the deploy branch points at to the simulator."""

    def __init__(self, bare, sim):
        super().__init__(daemon=True)
        self.bare, self.sim, self.stop_flag, self.deployed = bare, sim, False, []

    def run(self):
        seen = None
        while not self.stop_flag:
            head = subprocess.run(["git", "rev-parse", "refs/heads/woo"], cwd=self.bare, capture_output=True,
                                  text=True).stdout.strip()
            if head and head != seen:
                seen = head
                message = git(self.bare, "log", "-1", "--format=%s", head)
                time.sleep(0.5)  # build and release
                self.sim.control("DELETE", "/__sim/faults")
                if "broken" in message:
                    self.sim.fault(health_down=True)
                self.sim.control("POST", "/__sim/commit", {"commit": head})
                self.deployed.append(head)
            time.sleep(0.2)


@pytest.fixture
def repo(sandbox, tmp_path):
    app, bare = sandbox.app_dir, str(tmp_path / "remote.git")
    git(str(tmp_path), "init", "-q", "--bare", "-b", "main", bare)
    git(app, "init", "-q", "-b", "main")
    git(app, "add", "package.json", "package-lock.json", "test.js")
    git(app, "commit", "-q", "-m", "initial release")
    first = git(app, "rev-parse", "HEAD")
    git(app, "remote", "add", "origin", bare)
    git(app, "push", "-q", "origin", "HEAD:refs/heads/woo", "HEAD:refs/heads/main")
    sandbox.control("POST", "/__sim/commit", {"commit": first})
    cicd = FakeCICD(bare, sandbox)
    cicd.start()
    yield {"app": app, "bare": bare, "first": first, "cicd": cicd}
    cicd.stop_flag = True
    cicd.join(timeout=5)


def commit(app, message):
    with open(os.path.join(app, "CHANGELOG"), "a") as fh:
        fh.write(message + "\n")
    git(app, "add", "CHANGELOG")
    git(app, "commit", "-q", "-m", message)
    return git(app, "rev-parse", "HEAD")


def test_a_good_commit_is_deployed_and_verified(repo, sandbox, ansible_env):
    good = commit(repo["app"], "feat: faster STT chunks")
    proc = play("deploy.yml", ansible_env, "-e", "bemore_deploy_commit=" + good)
    assert proc.returncode == 0, proc.stdout[-4000:]
    by_step = steps(latest(ansible_env, "deploy"))
    assert by_step["deploy"]["status"] == "ok" and by_step["deploy"]["figures"]["rolled_back"] is False
    assert by_step["deploy"]["figures"]["previous_commit"] == repo["first"]
    assert git(repo["bare"], "rev-parse", "refs/heads/woo") == good
    assert sandbox.control("GET", "/health")["commit"] == good
    assert by_step["release"]["figures"]["backup_file"].endswith(".sql.gz")


def test_a_broken_commit_is_rolled_back_loudly(repo, sandbox, ansible_env):
    broken = commit(repo["app"], "fix: broken session handling")
    proc = play("deploy.yml", ansible_env, "-e", "bemore_deploy_commit=" + broken, "-e", "health_check_retries=0")
    assert proc.returncode != 0  # a rollback is never a green run
    report = latest(ansible_env, "deploy")
    deploy = steps(report)["deploy"]
    assert deploy["figures"]["rolled_back"] is True and deploy["figures"]["rollback_healthy"] is True
    assert deploy["status"] == "critical" and deploy["severity"] == "high"
    assert report["worst_severity"] in ("high", "critical")
    # The deploy branch points at the previous commit again and it serves.
    assert git(repo["bare"], "rev-parse", "refs/heads/woo") == repo["first"]
    assert sandbox.control("GET", "/health")["commit"] == repo["first"]
    assert repo["cicd"].deployed[-2:] == [broken, repo["first"]]
    entries = [json.loads(line) for line in open(os.path.join(ansible_env["BEMORE_STATE_DIR"], "incidents",
                                                               "incidents.jsonl"))]
    assert entries[-1]["classification"] == ["deploy_rollback"] and entries[-1]["resolved"] is True


def test_a_bad_commit_name_is_refused_before_anything(repo, ansible_env):
    proc = play("deploy.yml", ansible_env, "-e", "bemore_deploy_commit=$(reboot)", "--tags", "deploy")
    assert proc.returncode != 0
    assert "deploy_commit must be a commit id or ref" in proc.stdout
    assert git(repo["bare"], "rev-parse", "refs/heads/woo") == repo["first"]


class Provider(threading.Thread):
    """A hosting provider's deploy hook on loopback: POST ?ref=<commit> deploys it to the simulator."""

    def __init__(self, sim, broken=(), head=""):
        super().__init__(daemon=True)
        import http.server
        import urllib.parse

        provider = self
        self.calls = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                # Without a ref the provider deploys its branch head.
                ref = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("ref", [head])[0]
                provider.calls.append(ref)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                sim.control("DELETE", "/__sim/faults")
                if ref in broken:
                    sim.fault(health_down=True)
                sim.control("POST", "/__sim/commit", {"commit": ref})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/deploy/srv-secret-hook-key" % self.server.server_address[1]

    def run(self):
        self.server.serve_forever()

    def stop(self):
        self.server.shutdown()


@pytest.mark.parametrize("supports_ref", [True, False])
def test_deploy_hook_rolls_back_with_the_previous_ref_or_says_how(sandbox, ansible_env, supports_ref):
    previous, broken = "1111111aaaaaaa", "2222222bbbbbbb"
    sandbox.control("POST", "/__sim/commit", {"commit": previous})
    provider = Provider(sandbox, broken=(broken,), head=broken)
    provider.start()
    try:
        proc = play("deploy.yml", ansible_env, "-e", "bemore_deploy_commit=" + broken, "-e", "deploy_strategy=deploy_hook",
                    "-e", "deploy_hook_url=" + provider.url, "-e", "deploy_hook_supports_ref=%s" % supports_ref,
                    "-e", "health_check_retries=0")
    finally:
        provider.stop()
    assert proc.returncode != 0
    assert "srv-secret-hook-key" not in proc.stdout
    if supports_ref:
        assert provider.calls == [broken, previous]
        deploy = steps(latest(ansible_env, "deploy"))["deploy"]
        assert deploy["figures"]["rolled_back"] is True and deploy["figures"]["rollback_healthy"] is True
        assert sandbox.control("GET", "/health")["commit"] == previous
    else:
        # The hook deploys its branch head only: no silent half-rollback, a loud manual step.
        assert provider.calls == [broken]
        assert "ROLLBACK NOT AUTOMATIC" in proc.stdout and "redeploy commit %s" % previous in proc.stdout
