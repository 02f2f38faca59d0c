//! The console's words: one catalogue per language, every string a person
//! reads in it. A key missing from a catalogue is a test failure
//! (`every_key_used_by_a_template_is_in_both_catalogues`), never a blank.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use askama::filters::Escaper;

/// A page looks up a few hundred keys (every label of every row): a hash
/// made for short keys, not the default one made to resist flooding (the
/// keys are the catalogue's own, never a client's).
type Keys<V> = HashMap<&'static str, V, BuildHasherDefault<rustc_hash::FxHasher>>;

pub struct Catalogue {
    /// BCP 47 code (`<html lang>`).
    pub lang: &'static str,
    /// The other language offered by the switch: its code and its name in
    /// itself.
    pub other_lang: &'static str,
    pub other_name: &'static str,
    map: Keys<&'static str>,
    /// Each text escaped for HTML once, when the catalogue is built: what
    /// templates write (`c.t.h("key")`), so that a page does not escape
    /// the same sentence again in every row.
    html: Keys<Box<str>>,
}

/// `text` escaped for HTML as askama escapes it (once, for a value written
/// many times: the catalogue's texts, `page::Escaped`).
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    // Writing into a String cannot fail.
    let _ = write_html(&mut escaped, text);
    escaped
}

/// Writes `text` escaped for HTML: whole when it holds none of the five
/// characters askama escapes (ids, most names, addresses and labels),
/// else through askama's escaper, which looks at one byte after another
/// (about 180 instructions for a name, most of a team row's rendering).
pub fn write_html(dest: &mut (impl fmt::Write + ?Sized), text: &str) -> fmt::Result {
    // Every byte looked at, no early exit: the compiler checks 16 at once.
    let special = text.bytes().fold(false, |any, b| {
        any | matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'')
    });
    if special {
        askama::filters::Html.write_escaped_str(dest, text)
    } else {
        dest.write_str(text)
    }
}

/// A catalogue's text already escaped for HTML: askama writes it as it is
/// (`HtmlSafe`) instead of escaping it again.
#[derive(Clone, Copy)]
pub struct Markup<'a>(&'a str);

impl fmt::Display for Markup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl askama::filters::HtmlSafe for Markup<'_> {}

/// Written straight into the page, not through `core::fmt` (which a
/// `Display` value goes through: a fifth of a team page's rendering).
impl askama::FastWritable for Markup<'_> {
    fn write_into(&self, dest: &mut dyn fmt::Write, _: &dyn askama::Values) -> askama::Result<()> {
        Ok(dest.write_str(self.0)?)
    }
}

impl Catalogue {
    fn new(
        lang: &'static str,
        other_lang: &'static str,
        other_name: &'static str,
        entries: &[(&'static str, &'static str)],
    ) -> Catalogue {
        let html = entries
            .iter()
            .map(|&(key, text)| (key, escape_html(text).into_boxed_str()))
            .collect();
        Catalogue {
            lang,
            other_lang,
            other_name,
            map: entries.iter().copied().collect(),
            html,
        }
    }

    /// The text of `key` escaped for HTML, for a template to write (the
    /// key itself, escaped, if missing: which a test forbids).
    pub fn h<'a>(&'a self, key: &'static str) -> Markup<'a> {
        match self.html.get(key) {
            Some(text) => Markup(text),
            // Keys are identifiers (letters, digits, dots, underscores):
            // nothing in one needs escaping.
            None => Markup(key),
        }
    }

    /// The text of `key` (the key itself if missing, which a test forbids).
    pub fn s<'a>(&self, key: &'a str) -> &'a str
    where
        'static: 'a,
    {
        self.map.get(key).copied().unwrap_or(key)
    }

    /// Whether the catalogue has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A role label as the API gives it, in this language.
    pub fn role<'a>(&self, label: &'a str) -> &'a str
    where
        'static: 'a,
    {
        match label {
            "Administrator (owner)" => self.s("role.owner"),
            "Administrator" => self.s("role.admin"),
            "Agent" => self.s("role.agent"),
            "End user" => self.s("role.end_user"),
            other => other,
        }
    }

    /// What a refusal means, in words (by its code; `None` when the
    /// catalogue has no sentence for it and the detail must speak).
    pub fn refusal(&self, code: &str) -> Option<&'static str> {
        self.map.get(format!("error.{code}").as_str()).copied()
    }

    /// The text of `key` with each `{name}` replaced by its value.
    pub fn fill(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.s(key).to_string();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// `key.one` when `n` is 1 and the catalogue has it ("1 seat", not "1
    /// seats"), else `key`.
    pub fn count_key(&self, key: &'static str, n: u64) -> &'static str {
        if n == 1 {
            if let Some((k, _)) = self.map.get_key_value(format!("{key}.one").as_str()) {
                return k;
            }
        }
        key
    }

    /// A moment as this language writes it, in UTC ("5 Dec 2026, 15:20
    /// UTC", "5 déc. 2026, 15:20 UTC"): what a page shows before its
    /// script puts it in the reader's own time zone (`<time datetime>`),
    /// and all it shows without script.
    pub fn when(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        use chrono::Datelike;
        format!(
            "{} {} {}, {} UTC",
            at.day(),
            self.month(at.month0()),
            at.year(),
            at.format("%H:%M")
        )
    }

    /// A day as this language writes it ("5 Dec 2026").
    pub fn day(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        use chrono::Datelike;
        format!("{} {} {}", at.day(), self.month(at.month0()), at.year())
    }

    fn month(&self, month0: u32) -> &'static str {
        const ENGLISH: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        const FRENCH: [&str; 12] = [
            "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
            "nov.", "déc.",
        ];
        let names = if self.lang == "fr" { FRENCH } else { ENGLISH };
        names[(month0 as usize).min(11)]
    }

    pub fn keys(&self) -> impl Iterator<Item = &&'static str> {
        self.map.keys()
    }
}

pub fn english() -> &'static Catalogue {
    static C: OnceLock<Catalogue> = OnceLock::new();
    C.get_or_init(|| Catalogue::new("en", "fr", "Français", EN))
}

pub fn french() -> &'static Catalogue {
    static C: OnceLock<Catalogue> = OnceLock::new();
    C.get_or_init(|| Catalogue::new("fr", "en", "English", FR))
}

/// The language to answer in: the `lang` cookie (the switch), else the
/// first of English or French in `Accept-Language`, else English.
pub fn pick(cookie: Option<&str>, accept_language: Option<&str>) -> &'static Catalogue {
    match cookie {
        Some("fr") => return french(),
        Some("en") => return english(),
        _ => {}
    }
    let Some(header) = accept_language else {
        return english();
    };
    let mut best: Option<(&'static Catalogue, f32)> = None;
    for part in header.split(',').take(16) {
        let mut pieces = part.trim().split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let catalogue = if tag == "fr" || tag.starts_with("fr-") {
            french()
        } else if tag == "en" || tag.starts_with("en-") {
            english()
        } else {
            continue;
        };
        if best.is_none_or(|(_, bq)| q > bq) {
            best = Some((catalogue, q));
        }
    }
    best.map_or(english(), |(c, _)| c)
}

