"""Every console page in English and French: screenshots, axe-core, and the
language switch."""
import re

from playwright.sync_api import expect

from conftest import PASSWORD, axe_check, shoot
from test_stories import set_password_and_sign_in


def test_every_page_in_both_languages_is_accessible(daemon, new_page):
    d = daemon
    a = d.create_account("Acme", "olga@acme.test", 3)["id"]
    first = new_page()
    set_password_and_sign_in(first, d, d.link("olga@acme.test", "Set your password"), "olga@acme.test")
    user = first.url  # signed in: the session lives in this context only
    pages = {
        "members": f"/a/{a}/members",
        "owner": f"/a/{a}/owner",
        "billing": f"/a/{a}/billing",
        "integrations": f"/a/{a}/integrations",
        "directory": f"/a/{a}/directory",
        "profile": f"/a/{a}/profile",
        "sell": f"/a/{a}/sell",
        "licences": f"/a/{a}/licences",
        "audit": f"/a/{a}/audit",
    }
    for lang, locale in (("en", "en-GB"), ("fr", "fr-FR")):
        page = first
        if lang == "fr":
            page.get_by_role("link", name="Français").click()
            page.wait_for_load_state("networkidle")
            assert page.locator("html").get_attribute("lang") == "fr"
        for name, path in pages.items():
            page.goto(d.base + path)
            page.wait_for_load_state("networkidle")
            assert page.locator("html").get_attribute("lang") == lang
            axe_check(page, f"{name} ({lang})")
            shoot(page, name, lang)
    # Pages seen signed out, in both languages.
    for lang, locale in (("en", "en-GB"), ("fr", "fr-FR")):
        anon = new_page(locale)
        for name, path in {"home": "/", "sign-in": f"/a/{a}/sign-in", "support-sign-in": "/support/sign-in",
                           "set-password": f"/a/{a}/password/set?token=x"}.items():
            anon.goto(d.base + path)
            assert anon.locator("html").get_attribute("lang") == lang
            axe_check(anon, f"{name} ({lang})")
            shoot(anon, name, lang)


def test_platform_support_signs_in_with_the_operator_token(daemon, new_page):
    d = daemon
    d.create_account("Acme <script>", "olga@acme.test", 3)
    page = new_page()
    page.goto(d.base + "/support/sign-in")
    page.get_by_label("Operator token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    page.get_by_label("Operator token").fill(d.operator)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Accounts").wait_for()
    expect(page.get_by_role("cell", name="Acme <script>")).to_be_visible()
    axe_check(page, "accounts")
    shoot(page, "support-accounts", "en")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile("/support/sign-in"))
    page.goto(d.base + "/support/accounts")
    page.wait_for_url(re.compile("/support/sign-in"))
