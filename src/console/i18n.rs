//! The console's words: one catalogue per language, every string a person
//! reads in it. A key missing from a catalogue is a test failure
//! (`every_key_used_by_a_template_is_in_both_catalogues`), never a blank.

use std::collections::HashMap;
use std::sync::OnceLock;

pub struct Catalogue {
    /// BCP 47 code (`<html lang>`).
    pub lang: &'static str,
    /// The other language offered by the switch: its code and its name in
    /// itself.
    pub other_lang: &'static str,
    pub other_name: &'static str,
    map: HashMap<&'static str, &'static str>,
}

impl Catalogue {
    fn new(
        lang: &'static str,
        other_lang: &'static str,
        other_name: &'static str,
        entries: &[(&'static str, &'static str)],
    ) -> Catalogue {
        Catalogue {
            lang,
            other_lang,
            other_name,
            map: entries.iter().copied().collect(),
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
    ("members.search", "Search by name or address"),
    ("members.search_button", "Search"),
    ("members.name", "Name"),
    ("members.email", "Primary address"),
    ("members.role", "Role"),
    ("members.actions", "Actions"),
    ("members.next", "Next page"),
    ("members.none", "No member matches."),
    ("members.add_heading", "Add member"),
    ("members.add_button", "Add member"),
    ("members.added", "The member was added; they receive a mail to set their password."),
    ("members.change_role", "Change role"),
    ("members.role_changed", "The role was changed."),
    ("members.remove", "Remove"),
    ("members.removed", "The member was removed."),
    ("members.you", "you"),
    ("members.unverified", "unverified"),
    ("members.no_seat_heading", "No agent seat is free"),
    ("members.no_seat_buy", "The account owner can buy more seats on the Billing page."),
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
    ("audit.older", "More"),
    ("audit.none", "No entry."),
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
    ("licences.reason", "Reason"),
    ("licences.status", "Status"),
    ("licences.status.pending", "pending"),
    ("licences.status.granted", "granted: {seats} seats until {until}"),
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
    ("support.member_id", "Member id (usr_…)"),
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
    ("policies.heading", "Policies"),
    ("policies.none", "No policy is loaded."),
    ("policies.name", "Name"),
    ("policies.kind", "Kind"),
    ("policies.hooks", "Hooks"),
    ("policies.version", "Version"),
    ("policies.calls", "Calls / failures"),
    ("policies.error", "Error"),
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
];

const FR: &[(&str, &str)] = &[
    ("app.name", "Centre d'administration admind"),
    ("home.members", "Les membres se connectent à l'adresse de leur compte, /a/<identifiant du compte>/sign-in : chaque e-mail d'admind y mène."),
    ("home.support", "Support de la plateforme : connexion avec le jeton d'opérateur"),
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
    ("signin.password_set", "Votre mot de passe est défini. Connectez-vous avec."),
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
    ("members.search", "Rechercher par nom ou adresse"),
    ("members.search_button", "Rechercher"),
    ("members.name", "Nom"),
    ("members.email", "Adresse principale"),
    ("members.role", "Rôle"),
    ("members.actions", "Actions"),
    ("members.next", "Page suivante"),
    ("members.none", "Aucun membre ne correspond."),
    ("members.add_heading", "Ajouter un membre"),
    ("members.add_button", "Ajouter le membre"),
    ("members.added", "Le membre a été ajouté ; il reçoit un e-mail pour définir son mot de passe."),
    ("members.change_role", "Changer le rôle"),
    ("members.role_changed", "Le rôle a été changé."),
    ("members.remove", "Retirer"),
    ("members.removed", "Le membre a été retiré."),
    ("members.you", "vous"),
    ("members.unverified", "non vérifiée"),
    ("members.no_seat_heading", "Aucune licence d'agent n'est libre"),
    ("members.no_seat_buy", "Le propriétaire du compte peut acheter des licences sur la page Facturation."),
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
    ("profile.make_primary", "Rendre principale"),
    ("profile.made_primary", "C'est maintenant l'adresse principale."),
    ("profile.remove", "Retirer"),
    ("profile.removed", "L'adresse a été retirée."),
    ("profile.new_address", "Nouvelle adresse"),
    ("profile.of", "Profil de {name}"),
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
    ("audit.older", "Plus"),
    ("audit.none", "Aucune entrée."),
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
    ("licences.reason", "Motif"),
    ("licences.status", "État"),
    ("licences.status.pending", "en attente"),
    ("licences.status.granted", "accordée : {seats} licences jusqu'au {until}"),
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
    ("support.member_id", "Identifiant du membre (usr_…)"),
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
    ("policies.heading", "Politiques"),
    ("policies.none", "Aucune politique n'est chargée."),
    ("policies.name", "Nom"),
    ("policies.kind", "Type"),
    ("policies.hooks", "Points d'accroche"),
    ("policies.version", "Version"),
    ("policies.calls", "Appels / échecs"),
    ("policies.error", "Erreur"),
    ("problem.heading", "Cela n'a pas marché"),
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
    ("error.not_found", "Introuvable, ou pas à vous de le voir."),
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
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let en: std::collections::BTreeSet<_> = english().keys().collect();
        let fr: std::collections::BTreeSet<_> = french().keys().collect();
        assert_eq!(en, fr);
        assert_eq!(EN.len(), en.len(), "no key twice in English");
        assert_eq!(FR.len(), fr.len(), "no key twice in French");
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