const EN: &[(&str, &str)] = &[
    ("app.name", "admind Admin Center"),
    ("home.members", "Members sign in at their account's own address, /a/<account id>/sign-in: every mail admind sends links to it."),
    ("home.support", "Platform support: sign in with the operator token"),
    ("nav.settings", "Account settings"),
    ("settings.heading", "Account settings"),
    ("settings.account_id", "Account id"),
    ("settings.language", "Language of the account's mails"),
    ("settings.language_intro", "Invitations, password resets, address notices and the owner's mails go out in this language. Each person's console pages follow their own browser or the language switch."),
    ("settings.language_label", "Mails in"),
    ("settings.language_default", "The platform's default"),
    ("settings.save", "Save"),
    ("settings.saved", "The language of the account's mails was saved."),
    ("nav.support", "Contact support"),
    ("support_requests.heading", "Contact support"),
    ("support_requests.intro", "Platform support does what the account cannot do itself. It never changes the owner: when the owner is lost, the way back is a password reset through the owner's mailbox, which your company's IT controls; support records an investigation."),
    ("support_requests.contact", "New request"),
    ("support_requests.topic", "About"),
    ("support_requests.topic.ownership", "The owner is lost: an ownership investigation"),
    ("support_requests.topic.sell_admin", "Appoint our first Sell admin"),
    ("support_requests.topic.sell_admin_for", "Appoint {name} first Sell admin"),
    ("support_requests.topic.investigation", "Security investigation opened by platform support"),
    ("support_requests.ownership_hint", "Say what happened to the owner's mailbox. Support records an investigation; it cannot hand the account over."),
    ("support_requests.sell_admin_hint", "Sell has no admin yet: only platform support can appoint the first one, who then grants Sell to others."),
    ("support_requests.member", "Member to appoint"),
    ("support_requests.message", "Message"),
    ("support_requests.send", "Send to platform support"),
    ("support_requests.sent", "Your request was sent to platform support; its answer appears below."),
    ("support_requests.yours", "Requests and investigations"),
    ("support_requests.none", "None yet."),
    ("support_requests.open", "open"),
    ("support_requests.closed", "closed on {date}: {note}"),
    ("support_requests.contact_link", "Contact support"),
    ("owner.lost", "The owner is lost? Their password can be reset through their mailbox; platform support records an investigation:"),
    ("cases.heading", "Support requests"),
    ("cases.none", "No open request or investigation."),
    ("cases.note", "Answer to the account"),
    ("cases.close", "Close"),
    ("cases.closed", "The case is closed; the account sees the answer."),
    ("nav.cases", "Support requests"),
    ("nav.members", "Team members"),
    ("nav.owner", "Account owner"),
    ("nav.billing", "Billing"),
    ("nav.integrations", "Integrations"),
    ("nav.profile", "Profile"),
    ("nav.sell", "Sell"),
    ("nav.licences", "Licence requests"),
    ("nav.audit", "Audit log"),
    ("nav.accounts", "Accounts"),
    ("nav.deliveries", "Outbound deliveries"),
    ("nav.policies", "Policies"),
    ("nav.main", "Main"),
    ("nav.skip", "Skip to content"),
    ("lang.switch", "Language"),
    ("signout.button", "Sign out"),
    ("signin.heading", "Sign in"),
    ("signin.intro", "Sign in to the account {account}."),
    ("signin.email", "Email address"),
    ("signin.password", "Password"),
    ("signin.button", "Sign in"),
    ("signin.forgot", "Forgot your password?"),
    ("signin.reset_button", "Send a reset link"),
    ("signin.reset_sent", "If the address belongs to this account, a reset link is on its way."),
    ("signin.password_set", "Your password is set. Sign in with it."),
    ("signin.signed_out", "You are signed out."),
    ("signin.expired", "Your session ended. Sign in again."),
    ("support.signin.heading", "Platform support"),
    ("support.signin.intro", "Sign in with the operator token of this installation."),
    ("support.signin.token", "Operator token"),
    ("password.heading", "Set password"),
    ("password.intro", "Choose a password of at least 8 characters."),
    ("password.new", "New password"),
    ("password.button", "Set password"),
    ("verify.heading", "Verify address"),
    ("verify.intro", "Confirm that this address is yours."),
    ("verify.button", "Verify address"),
    ("verify.done", "The address is verified. You can now make it your primary address."),
    ("members.heading", "Team members"),
    ("members.seats", "Agent seats used: {used} of {total}"),
    ("members.grant_expires", "{seats} of them temporary, until {date}: then nobody loses access, but no new seat can be taken until usage is below the new total."),
    ("members.grant_expires.one", "1 of them temporary, until {date}: then nobody loses access, but no new seat can be taken until usage is below the new total."),
    ("members.search", "Search by name or address"),
    ("members.search_button", "Search"),
    ("members.role_filter", "Role"),
    ("members.role_any", "Any role"),
    ("members.csv", "Export as CSV"),
    ("members.name", "Name"),
    ("members.email", "Primary address"),
    ("members.role", "Role"),
    ("members.actions", "Actions"),
    ("members.sort", "Sort"),
    ("members.sort_owner_first", "Owner first"),
    ("members.sort_name", "By name"),
    ("members.sort_role", "By role"),
    ("members.last_sign_in", "Last sign-in"),
    ("members.never_signed_in", "never"),
    ("members.range", "Members {first}–{last} of {total}"),
    ("members.pages", "Pages of the team"),
    ("members.prev", "Previous page"),
    ("members.next", "Next page"),
    ("members.none", "No member matches."),
    ("members.manage_hint", "Open a member's page to change their role, mail their invitation again or remove them from the account."),
    ("members.add_heading", "Add member"),
    ("members.add_button", "Add member"),
    ("members.added", "The member was added; they receive a mail to set their password."),
    ("members.change_role", "Change role"),
    ("members.role_changed", "The role was changed."),
    ("members.remove", "Remove"),
    ("members.removed", "The member was removed."),
    ("members.resend", "Resend invitation"),
    ("members.resent", "A new link to set a password was mailed."),
    ("members.invited", "invited"),
    ("members.deactivated", "deactivated"),
    ("members.you", "you"),
    ("members.unverified", "unverified"),
    ("members.no_seat_heading", "No agent seat is free"),
    ("members.no_seat_buy", "The account owner, {owner}, can buy more seats on the Billing page."),
    ("members.ask_owner", "Only the account owner can ask platform support for temporary seats: ask {owner}."),
    ("members.request_pending", "A request for {seats} temporary seats is waiting for platform support; asking again updates it."),
    ("members.request_pending.one", "A request for 1 temporary seat is waiting for platform support; asking again updates it."),
    ("members.no_seat_request", "Ask platform support for temporary seats:"),
    ("members.request_seats", "Request temporary seats"),
    ("members.seats_wanted", "Seats"),
    ("members.reason", "Reason"),
    ("members.request_sent", "Your request was sent to platform support."),
    ("members.handover_heading", "Or hand a profile over"),
    ("members.handover", "Without a free seat, the owner can hand an existing profile to the new person: on the Profile page of that profile, 1. add the new person's address, 2. they verify it from the mail they receive, 3. make it the primary address, 4. remove the old address. The seat, the role and the history stay with the profile."),
    ("role.owner", "Administrator (owner)"),
    ("role.admin", "Administrator"),
    ("role.agent", "Agent"),
    ("role.end_user", "End user"),
    ("owner.heading", "Account owner"),
    ("owner.current", "The owner of this account is {name} ({email})."),
    ("owner.only_owner", "Only the owner can hand the account over."),
    ("owner.change", "Change owner"),
    ("owner.pick", "Pick the new owner among the verified administrators:"),
    ("owner.none", "No other administrator can become the owner. Make someone an administrator first; their primary address must be verified."),
    ("owner.would_be_refused", "Cannot take over now:"),
    ("owner.next", "Continue"),
    ("owner.confirm_heading", "Confirm the change"),
    ("owner.confirm_intro", "{name} becomes the owner of the account. Once you confirm:"),
    ("owner.effect_billing", "billing (subscription, invoices, payment method) moves to {name}, and you no longer see it;"),
    ("owner.effect_admin", "you stay an administrator;"),
    ("owner.effect_integrations", "these integrations you set up must be reauthorized by the new owner:"),
    ("owner.effect_no_integrations", "no integration needs reauthorizing."),
    ("owner.confirm", "Confirm change"),
    ("owner.cancel", "Cancel"),
    ("owner.changed_flash", "The account has a new owner. Billing is now theirs."),
    ("billing.seat_change", "Subscription change"),
    ("billing.invoice_seats", "{agents} agent seats, {sell} Sell seats"),
    ("billing.per_month", "{amount} a month"),
    ("billing.monthly", "The subscription amounts to {amount} a month ({agent_price} per agent seat, {sell_price} per Sell seat)."),
    ("billing.payment_kind", "Type"),
    ("billing.kind.card", "Card"),
    ("billing.kind.sepa_debit", "SEPA direct debit"),
    ("billing.last4", "Last 4 digits"),
    ("billing.payment_button", "Save payment method"),
    ("billing.payment_hint", "Enter what your payment provider shows: admind keeps the type and the last four digits only."),
    ("billing.payment_set", "The payment method was saved."),
    ("billing.contacts", "Billing contacts"),
    ("billing.contacts_label", "Who receives the invoices besides you (one address per line, at most 5)"),
    ("billing.contacts_button", "Save contacts"),
    ("billing.contacts_set", "The billing contacts were saved."),
    ("billing.ask_owner", "The owner is {owner} ({email}): ask them."),
    ("billing.heading", "Billing"),
    ("billing.payment", "Payment method"),
    ("billing.no_payment", "No payment method on file."),
    ("billing.invoices", "Invoices"),
    ("billing.no_invoices", "No invoice yet."),
    ("billing.seats", "Agent seats"),
    ("billing.seats_button", "Set seats"),
    ("billing.sell_seats", "Sell seats"),
    ("billing.seats_set", "The number of seats was changed."),
    ("billing.amount", "Amount"),
    ("billing.date", "Date"),
    ("billing.description", "Description"),
    ("nav.directory", "Directory provisioning"),
    ("directory.heading", "Directory provisioning"),
    ("directory.intro", "Your identity provider (Okta, Microsoft Entra ID, Google Workspace, JumpCloud) adds, changes and deactivates the team's members through SCIM, under the account's rules: seats, the owner, addresses. It acts with the powers of the admin who created its token, never on ownership or billing."),
    ("directory.url", "SCIM base URL:"),
    ("directory.created", "Token created. Copy it into your identity provider now:"),
    ("directory.shown_once", "It is shown this once; only a fingerprint of it is kept. Lost, revoke it and create another."),
    ("directory.none", "No directory token."),
    ("directory.created_by", "Created by"),
    ("directory.created_at", "Created"),
    ("directory.last_used", "Last used"),
    ("directory.never", "never"),
    ("directory.revoke", "Revoke"),
    ("directory.revoked", "The token is revoked; the directory using it can no longer provision."),
    ("directory.new", "New token"),
    ("directory.name", "Directory name (shown in the audit log)"),
    ("directory.create", "Create token"),
    ("confirm.revoke_directory_token", "Revoke the token {name}? The directory using it stops provisioning at once; members it added stay."),
    ("integrations.heading", "Integrations"),
    ("integrations.none", "No integration."),
    ("integrations.status", "Status"),
    ("integrations.configured_by", "Set up by"),
    ("integrations.needs_reauth", "Needs reauthorization"),
    ("integrations.active", "Active"),
    ("integrations.authorize", "Authorize"),
    ("integrations.authorized", "The integration is authorized."),
    ("profile.heading", "Profile"),
    ("profile.addresses", "Addresses"),
    ("profile.primary", "primary"),
    ("profile.verified", "verified"),
    ("profile.unverified", "not verified yet"),
    ("profile.add", "Add address"),
    ("profile.added", "The address was added; a verification link was mailed to it."),
    ("profile.make_primary", "Make primary"),
    ("profile.made_primary", "It is now the primary address."),
    ("profile.remove", "Remove"),
    ("profile.removed", "The address was removed."),
    ("profile.new_address", "New address"),
    ("profile.of", "Profile of {name}"),
    ("profile.membership", "Role in the account"),
    ("profile.role_line", "Role: {role}"),
    ("profile.remove_member", "Remove from the account"),
    ("confirm.heading", "Please confirm"),
    ("confirm.yes", "Confirm"),
    ("confirm.cancel", "Cancel"),
    ("confirm.remove_member", "Remove {name} from this account? Their seat is freed, their sessions end, and the integrations they set up will need reauthorizing. This cannot be undone."),
    ("confirm.change_role", "Change the role of {name} to {role}?"),
    ("confirm.remove_sell", "Take Sell access from {name}? Their Sell seat is freed."),
    ("confirm.change_sell_role", "Change the Sell role of {name} to {role}?"),
    ("confirm.make_primary_own", "Make {address} your primary address? Password resets and notices will go to it: whoever reads that mailbox can take this profile over. If it belongs to someone else, you are handing your profile over to them."),
    ("confirm.make_primary", "Make {address} the primary address of {name}? Password resets and notices will go to it."),
    ("confirm.remove_address_own", "Remove {address} from your profile? Sessions opened with it end, yours too if you signed in with it."),
    ("confirm.remove_address", "Remove {address} from the profile of {name}? Sessions opened with it end."),
    ("profile.read_only", "Only {name} manages this profile's name and addresses (an administrator manages those of agents and end users)."),
    ("profile.name", "Name"),
    ("profile.save_name", "Save name"),
    ("profile.renamed", "The name was saved."),
    ("profile.handover_steps", "To hand this profile over to someone else when no seat is free: 1. add their address, 2. they verify it from the mail they receive, 3. make it the primary address, 4. remove your old address, 5. put their name above. They then reset the password through their address and sign in as the owner."),
    ("audit.who_filter", "Who (part of a name)"),
    ("audit.any_action", "Any action"),
    ("audit.any_outcome", "Any outcome"),
    ("audit.outcome_ok", "Done"),
    ("audit.outcome_refused", "Refused:"),
    ("audit.outcome_refused_filter", "Refused"),
    ("audit.from", "From (UTC)"),
    ("audit.to", "To (UTC)"),
    ("audit.csv", "Export as CSV"),
    ("audit.newest_first", "Newest first. Times are in your own time zone when your browser runs the page's script, in UTC otherwise."),
    ("action.account.create", "Created the account"),
    ("action.account.language", "Changed the language of the mails"),
    ("action.billing.set_payment_method", "Changed the payment method"),
    ("action.billing.set_seats", "Changed the number of seats"),
    ("action.email.add", "Added an address"),
    ("action.email.make_primary", "Made an address primary"),
    ("action.email.remove", "Removed an address"),
    ("action.email.request_primary", "Asked for an address to become primary"),
    ("action.email.verify", "Verified an address"),
    ("action.integration.add", "Added an integration"),
    ("action.integration.authorize", "Authorized an integration"),
    ("action.integration.flag", "Flagged an integration"),
    ("action.integration.token_revoked", "An integration's token was revoked"),
    ("action.licence_request.deny", "Denied temporary seats"),
    ("action.licence_request.file", "Asked for temporary seats"),
    ("action.licence_request.grant", "Granted temporary seats"),
    ("action.member.add", "Added a member"),
    ("action.member.change_role", "Changed a role"),
    ("action.member.deactivate", "Deactivated a member"),
    ("action.member.reactivate", "Reactivated a member"),
    ("action.member.remove", "Removed a member"),
    ("action.member.rename", "Changed a name"),
    ("action.member.resend_invitation", "Sent an invitation again"),
    ("action.member.set_directory_ids", "Linked a member to the directory"),
    ("action.owner.transfer", "Handed the account over"),
    ("action.password_reset.confirm", "Set a password"),
    ("action.password_reset.request", "Asked for a password reset"),
    ("action.policy.call", "A policy was asked"),
    ("action.policy.disable", "Switched a policy off"),
    ("action.policy.enable", "Switched a policy back on"),
    ("action.policy.notify", "A policy sent a mail"),
    ("action.policy.save", "Saved a policy"),
    ("action.scim.token_create", "Created a directory token"),
    ("action.scim.token_revoke", "Revoked a directory token"),
    ("action.security_investigation.open", "Opened a security investigation"),
    ("action.sell.appoint_admin", "Appointed a Sell admin"),
    ("action.sell.change_role", "Changed a Sell role"),
    ("action.sell.grant", "Granted Sell access"),
    ("action.sell.remove", "Removed Sell access"),
    ("action.sell.start_trial", "Started the Sell trial"),
    ("action.session.create", "Signed in"),
    ("action.session.revoke", "Signed out"),
    ("action.webhook.receive", "Received a webhook"),
    ("audit.the_account", "the account"),
    ("audit.heading", "Audit log"),
    ("audit.when", "When"),
    ("audit.actor", "Who"),
    ("audit.action", "What"),
    ("audit.target", "On"),
    ("audit.outcome", "Outcome"),
    ("audit.detail", "Detail"),
    ("audit.cause", "Caused by"),
    ("audit.filter", "Show only actions containing"),
    ("audit.filter_button", "Filter"),
    ("audit.older", "Older entries"),
    ("audit.none", "No entry."),
    ("audit.former_member", "a former member"),
    ("audit.directory", "directory"),
    ("audit.policy", "policy"),
    ("audit.operator", "Platform support"),
    ("audit.anonymous", "someone signed out (a mailed link)"),
    ("accounts.heading", "Accounts"),
    ("accounts.name", "Name"),
    ("accounts.owner", "Owner"),
    ("accounts.seats", "Seats used"),
    ("accounts.search", "Search by name"),
    ("accounts.none", "No account matches."),
    ("sell.heading", "Sell"),
    ("sell.status", "Sell: {status}"),
    ("sell.status.not_started", "not started"),
    ("sell.status.trial", "trial"),
    ("sell.status.active", "active"),
    ("sell.seats", "Sell seats used: {used} of {total}"),
    ("sell.start", "Start Sell trial"),
    ("sell.started", "The Sell trial started; you are its first Sell admin."),
    ("sell.users", "Sell users"),
    ("sell.none", "Nobody uses Sell yet."),
    ("sell.role", "Sell role"),
    ("sell.role.user", "Sell user"),
    ("sell.role.admin", "Sell admin"),
    ("sell.change_role", "Change Sell role"),
    ("sell.role_changed", "The Sell role was changed."),
    ("sell.removed", "Sell access was removed."),
    ("sell.grant_heading", "Grant Sell access"),
    ("sell.grant", "Grant Sell access"),
    ("sell.granted", "Sell access was granted."),
    ("sell.member", "Member"),
    ("sell.nobody_else", "Every member already uses Sell."),
    ("sell.no_admin", "Sell has no admin. Only platform support can appoint one: ask them, naming the member."),
    ("licences.heading", "Licence requests"),
    ("licences.none", "No request."),
    ("licences.created", "Filed"),
    ("licences.product", "Product"),
    ("licences.product.support", "Support (agent seats)"),
    ("licences.product.sell", "Sell"),
    ("licences.seats", "Seats"),
    ("licences.filed_by", "Filed by"),
    ("licences.reason", "Reason"),
    ("licences.status", "Status"),
    ("licences.status.pending", "pending"),
    ("licences.status.granted", "granted: {seats} seats until {until}"),
    ("licences.status.granted.one", "granted: 1 seat until {until}"),
    ("licences.status.denied", "denied: {reason}"),
    ("support.expires_days", "for days"),
    ("support.grant", "Grant"),
    ("support.deny", "Deny"),
    ("support.granted", "The seats were granted."),
    ("support.denied", "The request was denied."),
    ("support.investigation", "Security investigation"),
    ("support.note", "Note"),
    ("support.open_investigation", "Open investigation"),
    ("support.investigation_opened", "The investigation was recorded; the owner did not change."),
    ("support.appoint", "Appoint Sell admin"),
    ("support.appoint_intro", "When Sell has no admin, platform support appoints one at the account's request."),
    ("support.member_id", "Member"),
    ("support.owner", "Owner"),
    ("support.admins", "Other admins"),
    ("support.sell_admins", "Sell admins"),
    ("support.nobody", "none"),
    ("support.seats_of", "{used} used of {total}"),
    ("support.sell_of", "{status}: {used} seats used of {total}"),
    ("support.appointed", "The member is now a Sell admin."),
    ("deliveries.heading", "Outbound deliveries"),
    ("deliveries.none", "No delivery."),
    ("deliveries.subscriber", "Subscriber"),
    ("deliveries.event", "Event"),
    ("deliveries.state", "State"),
    ("deliveries.attempts", "Attempts"),
    ("deliveries.last_error", "Last error"),
    ("deliveries.redeliver", "Redeliver"),
    ("deliveries.redelivered", "The delivery is queued again."),
    ("workbench.versions", "Versions"),
    ("workbench.edit", "Edit as a draft"),
    ("workbench.no_versions", "No version was recorded."),
    ("workbench.loaded_at", "Loaded"),
    ("workbench.from", "From"),
    ("workbench.to", "To"),
    ("workbench.diff", "Compare"),
    ("workbench.source", "Source of"),
    ("workbench.editor", "Policy editor"),
    ("workbench.name", "Script name"),
    ("workbench.draft", "Draft"),
    ("workbench.check", "Check"),
    ("workbench.event", "Recorded event"),
    ("workbench.test", "Test on the event"),
    ("workbench.since", "Replay since"),
    ("workbench.replay", "Replay"),
    ("workbench.save", "Save into the scripts folder"),
    ("workbench.save_off", "Saving from the console is off ([console] policy_save)."),
    ("workbench.saved", "The script was saved; the watcher loads it."),
    ("workbench.save_confirm", "Save this draft?"),
    ("workbench.save_confirm_what", "It replaces the file the daemon enforces, as the lines below say (+ added, - removed):"),
    ("workbench.save_same", "The draft is the same as the file."),
    ("workbench.save_confirm_button", "Confirm save"),
    ("workbench.loads", "Loads"),
    ("workbench.failed", "The draft failed"),
    ("workbench.pick_event", "Pick a recorded event."),
    ("workbench.not_handled", "The draft does not handle that event's hook."),
    ("policies.links", "Versions"),
    ("policies.new_draft", "New draft"),
    ("policies.heading", "Policies"),
    ("policies.none", "No policy is loaded."),
    ("policies.name", "Name"),
    ("policies.kind", "Kind"),
    ("policies.hooks", "Hooks"),
    ("policies.version", "Version"),
    ("policies.calls", "Calls / failures"),
    ("policies.error", "Error"),
    ("policies.capabilities", "May call"),
    ("policies.state", "State"),
    ("policies.enforced", "Enforced"),
    ("policies.shadow", "Shadow (never enforced)"),
    ("policies.disagreements", "decisions differed from the enforced outcome"),
    ("policies.switched_off", "Switched off"),
    ("policies.switch_off", "Switch off"),
    ("policies.switch_on", "Switch back on"),
    ("policies.reason", "Reason for switching it off"),
    ("policies.switched", "The policy was switched."),
    ("problem.heading", "That did not work"),
    ("problem.back", "Back"),
    ("error.csrf_failed", "The form was too old or came from elsewhere. Reload the page and try again."),
    ("error.invalid_credentials", "The address or password is wrong."),
    ("error.invalid_token", "This link is invalid, already used or expired. Ask for a new one."),
    ("error.rate_limited", "Too many attempts. Wait a little and try again."),
    ("error.agent_seat_exhausted", "No agent seat is free."),
    ("error.sell_seat_exhausted", "No Sell seat is free."),
    ("error.not_account_owner", "Only the account owner can do this."),
    ("error.billing_owner_only", "Only the account owner sees billing. Ask the owner, or ask them to hand the account over to you."),
    ("error.new_owner_not_admin", "The new owner must be an administrator."),
    ("error.email_unverified", "The address must be verified first."),
    ("error.policy_denied", "A policy of this platform refused it."),
    ("error.forbidden", "Your role does not allow this."),
    ("error.not_found", "Not found, or not yours to see."),
    ("error.owner_role_locked", "The owner's role cannot be changed: hand the account over first."),
    ("error.email_taken", "This address is already used in this account."),
    ("error.validation_failed", "Check what you typed."),
    ("error.overloaded", "The server is busy. Try again in a moment."),
    ("error.unauthorized", "Sign in first."),
    ("error.last_sell_admin", "Sell must keep at least one admin: make someone else Sell admin first."),
    ("error.cannot_remove_primary_email", "The primary address cannot be removed: make another address primary first."),
    ("error.seats_in_use", "More seats are in use than that."),
    ("error.already_owner", "This member already owns the account."),
    ("error.sell_already_started", "Sell has already started."),
    ("error.agent_seat_exhausted.figures", "No agent seat is free ({used} of {total} taken): buy seats, free one, or ask platform support for temporary seats."),
    ("error.sell_seat_exhausted.figures", "No Sell seat is free ({used} of {total} taken): buy Sell seats, free one, or ask platform support for temporary seats."),
    ("error.already_sell_user", "This member already uses Sell."),
    ("error.email_limit_reached", "This profile has as many addresses as it may have: remove one first."),
    ("error.integration_limit_reached", "The account has as many integrations as it may have."),
    ("error.invitation_accepted", "This member has already set a password: no invitation to send again."),
    ("error.licence_request_decided", "This request has already been decided."),
    ("error.member_deactivated", "This member is deactivated."),
    ("error.member_holds_powers_you_lack", "This member has powers you do not have: an administrator must do it."),
    ("error.member_limit_reached", "The account has as many members as it may have."),
    ("error.scim_token_limit_reached", "The account has as many directory tokens as it may have: revoke one first."),
    ("error.sell_admin_exists", "Sell already has an admin: they grant access to others."),
    ("error.sell_admin_required", "Sell has no admin yet: ask platform support to appoint one."),
    ("error.too_many_grants", "The account has as many temporary grants as it may have."),
    ("error.too_many_pending_requests", "Too many requests are already waiting for platform support."),
    ("error.user_name_taken", "Another member already has this login name."),
    ("error.too_many_refusals", "Too many refused actions in a row. Wait a little and try again."),
    ("error.too_many_verification_mails", "Too many mails to this address for now. Wait a little and try again."),
    ("error.internal", "Something went wrong on our side; it was logged. Try again later."),
];

