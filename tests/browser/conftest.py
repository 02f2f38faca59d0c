"""Browser tests: the real admind binary on an ephemeral port, Debian's
Chromium driven by Playwright, mail read from the daemon's .eml files.

Environment: DAEMON_BIN (default target/debug/admind; not ADMIND_*, which
the daemon reads as its own settings), CHROMIUM (default
/usr/bin/chromium), AXE_JS (axe-core's axe.min.js; accessibility checks
fail without it), SCREENSHOT_DIR (where every page's screenshot goes,
default target/console-screenshots).
"""
import email
import email.policy
import json
import os
import pathlib
import re
import subprocess
import tempfile
import time
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("DAEMON_BIN", str(ROOT / "target" / "debug" / "admind"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = pathlib.Path(os.environ.get("SCREENSHOT_DIR", str(ROOT / "target" / "console-screenshots")))
PUBLIC_URL = "http://admind.test"
PASSWORD = "correct horse battery"


class Daemon:
    def __init__(self, scripts=(), extra_config=""):
        self.dir = tempfile.TemporaryDirectory()
        d = pathlib.Path(self.dir.name)
        (d / "scripts").mkdir()
        for name in scripts:
            (d / "scripts" / name).write_text((ROOT / "scripts" / name).read_text())
        (d / "admind.toml").write_text(
            f'public_url = "{PUBLIC_URL}"\n[auth]\nattempts_per_minute = 100000\n'
            "attempts_per_minute_per_ip = 100000\nargon2_memory_kib = 1024\nargon2_iterations = 1\n"
            + extra_config
        )
        self.out = open(d / "out", "w+")
        self.err = open(d / "err", "w+")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(d / "admind.toml"), "--listen", "127.0.0.1:0",
             "--data-dir", str(d / "data"), "--mail-dir", str(d / "mail"), "--scripts-dir", str(d / "scripts")],
            stdout=self.out, stderr=self.err,
            # The daemon reads ADMIND_* as settings: pass none of the caller's.
            env={**{k: v for k, v in os.environ.items() if not k.startswith("ADMIND_")}, "ADMIND_LOG": "warn"},
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            self.out.seek(0)
            m = re.search(r"admind listening on (\S+)", self.out.read())
            if m:
                self.base = m.group(1)
                break
            time.sleep(0.05)
        else:
            self.err.seek(0)
            raise RuntimeError(f"admind did not start: {self.err.read()[:3000]}")
        self.operator = (d / "data" / "operator.token").read_text().strip()
        self.mail_dir = d / "mail"

    def api(self, method, path, body=None, token=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(req) as res:
            text = res.read()
            return json.loads(text) if text else None

    def create_account(self, name, owner_email, seats):
        return self.api("POST", "/v1/accounts", {"name": name, "owner": {"name": "Olga Owner", "email": owner_email},
                                                  "support_seats": seats}, self.operator)

    def mails(self):
        out = []
        for f in sorted(self.mail_dir.glob("*.eml")) if self.mail_dir.exists() else []:
            msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
            out.append({"to": msg["To"], "subject": msg["Subject"], "body": msg.get_content()})
        return out

    def link(self, to, subject, n=1):
        """The path of the link in the n-th mail to `to` about `subject`."""
        deadline = time.time() + 30
        while time.time() < deadline:
            found = [m for m in self.mails() if to in m["to"] and subject in m["subject"]]
            if len(found) >= n:
                m = re.search(re.escape(PUBLIC_URL) + r"(\S+)", found[n - 1]["body"])
                return m.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} about {subject}: {self.mails()}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


@pytest.fixture
def daemon():
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture
def guarded_daemon():
    d = Daemon(scripts=["owner_change_guard.rhai"])
    yield d
    d.stop()


@pytest.fixture
def workbench_daemon():
    d = Daemon(scripts=["owner_change_guard.rhai"], extra_config="[console]\npolicy_save = true\n")
    yield d
    d.stop()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make(lang="en-GB", javascript=True):
        ctx = browser.new_context(locale=lang, bypass_csp=False, java_script_enabled=javascript)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for c in contexts:
        c.close()


def axe_check(page, label):
    """No serious or critical axe-core violation on the page."""
    src = os.environ.get("AXE_JS")
    assert src and os.path.exists(src), "AXE_JS must name axe-core's axe.min.js"
    # evaluate() runs through the DevTools protocol, so the page's CSP (no
    # inline script) does not block the checker.
    page.evaluate(pathlib.Path(src).read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{label}: " + "; ".join(f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)" for v in bad)


def shoot(page, name, lang):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.{lang}.png"), full_page=True)
