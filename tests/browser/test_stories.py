"""The help articles' stories, end to end in Chromium, through the links
admind mails. Every page visited is checked with axe-core."""
import re
import time
import urllib.error

import pytest

from playwright.sync_api import expect

from conftest import PASSWORD, axe_check, shoot


def set_password_and_sign_in(page, d, link, email_addr):
    page.goto(d.base + link)
    expect(page.get_by_role("heading", name="Set password")).to_be_visible()
    axe_check(page, "set password")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/sign-in"))
    expect(page.get_by_text("Your password is set")).to_be_visible()
    sign_in(page, email_addr)


def sign_in(page, email_addr):
    page.get_by_label("Email address").first.fill(email_addr)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Signed in once the answer is on the page (htmx posts the form: the
    # load state alone can be reached before the post has even left).
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.wait_for_load_state("networkidle")


def submit_and_wait(page, button):
    """Clicks a submit button and waits for the answer's page: its
    message (flash) or its refusal (alert). Old ones are removed first, so
    what is seen is the new page's."""
    page.evaluate("() => document.querySelectorAll('.flash, [role=alert]').forEach(e => e.remove())")
    button.click()
    page.locator(".flash, [role=alert]").first.wait_for()


def add_member(page, name, email_addr, role_label):
    page.get_by_label("Name", exact=True).fill(name)
    page.locator("#add-email").fill(email_addr)
    page.locator("#add-role").select_option(label=role_label)
    submit_and_wait(page, page.get_by_role("button", name="Add member"))


def test_r02_r03_story1_owner_invites_an_admin_and_hands_the_account_over(daemon, new_page):
    d = daemon
    acc = d.create_account("Acme", "olga@acme.test", 3)
    a = acc["id"]
    owner = new_page()
    set_password_and_sign_in(owner, d, d.link("olga@acme.test", "Set your password"), "olga@acme.test")
    owner.get_by_role("heading", name="Team members").wait_for()
    expect(owner.get_by_text("Administrator (owner)")).to_be_visible()
    axe_check(owner, "team members")
    add_member(owner, "Ada Admin", "ada@acme.test", "Administrator")
    expect(owner.get_by_text("The member was added")).to_be_visible()

    ada = new_page()
    set_password_and_sign_in(ada, d, d.link("ada@acme.test", "Set your password"), "ada@acme.test")
    ada.get_by_role("heading", name="Team members").wait_for()

    owner.get_by_role("link", name="Account owner").click()
    owner.get_by_role("heading", name="Account owner").wait_for()
    axe_check(owner, "account owner")
    owner.get_by_role("radio", name=re.compile("Ada Admin")).check()
    owner.get_by_role("button", name="Change owner").click()
    owner.get_by_role("button", name="Confirm change").wait_for()
    expect(owner.get_by_text("moves to Ada Admin")).to_be_visible()
    axe_check(owner, "confirm change")
    owner.get_by_role("button", name="Confirm change").click()
    owner.get_by_text("The account has a new owner").wait_for()
    expect(owner.get_by_text("The owner of this account is Ada Admin")).to_be_visible()

    # R02: the previous owner no longer sees billing (not even its link:
    # navigation offers nothing that only refuses); the new one does.
    expect(owner.get_by_role("link", name="Billing")).to_have_count(0)
    expect(owner.get_by_role("link", name="Team members")).to_be_visible()
    owner.goto(d.base + f"/a/{a}/billing")
    owner.get_by_role("heading", name="Billing").wait_for()
    expect(owner.get_by_text("Only the account owner sees billing")).to_be_visible()
    expect(owner.get_by_role("button", name="Set seats")).to_have_count(0)
    ada.reload()  # her navigation now has the owner's pages
    ada.get_by_role("link", name="Billing").click()
    ada.get_by_role("button", name="Set seats").wait_for()
    axe_check(ada, "billing")


def test_r03_story2_the_shipped_guard_denies_an_admin_who_never_signed_in(guarded_daemon, new_page):
    d = guarded_daemon
    a = d.create_account("Acme", "olga@acme.test", 3)["id"]
    owner = new_page()
    set_password_and_sign_in(owner, d, d.link("olga@acme.test", "Set your password"), "olga@acme.test")
    add_member(owner, "Ben Admin", "ben@acme.test", "Administrator")
    # Ben sets his password (his address is verified) but never signs in.
    ben = new_page()
    ben.goto(d.base + d.link("ben@acme.test", "Set your password"))
    ben.get_by_label("New password").fill(PASSWORD)
    ben.get_by_role("button", name="Set password").click()
    ben.wait_for_url(re.compile(r"/sign-in"))

    owner.get_by_role("link", name="Account owner").click()
    owner.get_by_role("heading", name="Account owner").wait_for()
    owner.get_by_role("radio", name=re.compile("Ben Admin")).check()
    owner.get_by_role("button", name="Change owner").click()
    owner.get_by_role("button", name="Confirm change").click()
    alert = owner.get_by_role("alert")
    expect(alert).to_contain_text("A policy of this platform refused it")
    expect(alert).to_contain_text("the new owner must have signed in at least once")
    # The reason, not the policy's internals (version, timing).
    expect(alert).not_to_contain_text("version")
    expect(alert).not_to_contain_text(" us)")
    expect(owner.get_by_text("The owner of this account is Olga Owner")).to_be_visible()
    axe_check(owner, "owner change refused")


def test_r12_r15_story3_profile_hand_over_when_no_seat_is_free(daemon, new_page):
    d = daemon
    a = d.create_account("Acme", "olga@acme.test", 2)["id"]
    owner = new_page()
    set_password_and_sign_in(owner, d, d.link("olga@acme.test", "Set your password"), "olga@acme.test")
    add_member(owner, "Carl Leaving", "carl@acme.test", "Agent")
    # No seat is left for Dana: the page says so and explains the hand-over.
    add_member(owner, "Dana Joining", "dana@acme.test", "Agent")
    # The refusal beside the form, what was typed kept.
    expect(owner.get_by_role("alert")).to_contain_text("No agent seat is free")
    expect(owner.locator("#add-email")).to_have_value("dana@acme.test")
    expect(owner.get_by_role("heading", name="No agent seat is free")).to_be_visible()
    expect(owner.get_by_role("button", name="Request temporary seats")).to_be_visible()
    expect(owner.get_by_text("hand an existing profile")).to_be_visible()
    axe_check(owner, "no seat")
    shoot(owner, "members-no-seat", "en")

    # Carl's profile gets Dana's address; Dana verifies it from her mail.
    owner.get_by_role("link", name="Carl Leaving").click()
    owner.get_by_role("heading", name="Profile").wait_for()
    owner.get_by_label("New address").fill("dana@acme.test")
    owner.get_by_role("button", name="Add address").click()
    owner.get_by_text("a verification link was mailed").wait_for()
    dana = new_page()
    dana.goto(d.base + d.link("dana@acme.test", "Verify your address"))
    dana.get_by_role("heading", name="Verify address").wait_for()
    axe_check(dana, "verify address")
    dana.get_by_role("button", name="Verify address").click()
    dana.wait_for_load_state("networkidle")
    expect(dana.get_by_text("The address is verified")).to_be_visible()

    # The owner makes it primary and removes Carl's address.
    owner.reload()
    row = owner.locator("li", has_text="dana@acme.test")
    row.get_by_role("button", name="Make primary").click()
    # Irreversible: asked first, on a page of its own.
    expect(owner.get_by_text("Make dana@acme.test the primary address of Carl Leaving?")).to_be_visible()
    axe_check(owner, "confirm")
    shoot(owner, "confirm", "en")
    owner.get_by_role("button", name="Confirm").click()
    owner.get_by_text("It is now the primary address").wait_for()
    owner.locator("li", has_text="carl@acme.test").get_by_role("button", name="Remove").click()
    owner.get_by_role("button", name="Confirm").click()
    owner.get_by_text("The address was removed").wait_for()
    expect(owner.locator("li", has_text="carl@acme.test")).to_have_count(0)
    expect(owner.locator("li", has_text="dana@acme.test").get_by_text("primary")).to_be_visible()
    axe_check(owner, "profile")


def tab_to(page, target, limit=80):
    """Presses Tab until `target` (a CSS selector or a locator) has the
    focus: proves it is reachable by keyboard."""
    locator = page.locator(target) if isinstance(target, str) else target
    locator.first.wait_for()
    for _ in range(limit):
        if locator.first.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} is not reachable with Tab")