const FR: &[(&str, &str)] = &[
    ("app.name", "Centre d'administration admind"),
    ("home.members", "Les membres se connectent à l'adresse de leur compte, /a/<identifiant du compte>/sign-in : chaque e-mail d'admind y mène."),
    ("home.support", "Support de la plateforme : connexion avec le jeton d'opérateur"),
    ("nav.settings", "Paramètres du compte"),
    ("settings.heading", "Paramètres du compte"),
    ("settings.account_id", "Identifiant du compte"),
    ("settings.language", "Langue des e-mails du compte"),
    ("settings.language_intro", "Les invitations, les réinitialisations de mot de passe, les avis sur les adresses et les e-mails du propriétaire partent dans cette langue. Les pages de la console suivent le navigateur de chacun ou le sélecteur de langue."),
    ("settings.language_label", "E-mails en"),
    ("settings.language_default", "Langue par défaut de la plateforme"),
    ("settings.save", "Enregistrer"),
    ("settings.saved", "La langue des e-mails du compte est enregistrée."),
    ("nav.support", "Contacter le support"),
    ("support_requests.heading", "Contacter le support"),
    ("support_requests.intro", "Le support de la plateforme fait ce que le compte ne peut pas faire lui-même. Il ne change jamais le propriétaire : quand le propriétaire est introuvable, la solution est de réinitialiser son mot de passe via sa boîte mail, que le service informatique de votre entreprise contrôle ; le support ouvre une enquête."),
    ("support_requests.contact", "Nouvelle demande"),
    ("support_requests.topic", "Objet"),
    ("support_requests.topic.ownership", "Le propriétaire est introuvable : enquête sur la propriété"),
    ("support_requests.topic.sell_admin", "Nommer notre premier administrateur Sell"),
    ("support_requests.topic.sell_admin_for", "Nommer {name} premier administrateur Sell"),
    ("support_requests.topic.investigation", "Enquête de sécurité ouverte par le support de la plateforme"),
    ("support_requests.ownership_hint", "Expliquez ce qu'il est advenu de la boîte mail du propriétaire. Le support ouvre une enquête ; il ne peut pas transférer le compte."),
    ("support_requests.sell_admin_hint", "Sell n'a pas encore d'administrateur : seul le support de la plateforme peut nommer le premier, qui donne ensuite Sell aux autres."),
    ("support_requests.member", "Membre à nommer"),
    ("support_requests.message", "Message"),
    ("support_requests.send", "Envoyer au support de la plateforme"),
    ("support_requests.sent", "Votre demande a été envoyée au support de la plateforme ; sa réponse apparaîtra ci-dessous."),
    ("support_requests.yours", "Demandes et enquêtes"),
    ("support_requests.none", "Aucune pour l'instant."),
    ("support_requests.open", "en cours"),
    ("support_requests.closed", "close le {date} : {note}"),
    ("support_requests.contact_link", "Contacter le support"),
    ("owner.lost", "Le propriétaire est introuvable ? Son mot de passe peut être réinitialisé via sa boîte mail ; le support de la plateforme ouvre une enquête :"),
    ("cases.heading", "Demandes au support"),
    ("cases.none", "Aucune demande ni enquête en cours."),
    ("cases.note", "Réponse au compte"),
    ("cases.close", "Clore"),
    ("cases.closed", "Le dossier est clos ; le compte voit la réponse."),
    ("nav.cases", "Demandes au support"),
    ("nav.members", "Membres de l'équipe"),
    ("nav.owner", "Propriétaire du compte"),
    ("nav.billing", "Facturation"),
    ("nav.integrations", "Intégrations"),
    ("nav.profile", "Profil"),
    ("nav.sell", "Sell"),
    ("nav.licences", "Demandes de licences"),
    ("nav.audit", "Journal d'audit"),
    ("nav.accounts", "Comptes"),
    ("nav.deliveries", "Envois sortants"),
    ("nav.policies", "Politiques"),
    ("nav.main", "Principal"),
    ("nav.skip", "Aller au contenu"),
    ("lang.switch", "Langue"),
    ("signout.button", "Se déconnecter"),
    ("signin.heading", "Connexion"),
    ("signin.intro", "Connectez-vous au compte {account}."),
    ("signin.email", "Adresse e-mail"),
    ("signin.password", "Mot de passe"),
    ("signin.button", "Se connecter"),
    ("signin.forgot", "Mot de passe oublié ?"),
    ("signin.reset_button", "Envoyer un lien de réinitialisation"),
    ("signin.reset_sent", "Si l'adresse appartient à ce compte, un lien de réinitialisation est en route."),
    ("signin.password_set", "Votre mot de passe est défini : connectez-vous avec ce nouveau mot de passe."),
    ("signin.signed_out", "Vous êtes déconnecté."),
    ("signin.expired", "Votre session a pris fin. Reconnectez-vous."),
    ("support.signin.heading", "Support de la plateforme"),
    ("support.signin.intro", "Connectez-vous avec le jeton d'opérateur de cette installation."),
    ("support.signin.token", "Jeton d'opérateur"),
    ("password.heading", "Définir le mot de passe"),
    ("password.intro", "Choisissez un mot de passe d'au moins 8 caractères."),
    ("password.new", "Nouveau mot de passe"),
    ("password.button", "Définir le mot de passe"),
    ("verify.heading", "Vérifier l'adresse"),
    ("verify.intro", "Confirmez que cette adresse est la vôtre."),
    ("verify.button", "Vérifier l'adresse"),
    ("verify.done", "L'adresse est vérifiée. Vous pouvez maintenant en faire votre adresse principale."),
    ("members.heading", "Membres de l'équipe"),
    ("members.seats", "Licences d'agent utilisées : {used} sur {total}"),
    ("members.grant_expires", "dont {seats} temporaires, jusqu'au {date} : personne ne perd alors son accès, mais aucune licence ne peut être prise tant que l'usage dépasse le nouveau total."),
    ("members.grant_expires.one", "dont 1 temporaire, jusqu'au {date} : personne ne perd alors son accès, mais aucune licence ne peut être prise tant que l'usage dépasse le nouveau total."),
    ("members.search", "Rechercher par nom ou adresse"),
    ("members.search_button", "Rechercher"),
    ("members.role_filter", "Rôle"),
    ("members.role_any", "Tous les rôles"),
    ("members.csv", "Exporter en CSV"),
    ("members.name", "Nom"),
    ("members.email", "Adresse principale"),
    ("members.role", "Rôle"),
    ("members.actions", "Actions"),
    ("members.sort", "Trier"),
    ("members.sort_owner_first", "Propriétaire d'abord"),
    ("members.sort_name", "Par nom"),
    ("members.sort_role", "Par rôle"),
    ("members.last_sign_in", "Dernière connexion"),
    ("members.never_signed_in", "jamais"),
    ("members.range", "Membres {first} à {last} sur {total}"),
    ("members.pages", "Pages de l'équipe"),
    ("members.prev", "Page précédente"),
    ("members.next", "Page suivante"),
    ("members.none", "Aucun membre ne correspond."),
    ("members.manage_hint", "Ouvrez la page d'un membre pour changer son rôle, lui renvoyer l'invitation ou le retirer du compte."),
    ("members.add_heading", "Ajouter un membre"),
    ("members.add_button", "Ajouter le membre"),
    ("members.added", "Le membre a été ajouté ; il reçoit un e-mail pour définir son mot de passe."),
    ("members.change_role", "Changer le rôle"),
    ("members.role_changed", "Le rôle a été changé."),
    ("members.remove", "Supprimer"),
    ("members.removed", "Le membre a été retiré."),
    ("members.resend", "Renvoyer l'invitation"),
    ("members.resent", "Un nouveau lien pour définir le mot de passe a été envoyé."),
    ("members.invited", "invité"),
    ("members.deactivated", "désactivé"),
    ("members.you", "vous"),
    ("members.unverified", "non vérifiée"),
    ("members.no_seat_heading", "Aucune licence d'agent n'est libre"),
    ("members.no_seat_buy", "Le propriétaire du compte, {owner}, peut acheter des licences sur la page Facturation."),
    ("members.ask_owner", "Seul le propriétaire du compte peut demander des licences temporaires au support : adressez-vous à {owner}."),
    ("members.request_pending", "Une demande de {seats} licences temporaires attend le support de la plateforme ; la refaire la met à jour."),
    ("members.request_pending.one", "Une demande d'une licence temporaire attend le support de la plateforme ; la refaire la met à jour."),
    ("members.no_seat_request", "Demandez des licences temporaires au support de la plateforme :"),
    ("members.request_seats", "Demander des licences temporaires"),
    ("members.seats_wanted", "Licences"),
    ("members.reason", "Motif"),
    ("members.request_sent", "Votre demande a été envoyée au support de la plateforme."),
    ("members.handover_heading", "Ou transférer un profil"),
    ("members.handover", "Sans licence libre, le propriétaire peut transférer un profil existant à la nouvelle personne : sur la page Profil de ce profil, 1. ajoutez l'adresse de la nouvelle personne, 2. elle la vérifie depuis l'e-mail reçu, 3. faites-en l'adresse principale, 4. retirez l'ancienne adresse. La licence, le rôle et l'historique restent au profil."),
    ("role.owner", "Administrateur (propriétaire)"),
    ("role.admin", "Administrateur"),
    ("role.agent", "Agent"),
    ("role.end_user", "Utilisateur final"),
    ("owner.heading", "Propriétaire du compte"),
    ("owner.current", "Le propriétaire de ce compte est {name} ({email})."),
    ("owner.only_owner", "Seul le propriétaire peut transférer le compte."),
    ("owner.change", "Changer de propriétaire"),
    ("owner.pick", "Choisissez le nouveau propriétaire parmi les administrateurs vérifiés :"),
    ("owner.none", "Aucun autre administrateur ne peut devenir propriétaire. Nommez d'abord quelqu'un administrateur ; son adresse principale doit être vérifiée."),
    ("owner.would_be_refused", "Ne peut pas reprendre le compte pour l'instant :"),
    ("owner.next", "Continuer"),
    ("owner.confirm_heading", "Confirmer le changement"),
    ("owner.confirm_intro", "{name} devient propriétaire du compte. Une fois confirmé :"),
    ("owner.effect_billing", "la facturation (abonnement, factures, moyen de paiement) passe à {name}, et vous ne la voyez plus ;"),
    ("owner.effect_admin", "vous restez administrateur ;"),
    ("owner.effect_integrations", "ces intégrations que vous avez configurées devront être réautorisées par le nouveau propriétaire :"),
    ("owner.effect_no_integrations", "aucune intégration n'est à réautoriser."),
    ("owner.confirm", "Confirmer le changement"),
    ("owner.cancel", "Annuler"),
    ("owner.changed_flash", "Le compte a un nouveau propriétaire. La facturation est désormais la sienne."),
    ("billing.seat_change", "Modification de l'abonnement"),
    ("billing.invoice_seats", "{agents} licences d'agent, {sell} licences Sell"),
    ("billing.per_month", "{amount} par mois"),
    ("billing.monthly", "L'abonnement s'élève à {amount} par mois ({agent_price} par licence d'agent, {sell_price} par licence Sell)."),
    ("billing.payment_kind", "Type"),
    ("billing.kind.card", "Carte"),
    ("billing.kind.sepa_debit", "Prélèvement SEPA"),
    ("billing.last4", "4 derniers chiffres"),
    ("billing.payment_button", "Enregistrer le moyen de paiement"),
    ("billing.payment_hint", "Saisissez ce qu'affiche votre prestataire de paiement : admind ne garde que le type et les quatre derniers chiffres."),
    ("billing.payment_set", "Le moyen de paiement est enregistré."),
    ("billing.contacts", "Contacts de facturation"),
    ("billing.contacts_label", "Qui reçoit les factures en plus de vous (une adresse par ligne, 5 au plus)"),
    ("billing.contacts_button", "Enregistrer les contacts"),
    ("billing.contacts_set", "Les contacts de facturation sont enregistrés."),
    ("billing.ask_owner", "Le propriétaire est {owner} ({email}) : adressez-vous à lui."),
    ("billing.heading", "Facturation"),
    ("billing.payment", "Moyen de paiement"),
    ("billing.no_payment", "Aucun moyen de paiement enregistré."),
    ("billing.invoices", "Factures"),
    ("billing.no_invoices", "Aucune facture pour l'instant."),
    ("billing.seats", "Licences d'agent"),
    ("billing.seats_button", "Définir les licences"),
    ("billing.sell_seats", "Licences Sell"),
    ("billing.seats_set", "Le nombre de licences a été changé."),
    ("billing.amount", "Montant"),
    ("billing.date", "Date"),
    ("billing.description", "Description"),
    ("nav.directory", "Provisionnement d'annuaire"),
    ("directory.heading", "Provisionnement d'annuaire"),
    ("directory.intro", "Votre fournisseur d'identité (Okta, Microsoft Entra ID, Google Workspace, JumpCloud) ajoute, modifie et désactive les membres de l'équipe par SCIM, selon les règles du compte : licences, propriétaire, adresses. Il agit avec les droits de l'administrateur qui a créé son jeton, jamais sur la propriété du compte ni la facturation."),
    ("directory.url", "URL de base SCIM :"),
    ("directory.created", "Jeton créé. Copiez-le maintenant dans votre fournisseur d'identité :"),
    ("directory.shown_once", "Il n'est affiché qu'une fois ; seule une empreinte en est gardée. Perdu, révoquez-le et créez-en un autre."),
    ("directory.none", "Aucun jeton d'annuaire."),
    ("directory.created_by", "Créé par"),
    ("directory.created_at", "Créé le"),
    ("directory.last_used", "Dernière utilisation"),
    ("directory.never", "jamais"),
    ("directory.revoke", "Révoquer"),
    ("directory.revoked", "Le jeton est révoqué ; l'annuaire qui l'utilisait ne peut plus rien provisionner."),
    ("directory.new", "Nouveau jeton"),
    ("directory.name", "Nom de l'annuaire (affiché dans le journal d'audit)"),
    ("directory.create", "Créer le jeton"),
    ("confirm.revoke_directory_token", "Révoquer le jeton {name} ? L'annuaire qui l'utilise arrête aussitôt de provisionner ; les membres qu'il a ajoutés restent."),
    ("integrations.heading", "Intégrations"),
    ("integrations.none", "Aucune intégration."),
    ("integrations.status", "État"),
    ("integrations.configured_by", "Configurée par"),
    ("integrations.needs_reauth", "À réautoriser"),
    ("integrations.active", "Active"),
    ("integrations.authorize", "Autoriser"),
    ("integrations.authorized", "L'intégration est autorisée."),
    ("profile.heading", "Profil"),
    ("profile.addresses", "Adresses"),
    ("profile.primary", "principale"),
    ("profile.verified", "vérifiée"),
    ("profile.unverified", "pas encore vérifiée"),
    ("profile.add", "Ajouter l'adresse"),
    ("profile.added", "L'adresse a été ajoutée ; un lien de vérification lui a été envoyé."),
    ("profile.make_primary", "Définir comme contact principal"),
    ("profile.made_primary", "C'est maintenant l'adresse principale."),
    ("profile.remove", "Supprimer"),
    ("profile.removed", "L'adresse a été retirée."),
    ("profile.new_address", "Nouvelle adresse"),
    ("profile.of", "Profil de {name}"),
    ("profile.membership", "Rôle dans le compte"),
    ("profile.role_line", "Rôle : {role}"),
    ("profile.remove_member", "Retirer du compte"),
    ("confirm.heading", "Confirmation"),
    ("confirm.yes", "Confirmer"),
    ("confirm.cancel", "Annuler"),
    ("confirm.remove_member", "Supprimer {name} de ce compte ? Sa licence est libérée, ses sessions prennent fin et les intégrations configurées par cette personne devront être réautorisées. C'est irréversible."),
    ("confirm.change_role", "Changer le rôle de {name} en {role} ?"),
    ("confirm.remove_sell", "Retirer l'accès à Sell de {name} ? Sa licence Sell est libérée."),
    ("confirm.change_sell_role", "Changer le rôle Sell de {name} en {role} ?"),
    ("confirm.make_primary_own", "Définir {address} comme contact principal ? Les réinitialisations de mot de passe et les avis y seront envoyés : qui lit cette boîte peut prendre ce profil. Si elle appartient à quelqu'un d'autre, vous lui transmettez votre profil."),
    ("confirm.make_primary", "Définir {address} comme contact principal de {name} ? Les réinitialisations de mot de passe et les avis y seront envoyés."),
    ("confirm.remove_address_own", "Supprimer {address} de votre profil ? Les sessions ouvertes avec cette adresse prennent fin, la vôtre aussi si vous vous êtes connecté avec."),
    ("confirm.remove_address", "Supprimer {address} du profil de {name} ? Les sessions ouvertes avec cette adresse prennent fin."),
    ("profile.read_only", "Seul(e) {name} gère le nom et les adresses de ce profil (un administrateur gère ceux des agents et des utilisateurs finaux)."),
    ("profile.name", "Nom"),
    ("profile.save_name", "Enregistrer le nom"),
    ("profile.renamed", "Le nom a été enregistré."),
    ("profile.handover_steps", "Pour transmettre ce profil à quelqu'un d'autre quand aucune licence n'est libre : 1. ajoutez son adresse, 2. la personne la vérifie depuis le message reçu, 3. définissez-la comme contact principal, 4. supprimez votre ancienne adresse, 5. mettez à jour son nom ci-dessus. Elle réinitialise ensuite le mot de passe depuis son adresse et se connecte en tant que propriétaire."),
    ("audit.who_filter", "Qui (une partie du nom)"),
    ("audit.any_action", "Toutes les actions"),
    ("audit.any_outcome", "Tous les résultats"),
    ("audit.outcome_ok", "Effectué"),
    ("audit.outcome_refused", "Refusé :"),
    ("audit.outcome_refused_filter", "Refusé"),
    ("audit.from", "Du (UTC)"),
    ("audit.to", "Au (UTC)"),
    ("audit.csv", "Exporter en CSV"),
    ("audit.newest_first", "Les plus récentes d'abord. Les heures sont dans votre fuseau horaire quand votre navigateur exécute le script de la page, en UTC sinon."),
    ("action.account.create", "A créé le compte"),
    ("action.account.language", "A changé la langue des e-mails"),
    ("action.billing.set_payment_method", "A changé le moyen de paiement"),
    ("action.billing.set_seats", "A changé le nombre de licences"),
    ("action.email.add", "A ajouté une adresse"),
    ("action.email.make_primary", "A défini une adresse comme contact principal"),
    ("action.email.remove", "A supprimé une adresse"),
    ("action.email.request_primary", "A demandé qu'une adresse devienne principale"),
    ("action.email.verify", "A vérifié une adresse"),
    ("action.integration.add", "A ajouté une intégration"),
    ("action.integration.authorize", "A autorisé une intégration"),
    ("action.integration.flag", "A signalé une intégration"),
    ("action.integration.token_revoked", "Le jeton d'une intégration a été révoqué"),
    ("action.licence_request.deny", "A refusé des licences temporaires"),
    ("action.licence_request.file", "A demandé des licences temporaires"),
    ("action.licence_request.grant", "A accordé des licences temporaires"),
    ("action.member.add", "A ajouté un membre"),
    ("action.member.change_role", "A changé un rôle"),
    ("action.member.deactivate", "A désactivé un membre"),
    ("action.member.reactivate", "A réactivé un membre"),
    ("action.member.remove", "A supprimé un membre"),
    ("action.member.rename", "A changé un nom"),
    ("action.member.resend_invitation", "A renvoyé une invitation"),
    ("action.member.set_directory_ids", "A lié un membre à l'annuaire"),
    ("action.owner.transfer", "A transféré la propriété du compte"),
    ("action.password_reset.confirm", "A défini un mot de passe"),
    ("action.password_reset.request", "A demandé une réinitialisation du mot de passe"),
    ("action.policy.call", "Une politique a été consultée"),
    ("action.policy.disable", "A désactivé une politique"),
    ("action.policy.enable", "A réactivé une politique"),
    ("action.policy.notify", "Une politique a envoyé un e-mail"),
    ("action.policy.save", "A enregistré une politique"),
    ("action.scim.token_create", "A créé un jeton d'annuaire"),
    ("action.scim.token_revoke", "A révoqué un jeton d'annuaire"),
    ("action.security_investigation.open", "A ouvert une enquête de sécurité"),
    ("action.sell.appoint_admin", "A nommé un administrateur Sell"),
    ("action.sell.change_role", "A changé un rôle Sell"),
    ("action.sell.grant", "A donné l'accès à Sell"),
    ("action.sell.remove", "A retiré l'accès à Sell"),
    ("action.sell.start_trial", "A démarré l'essai de Sell"),
    ("action.session.create", "S'est connecté"),
    ("action.session.revoke", "S'est déconnecté"),
    ("action.webhook.receive", "A reçu un webhook"),
    ("audit.the_account", "le compte"),
    ("audit.heading", "Journal d'audit"),
    ("audit.when", "Quand"),
    ("audit.actor", "Qui"),
    ("audit.action", "Quoi"),
    ("audit.target", "Sur"),
    ("audit.outcome", "Résultat"),
    ("audit.detail", "Détail"),
    ("audit.cause", "Causé par"),
    ("audit.filter", "N'afficher que les actions contenant"),
    ("audit.filter_button", "Filtrer"),
    ("audit.older", "Entrées plus anciennes"),
    ("audit.none", "Aucune entrée."),
    ("audit.former_member", "un ancien membre"),
    ("audit.directory", "annuaire"),
    ("audit.policy", "politique"),
    ("audit.operator", "Support de la plateforme"),
    ("audit.anonymous", "quelqu'un de déconnecté (lien reçu par e-mail)"),
    ("accounts.heading", "Comptes"),
    ("accounts.name", "Nom"),
    ("accounts.owner", "Propriétaire"),
    ("accounts.seats", "Licences utilisées"),
    ("accounts.search", "Rechercher par nom"),
    ("accounts.none", "Aucun compte ne correspond."),
    ("sell.heading", "Sell"),
    ("sell.status", "Sell : {status}"),
    ("sell.status.not_started", "pas commencé"),
    ("sell.status.trial", "essai"),
    ("sell.status.active", "actif"),
    ("sell.seats", "Licences Sell utilisées : {used} sur {total}"),
    ("sell.start", "Commencer l'essai de Sell"),
    ("sell.started", "L'essai de Sell a commencé ; vous en êtes le premier administrateur Sell."),
    ("sell.users", "Utilisateurs de Sell"),
    ("sell.none", "Personne n'utilise encore Sell."),
    ("sell.role", "Rôle Sell"),
    ("sell.role.user", "Utilisateur Sell"),
    ("sell.role.admin", "Administrateur Sell"),
    ("sell.change_role", "Changer le rôle Sell"),
    ("sell.role_changed", "Le rôle Sell a été changé."),
    ("sell.removed", "L'accès à Sell a été retiré."),
    ("sell.grant_heading", "Donner accès à Sell"),
    ("sell.grant", "Donner accès à Sell"),
    ("sell.granted", "L'accès à Sell a été donné."),
    ("sell.member", "Membre"),
    ("sell.nobody_else", "Tous les membres utilisent déjà Sell."),
    ("sell.no_admin", "Sell n'a pas d'administrateur. Seul le support de la plateforme peut en nommer un : demandez-le-lui en nommant le membre."),
    ("licences.heading", "Demandes de licences"),
    ("licences.none", "Aucune demande."),
    ("licences.created", "Déposée"),
    ("licences.product", "Produit"),
    ("licences.product.support", "Support (licences d'agent)"),
    ("licences.product.sell", "Sell"),
    ("licences.seats", "Licences"),
    ("licences.filed_by", "Demandée par"),
    ("licences.reason", "Motif"),
    ("licences.status", "État"),
    ("licences.status.pending", "en attente"),
    ("licences.status.granted", "accordée : {seats} licences jusqu'au {until}"),
    ("licences.status.granted.one", "accordée : 1 licence jusqu'au {until}"),
    ("licences.status.denied", "refusée : {reason}"),
    ("support.expires_days", "pendant (jours)"),
    ("support.grant", "Accorder"),
    ("support.deny", "Refuser"),
    ("support.granted", "Les licences ont été accordées."),
    ("support.denied", "La demande a été refusée."),
    ("support.investigation", "Enquête de sécurité"),
    ("support.note", "Note"),
    ("support.open_investigation", "Ouvrir une enquête"),
    ("support.investigation_opened", "L'enquête est enregistrée ; le propriétaire n'a pas changé."),
    ("support.appoint", "Nommer un administrateur Sell"),
    ("support.appoint_intro", "Quand Sell n'a pas d'administrateur, le support de la plateforme en nomme un à la demande du compte."),
    ("support.member_id", "Membre"),
    ("support.owner", "Propriétaire"),
    ("support.admins", "Autres administrateurs"),
    ("support.sell_admins", "Administrateurs Sell"),
    ("support.nobody", "aucun"),
    ("support.seats_of", "{used} utilisée(s) sur {total}"),
    ("support.sell_of", "{status} : {used} licence(s) utilisée(s) sur {total}"),
    ("support.appointed", "Le membre est maintenant administrateur Sell."),
    ("deliveries.heading", "Envois sortants"),
    ("deliveries.none", "Aucun envoi."),
    ("deliveries.subscriber", "Abonné"),
    ("deliveries.event", "Événement"),
    ("deliveries.state", "État"),
    ("deliveries.attempts", "Tentatives"),
    ("deliveries.last_error", "Dernière erreur"),
    ("deliveries.redeliver", "Renvoyer"),
    ("deliveries.redelivered", "L'envoi est de nouveau en file."),
    ("workbench.versions", "Versions"),
    ("workbench.edit", "Modifier comme brouillon"),
    ("workbench.no_versions", "Aucune version n'a été enregistrée."),
    ("workbench.loaded_at", "Chargée"),
    ("workbench.from", "De"),
    ("workbench.to", "À"),
    ("workbench.diff", "Comparer"),
    ("workbench.source", "Source de"),
    ("workbench.editor", "Éditeur de politique"),
    ("workbench.name", "Nom du script"),
    ("workbench.draft", "Brouillon"),
    ("workbench.check", "Vérifier"),
    ("workbench.event", "Événement enregistré"),
    ("workbench.test", "Tester sur l'événement"),
    ("workbench.since", "Rejouer depuis"),
    ("workbench.replay", "Rejouer"),
    ("workbench.save", "Enregistrer dans le dossier des scripts"),
    ("workbench.save_off", "L'enregistrement depuis la console est désactivé ([console] policy_save)."),
    ("workbench.saved", "Le script a été enregistré ; il sera chargé."),
    ("workbench.save_confirm", "Enregistrer ce brouillon ?"),
    ("workbench.save_confirm_what", "Il remplace le fichier appliqué par le démon, comme le disent les lignes ci-dessous (+ ajoutée, - supprimée) :"),
    ("workbench.save_same", "Le brouillon est identique au fichier."),
    ("workbench.save_confirm_button", "Confirmer l'enregistrement"),
    ("workbench.loads", "Le brouillon se charge sans erreur"),
    ("workbench.failed", "Le brouillon a échoué"),
    ("workbench.pick_event", "Choisissez un événement enregistré."),
    ("workbench.not_handled", "Le brouillon ne traite pas le point d'accroche de cet événement."),
    ("policies.links", "Versions"),
    ("policies.new_draft", "Nouveau brouillon"),
    ("policies.heading", "Politiques"),
    ("policies.none", "Aucune politique n'est chargée."),
    ("policies.name", "Nom"),
    ("policies.kind", "Type"),
    ("policies.hooks", "Points d'accroche"),
    ("policies.version", "Version"),
    ("policies.calls", "Appels / échecs"),
    ("policies.error", "Erreur"),
    ("policies.capabilities", "Peut appeler"),
    ("policies.state", "État"),
    ("policies.enforced", "Appliquée"),
    ("policies.shadow", "Fantôme (jamais appliquée)"),
    ("policies.disagreements", "décisions différentes du résultat appliqué"),
    ("policies.switched_off", "Désactivée"),
    ("policies.switch_off", "Désactiver"),
    ("policies.switch_on", "Réactiver"),
    ("policies.reason", "Motif de la désactivation"),
    ("policies.switched", "La politique a été basculée."),
    ("problem.heading", "L'opération n'a pas abouti"),
    ("problem.back", "Retour"),
    ("error.csrf_failed", "Le formulaire était trop ancien ou venait d'ailleurs. Rechargez la page et réessayez."),
    ("error.invalid_credentials", "L'adresse ou le mot de passe est incorrect."),
    ("error.invalid_token", "Ce lien est invalide, déjà utilisé ou expiré. Demandez-en un nouveau."),
    ("error.rate_limited", "Trop de tentatives. Patientez un peu et réessayez."),
    ("error.agent_seat_exhausted", "Aucune licence d'agent n'est libre."),
    ("error.sell_seat_exhausted", "Aucune licence Sell n'est libre."),
    ("error.not_account_owner", "Seul le propriétaire du compte peut faire cela."),
    ("error.billing_owner_only", "Seul le propriétaire du compte voit la facturation. Demandez-lui, ou demandez-lui de vous transférer le compte."),
    ("error.new_owner_not_admin", "Le nouveau propriétaire doit être administrateur."),
    ("error.email_unverified", "L'adresse doit d'abord être vérifiée."),
    ("error.policy_denied", "Une politique de cette plateforme l'a refusé."),
    ("error.forbidden", "Votre rôle ne le permet pas."),
    ("error.not_found", "Cette page n'existe pas, ou vous n'y avez pas accès."),
    ("error.owner_role_locked", "Le rôle du propriétaire ne peut pas changer : transférez d'abord le compte."),
    ("error.email_taken", "Cette adresse est déjà utilisée dans ce compte."),
    ("error.validation_failed", "Vérifiez ce que vous avez saisi."),
    ("error.overloaded", "Le serveur est occupé. Réessayez dans un instant."),
    ("error.unauthorized", "Connectez-vous d'abord."),
    ("error.last_sell_admin", "Sell doit garder au moins un administrateur : nommez d'abord quelqu'un d'autre administrateur Sell."),
    ("error.cannot_remove_primary_email", "L'adresse principale ne peut pas être retirée : rendez d'abord une autre adresse principale."),
    ("error.seats_in_use", "Plus de licences que cela sont utilisées."),
    ("error.already_owner", "Ce membre est déjà propriétaire du compte."),
    ("error.sell_already_started", "Sell a déjà commencé."),
    ("error.agent_seat_exhausted.figures", "Aucune licence d'agent n'est libre ({used} sur {total} prises) : achetez des licences, libérez-en une ou demandez des licences temporaires au support de la plateforme."),
    ("error.sell_seat_exhausted.figures", "Aucune licence Sell n'est libre ({used} sur {total} prises) : achetez des licences Sell, libérez-en une ou demandez des licences temporaires au support de la plateforme."),
    ("error.already_sell_user", "Ce membre utilise déjà Sell."),
    ("error.email_limit_reached", "Ce profil a déjà autant d'adresses que permis : supprimez-en une d'abord."),
    ("error.integration_limit_reached", "Le compte a déjà autant d'intégrations que permis."),
    ("error.invitation_accepted", "Ce membre a déjà défini son mot de passe : il n'y a pas d'invitation à renvoyer."),
    ("error.licence_request_decided", "Cette demande a déjà été traitée."),
    ("error.member_deactivated", "Ce membre est désactivé."),
    ("error.member_holds_powers_you_lack", "Ce membre a des droits que vous n'avez pas : un administrateur doit s'en charger."),
    ("error.member_limit_reached", "Le compte a déjà autant de membres que permis."),
    ("error.scim_token_limit_reached", "Le compte a déjà autant de jetons d'annuaire que permis : révoquez-en un d'abord."),
    ("error.sell_admin_exists", "Sell a déjà un administrateur : c'est lui qui donne l'accès aux autres."),
    ("error.sell_admin_required", "Sell n'a pas encore d'administrateur : demandez au support de la plateforme d'en nommer un."),
    ("error.too_many_grants", "Le compte a déjà autant d'attributions temporaires que permis."),
    ("error.too_many_pending_requests", "Trop de demandes attendent déjà le support de la plateforme."),
    ("error.user_name_taken", "Un autre membre a déjà cet identifiant de connexion."),
    ("error.too_many_refusals", "Trop d'actions refusées d'affilée. Patientez un peu et réessayez."),
    ("error.too_many_verification_mails", "Trop d'e-mails vers cette adresse pour le moment. Patientez un peu et réessayez."),
    ("error.internal", "Une erreur s'est produite de notre côté ; elle a été journalisée. Réessayez plus tard."),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path writes exactly what askama's escaper writes: each of
    /// the five special characters at every place of short and long
    /// texts, and texts with none of them (multi-byte ones included).
    #[test]
    fn html_is_written_as_askama_escapes_it() {
        let askama = |text: &str| {
            let mut out = String::new();
            let _ = askama::filters::Html.write_escaped_str(&mut out, text);
            out
        };
        for len in 0..40 {
            let plain: String = "aé!=/".chars().cycle().take(len).collect();
            assert_eq!(escape_html(&plain), askama(&plain));
            assert_eq!(escape_html(&plain), plain);
            for at in 0..len {
                for special in ['<', '>', '&', '"', '\'', ' '] {
                    let mut text: Vec<char> = plain.chars().collect();
                    text[at] = special;
                    let text: String = text.into_iter().collect();
                    assert_eq!(escape_html(&text), askama(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let en: std::collections::BTreeSet<_> = english().keys().collect();
        let fr: std::collections::BTreeSet<_> = french().keys().collect();
        assert_eq!(en, fr);
        assert_eq!(EN.len(), en.len(), "no key twice in English");
        assert_eq!(FR.len(), fr.len(), "no key twice in French");
    }

    #[test]
    fn every_key_used_by_a_template_is_in_both_catalogues() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/console");
        let mut used = 0;
        for entry in std::fs::read_dir(&dir).expect("templates/console") {
            let path = entry.expect("a template").path();
            let text = std::fs::read_to_string(&path).expect("a template's text");
            assert!(
                !text.contains("c.t.s("),
                "{path:?}: templates write c.t.h(\"key\"), escaped once"
            );
            for piece in text.split("c.t.h(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or_default();
                assert!(
                    english().has(key),
                    "{path:?}: {key} is not in the English catalogue"
                );
                assert!(
                    french().has(key),
                    "{path:?}: {key} is not in the French catalogue"
                );
                used += 1;
            }
        }
        assert!(used > 300, "the scan found the templates' keys ({used})");
    }

    #[test]
    fn a_catalogue_text_is_written_escaped_once() {
        let fr = french();
        let key = fr
            .keys()
            .copied()
            .find(|k| fr.s(k).contains('\''))
            .expect("a French text with an apostrophe");
        let written = fr.h(key).to_string();
        assert!(!written.contains('\''), "{written}");
        assert_eq!(written.replace("&#39;", "'"), fr.s(key));
    }

    #[test]
    fn accept_language_picks_french_or_english() {
        assert_eq!(pick(None, Some("fr-FR,fr;q=0.9,en;q=0.8")).lang, "fr");
        assert_eq!(pick(None, Some("en-GB,fr;q=0.5")).lang, "en");
        assert_eq!(pick(None, Some("de, fr;q=0.3")).lang, "fr");
        assert_eq!(pick(None, Some("de")).lang, "en");
        assert_eq!(pick(Some("fr"), Some("en")).lang, "fr", "the switch wins");
        assert_eq!(pick(None, None).lang, "en");
    }
}