def type_into(page, selector, text):
    tab_to(page, selector)
    page.keyboard.type(text)


def test_r03_story6_the_hand_over_keyboard_only(daemon, new_page):
    d = daemon
    a = d.create_account("Acme", "olga@acme.test", 3)["id"]

    def keyboard_set_password_and_sign_in(page, link, addr):
        page.goto(d.base + link)
        type_into(page, "#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/sign-in"))
        type_into(page, "#email", addr)
        type_into(page, "#password", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_load_state("networkidle")

    owner = new_page()
    keyboard_set_password_and_sign_in(owner, d.link("olga@acme.test", "Set your password"), "olga@acme.test")
    owner.get_by_role("heading", name="Team members").wait_for()
    type_into(owner, "#add-name", "Ada Admin")
    type_into(owner, "#add-email", "ada@acme.test")
    tab_to(owner, "#add-role")
    owner.keyboard.press("ArrowDown")  # Agent → Administrator
    tab_to(owner, owner.get_by_role("button", name="Add member"))
    owner.keyboard.press("Enter")
    owner.get_by_text("The member was added").wait_for()

    ada = new_page()
    keyboard_set_password_and_sign_in(ada, d.link("ada@acme.test", "Set your password"), "ada@acme.test")

    tab_to(owner, "a[href$='/owner']")
    owner.keyboard.press("Enter")
    owner.get_by_role("heading", name="Account owner").wait_for()
    tab_to(owner, "input[name='to']")
    owner.keyboard.press("Space")
    tab_to(owner, owner.get_by_role("button", name="Change owner"))
    owner.keyboard.press("Enter")
    owner.get_by_role("button", name="Confirm change").wait_for()
    tab_to(owner, owner.get_by_role("button", name="Confirm change"))
    owner.keyboard.press("Enter")
    owner.get_by_text("The owner of this account is Ada Admin").wait_for()


def test_r20_r21_r22_r24_story4_sell_trial_second_user_made_admin_activator_removed(daemon, new_page):
    d = daemon
    a = d.create_account("Acme", "olga@acme.test", 3)["id"]
    owner = new_page()
    set_password_and_sign_in(owner, d, d.link("olga@acme.test", "Set your password"), "olga@acme.test")
    add_member(owner, "Ada Admin", "ada@acme.test", "Administrator")

    owner.get_by_role("link", name="Sell").click()
    owner.get_by_role("heading", name="Sell").wait_for()
    axe_check(owner, "sell (not started)")
    submit_and_wait(owner, owner.get_by_role("button", name="Start Sell trial"))
    expect(owner.get_by_text("The Sell trial started")).to_be_visible()

    # R21: the owner buys Sell seats; the trial becomes active.
    owner.get_by_role("link", name="Billing").click()
    owner.get_by_label("Sell seats").fill("2")
    submit_and_wait(owner, owner.get_by_role("button", name="Set seats"))

    owner.get_by_role("link", name="Sell").click()
    expect(owner.get_by_text("Sell: active")).to_be_visible()
    owner.get_by_label("Member").select_option(label="Ada Admin")
    submit_and_wait(owner, owner.get_by_role("button", name="Grant Sell access"))
    expect(owner.get_by_text("Sell access was granted")).to_be_visible()
    ada_row = owner.get_by_role("row", name=re.compile("Ada Admin"))
    ada_row.get_by_role("combobox").select_option(label="Sell admin")
    ada_row.get_by_role("button", name="Change Sell role").click()
    submit_and_wait(owner, owner.get_by_role("button", name="Confirm"))
    expect(owner.get_by_text("The Sell role was changed")).to_be_visible()
    # R24: the activator may leave now that Ada is a Sell admin.
    olga_row = owner.get_by_role("row", name=re.compile("Olga Owner"))
    olga_row.get_by_role("button", name="Remove").click()
    expect(owner.get_by_text("Take Sell access from Olga Owner?")).to_be_visible()
    submit_and_wait(owner, owner.get_by_role("button", name="Confirm"))
    expect(owner.get_by_text("Sell access was removed")).to_be_visible()
    expect(owner.get_by_role("row", name=re.compile("Olga Owner"))).to_have_count(0)
    expect(owner.get_by_role("row", name=re.compile("Ada Admin"))).to_contain_text("Sell admin")
    axe_check(owner, "sell")
    shoot(owner, "sell", "en")


def test_r18_story5_support_grants_temporary_seats_then_the_owner_adds_a_member(daemon, new_page):
    d = daemon
    a = d.create_account("Acme", "olga@acme.test", 1)["id"]
    owner = new_page()
    set_password_and_sign_in(owner, d, d.link("olga@acme.test", "Set your password"), "olga@acme.test")
    add_member(owner, "Bea Agent", "bea@acme.test", "Agent")
    expect(owner.get_by_role("alert")).to_contain_text("No agent seat is free")
    owner.get_by_label("Seats", exact=True).fill("1")
    owner.get_by_label("Reason").fill("a temp for the holidays")
    submit_and_wait(owner, owner.get_by_role("button", name="Request temporary seats"))
    expect(owner.get_by_text("Your request was sent to platform support")).to_be_visible()
    owner.get_by_role("link", name="Licence requests").click()
    expect(owner.get_by_role("cell", name="pending")).to_be_visible()
    axe_check(owner, "licence requests")
    shoot(owner, "licences", "en")

    support = new_page()
    support.goto(d.base + "/support/sign-in")
    support.get_by_label("Operator token").fill(d.operator)
    support.get_by_role("button", name="Sign in").click()
    support.get_by_role("link", name="Licence requests").click()
    support.get_by_role("heading", name="Licence requests").wait_for()
    axe_check(support, "support licence queue")
    shoot(support, "support-licences", "en")
    row = support.get_by_role("row", name=re.compile("a temp for the holidays"))
    submit_and_wait(support, row.get_by_role("button", name="Grant"))
    expect(support.get_by_text("The seats were granted")).to_be_visible()

    owner.get_by_role("link", name="Team members").click()
    expect(owner.get_by_text("Agent seats used: 1 of 2")).to_be_visible()
    add_member(owner, "Bea Agent", "bea@acme.test", "Agent")
    expect(owner.get_by_text("The member was added")).to_be_visible()


def test_platform_support_pages(daemon, new_page):
    d = daemon
    a = d.create_account("Acme", "olga@acme.test", 1)["id"]
    support = new_page()
    support.goto(d.base + "/support/sign-in")
    support.get_by_label("Operator token").fill(d.operator)
    support.get_by_role("button", name="Sign in").click()
    support.get_by_role("link", name="Acme").click()
    support.get_by_role("heading", name="Acme").wait_for()
    axe_check(support, "support account")
    shoot(support, "support-account", "en")
    support.get_by_label("Note").fill("phishing report")
    submit_and_wait(support, support.get_by_role("button", name="Open investigation"))
    expect(support.get_by_text("the owner did not change")).to_be_visible()
    for name, link in (("deliveries", "Outbound deliveries"), ("policies", "Policies")):
        support.get_by_role("link", name=link).click()
        support.get_by_role("heading", name=link).wait_for()
        axe_check(support, name)
        shoot(support, f"support-{name}", "en")
    # The same pages in French.
    support.get_by_role("link", name="Français").click()
    support.wait_for_load_state("networkidle")
    for name, path in (("accounts", "/support/accounts"), ("account", f"/support/accounts/{a}"),
                       ("licences", "/support/licences"), ("deliveries", "/support/deliveries"),
                       ("policies", "/support/policies")):
        support.goto(d.base + path)
        expect(support.locator("html")).to_have_attribute("lang", "fr")
        axe_check(support, f"support {name} (fr)")
        shoot(support, f"support-{name}", "fr")


def test_story7_support_edits_checks_replays_and_saves_a_policy_that_is_then_enforced(workbench_daemon, new_page):
    """The policy workbench: a refused hand-over is recorded; support opens
    the guard's versions, edits it as a draft, checks it, replays it over
    the record (one decision would change), saves it; it is enforced."""
    d = workbench_daemon
    a = d.create_account("Acme", "olga@acme.test", 3)["id"]
    token = lambda link: link.split("token=")[1]
    d.api("POST", "/v1/password-resets/confirm", {"token": token(d.link("olga@acme.test", "Set your password")), "password": PASSWORD})
    ot = d.api("POST", f"/v1/accounts/{a}/sessions", {"email": "olga@acme.test", "password": PASSWORD})["token"]
    ben = d.api("POST", f"/v1/accounts/{a}/members", {"name": "Ben Admin", "email": "ben@acme.test", "role": "admin"}, ot)["id"]
    d.api("POST", "/v1/password-resets/confirm", {"token": token(d.link("ben@acme.test", "Set your password")), "password": PASSWORD})
    # Ben never signed in: the shipped guard refuses him (and the call is recorded).
    try:
        d.api("PUT", f"/v1/accounts/{a}/owner", {"user_id": ben}, ot)
        raise AssertionError("the guard should refuse")
    except urllib.error.HTTPError as e:
        assert e.code == 409

    support = new_page()
    support.goto(d.base + "/support/sign-in")
    support.get_by_label("Operator token").fill(d.operator)
    support.get_by_role("button", name="Sign in").click()
    support.get_by_role("link", name="Policies").click()
    support.get_by_role("heading", name="Policies").wait_for()
    support.get_by_role("link", name="Versions owner_change_guard.rhai").click()
    support.get_by_role("heading", name=re.compile("Versions")).wait_for()
    axe_check(support, "policy versions")
    support.get_by_role("link", name="Edit as a draft").click()
    support.get_by_role("heading", name="Policy editor").wait_for()
    draft = ("// hooks: before_owner_change\n// calls: none\n"
             "fn before_owner_change(event) {\n    log_info(\"anyone may become owner\");\n}\n")
    support.get_by_label("Draft").fill(draft)
    support.get_by_role("button", name="Check").click()
    expect(support.get_by_role("status").first).to_contain_text("Loads: before_owner_change")
    axe_check(support, "policy editor")
    shoot(support, "support-policy-editor", "en")
    support.get_by_role("button", name="Replay").click()
    expect(support.get_by_role("status").last).to_contain_text("1 would differ")
    support.get_by_role("button", name="Save into the scripts folder").click()
    # The diff against the enforced file first, then the save.
    expect(support.get_by_role("heading", name="Save this draft?")).to_be_visible()
    axe_check(support, "policy save diff")
    support.get_by_role("button", name="Confirm save").click()
    expect(support.get_by_text("The script was saved")).to_be_visible()

    # The watcher loads the saved version: Ben may now become owner.
    deadline = time.time() + 10
    while True:
        try:
            d.api("PUT", f"/v1/accounts/{a}/owner", {"user_id": ben}, ot)
            break
        except urllib.error.HTTPError as e:
            assert e.code == 409 and time.time() < deadline
            time.sleep(0.1)


def test_r02_r03_story1_without_javascript_every_form_submits(daemon, new_page):
    """Sign-in, adding a member and the hand-over with its confirmation, in
    a browser with JavaScript off (or before htmx has loaded): plain form
    posts, which the CSRF origin check must accept."""
    d = daemon
    acc = d.create_account("Acme", "olga@acme.test", 3)
    owner = new_page(javascript=False)
    owner.goto(d.base + d.link("olga@acme.test", "Set your password"))
    owner.get_by_label("New password").fill(PASSWORD)
    owner.get_by_role("button", name="Set password").click()
    expect(owner.get_by_text("Your password is set")).to_be_visible()
    owner.get_by_label("Email address").first.fill("olga@acme.test")
    owner.get_by_label("Password").fill(PASSWORD)
    owner.get_by_role("button", name="Sign in").click()
    owner.get_by_role("heading", name="Team members").wait_for()
    owner.get_by_label("Name", exact=True).fill("Ada Admin")
    owner.locator("#add-email").fill("ada@acme.test")
    owner.locator("#add-role").select_option(label="Administrator")
    owner.get_by_role("button", name="Add member").click()
    expect(owner.get_by_text("The member was added")).to_be_visible()

    ada = new_page(javascript=False)
    ada.goto(d.base + d.link("ada@acme.test", "Set your password"))
    ada.get_by_label("New password").fill(PASSWORD)
    ada.get_by_role("button", name="Set password").click()
    ada.get_by_label("Email address").first.fill("ada@acme.test")
    ada.get_by_label("Password").fill(PASSWORD)
    ada.get_by_role("button", name="Sign in").click()
    ada.get_by_role("heading", name="Team members").wait_for()

    owner.get_by_role("link", name="Account owner").click()
    owner.get_by_role("radio", name=re.compile("Ada Admin")).check()
    owner.get_by_role("button", name="Change owner").click()
    owner.get_by_role("button", name="Confirm change").click()
    expect(owner.get_by_text("The owner of this account is Ada Admin")).to_be_visible()
    shoot(owner, "no-javascript-owner-changed", "en")

    support = new_page(javascript=False)
    support.goto(d.base + "/support/sign-in")
    support.get_by_label("Operator token").fill(d.operator)
    support.get_by_role("button", name="Sign in").click()
    support.get_by_role("heading", name="Accounts").wait_for()
    expect(support.get_by_role("cell", name="Acme")).to_be_visible()


ISSUE24_WORDS = {
    "en": {
        "locale": "en-GB", "new_password": "New password", "set_password": "Set password",
        "email": "Email address", "password": "Password", "sign_in": "Sign in", "team": "Team members",
        "settings": "Account settings", "mails_in": "Mails in", "save": "Save",
        "saved": "The language of the account's mails was saved", "range1": "Members 1–51 of 56",
        "range2": "Members 52–56 of 56", "sorted": "Members 1–50 of 56", "next": "Next page",
        "prev": "Previous page", "sort": "Sort", "search": "Search", "audit": "Audit log", "what": "What",
        "filter": "Filter", "added": "Added a member", "csv": "Export as CSV", "contact": "Contact support",
        "message": "Message", "send": "Send to platform support", "sent": "Your request was sent",
        "open": "open", "billing": "Billing", "contacts": "Who receives the invoices",
        "save_contacts": "Save contacts", "contacts_saved": "The billing contacts were saved",
        "owner": "Account owner", "refused": "Cannot take over now:",
    },
    "fr": {
        "locale": "fr-FR", "new_password": "Nouveau mot de passe", "set_password": "Définir le mot de passe",
        "email": "Adresse e-mail", "password": "Mot de passe", "sign_in": "Se connecter",
        "team": "Membres de l'équipe", "settings": "Paramètres du compte", "mails_in": "E-mails en",
        "save": "Enregistrer", "saved": "La langue des e-mails du compte est enregistrée",
        "range1": "Membres 1 à 51 sur 56", "range2": "Membres 52 à 56 sur 56",
        "sorted": "Membres 1 à 50 sur 56", "next": "Page suivante", "prev": "Page précédente",
        "sort": "Trier", "search": "Rechercher", "audit": "Journal d'audit", "what": "Quoi",
        "filter": "Filtrer", "added": "A ajouté un membre", "csv": "Exporter en CSV",
        "contact": "Contacter le support", "message": "Message", "send": "Envoyer au support de la plateforme",
        "sent": "Votre demande a été envoyée", "open": "en cours", "billing": "Facturation",
        "contacts": "Qui reçoit les factures", "save_contacts": "Enregistrer les contacts",
        "contacts_saved": "Les contacts de facturation sont enregistrés", "owner": "Propriétaire du compte",
        "refused": "Ne peut pas reprendre le compte pour l'instant :",
    },
}


@pytest.mark.parametrize("lang,javascript", [("en", True), ("en", False), ("fr", True), ("fr", False)])
def test_issue24_pages_in_both_languages_with_and_without_javascript(guarded_daemon, new_page, lang, javascript):
    """Issue 24's pages in English and French, with JavaScript on and off:
    the owner page's rehearsed hand-over, the account's mail language,
    the team's pages, the audit log's filters and CSV link, Contact
    support, the billing contacts; times in the reader's zone with script,
    in UTC without."""
    w = ISSUE24_WORDS[lang]
    d = guarded_daemon
    a = d.create_account("Acme", "olga@acme.test", 60)["id"]
    page = new_page(lang=w["locale"], javascript=javascript)
    page.goto(d.base + d.link("olga@acme.test", "Set your password"))
    page.get_by_label(w["new_password"]).fill(PASSWORD)
    page.get_by_role("button", name=w["set_password"]).click()
    page.get_by_label(w["email"]).first.fill("olga@acme.test")
    page.get_by_label(w["password"]).fill(PASSWORD)
    page.get_by_role("button", name=w["sign_in"]).click()
    page.get_by_role("heading", name=w["team"]).wait_for()
    token = d.api("POST", f"/v1/accounts/{a}/sessions", {"email": "olga@acme.test", "password": PASSWORD})["token"]
    # An admin who never signed in: the guard policy would refuse them.
    d.api("POST", f"/v1/accounts/{a}/members", {"name": "Ben Admin", "email": "ben@acme.test", "role": "admin"}, token)
    link = d.link("ben@acme.test", "Set your password")
    d.api("POST", "/v1/password-resets/confirm", {"token": link.split("token=")[1], "password": PASSWORD})
    page.get_by_role("link", name=w["owner"]).click()
    expect(page.get_by_text(w["refused"])).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile("Ben Admin"))).not_to_be_checked()
    # Account settings: the mails in French.
    page.get_by_role("link", name=w["settings"]).click()
    page.get_by_label(w["mails_in"]).select_option("fr")
    page.get_by_role("button", name=w["save"], exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(w["saved"])
    # The team, 56 members: two pages with counts, both ways, and sorted.
    for i in range(54):
        d.api("POST", f"/v1/accounts/{a}/members", {"name": f"Membre {i:02}", "email": f"m{i:02}@acme.test", "role": "agent"}, token)
    invitation = d.link("m00@acme.test", "Définissez votre mot de passe pour Acme")
    assert "/password/set?token=" in invitation
    page.get_by_role("link", name=w["team"]).click()
    expect(page.locator("#range")).to_have_text(w["range1"])
    page.get_by_role("link", name=w["next"]).click()
    expect(page.locator("#range")).to_have_text(w["range2"])
    page.get_by_role("link", name=w["prev"]).click()
    expect(page.locator("#range")).to_have_text(w["range1"])
    page.get_by_label(w["sort"]).select_option("name")
    page.get_by_role("button", name=w["search"]).click()
    expect(page.locator("#range")).to_have_text(w["sorted"])
    # The audit log: filtered by action, in words; times in the reader's
    # zone with script, in UTC without.
    page.get_by_role("link", name=w["audit"]).click()
    page.get_by_label(w["what"]).select_option("member.add")
    page.get_by_role("button", name=w["filter"]).click()
    expect(page.get_by_role("cell", name=w["added"]).first).to_be_visible()
    when = expect(page.locator("time[datetime]").first)
    if javascript:
        when.not_to_contain_text("UTC")
    else:
        when.to_contain_text("UTC")
    expect(page.get_by_role("link", name=w["csv"])).to_be_visible()
    # Contact support: an ownership investigation, then its status.
    page.get_by_role("link", name=w["contact"]).click()
    page.get_by_label(w["message"]).fill("Our owner left / Notre propriétaire est parti")
    page.get_by_role("button", name=w["send"]).click()
    expect(page.get_by_role("status")).to_contain_text(w["sent"])
    expect(page.get_by_role("cell", name=w["open"], exact=True)).to_be_visible()
    if javascript:
        axe_check(page, f"contact support ({lang})")
    # Billing contacts.
    page.get_by_role("link", name=w["billing"]).click()
    page.get_by_label(w["contacts"]).fill("compta@acme.test")
    page.get_by_role("button", name=w["save_contacts"]).click()
    expect(page.get_by_role("status")).to_contain_text(w["contacts_saved"])
    if javascript:
        axe_check(page, f"billing ({lang})")
