//! Outgoing mail: notices rendered into messages, and the outbox worker that
//! delivers them after the transaction that queued them is flushed.
//!
//! Delivery is exactly-once for the file transport: a message's file is named
//! after its outbox id and written by rename, so a redelivery after a crash
//! rewrites the same file. SMTP is at-least-once with a stable Message-ID per
//! outbox id, which receivers use to drop duplicates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, MailTransportKind, SmtpSecurity};
use crate::domain::Notice;
use crate::queue::{Attempt, Queue, Settled, Tally};
use crate::store::{OutboxItem, OutboxMail, QueueName, Store, StoreError, Write};

/// Renders a notice in the account's language (`fr`, else English); the
/// raw token appears only here, inside the link.
pub fn render(notice: &Notice, public_url: &str, language: &str) -> OutboxMail {
    let base = public_url.trim_end_matches('/');
    if let Notice::Custom { subject, body, .. } = notice {
        // A policy's message is its own: no footer is added to it.
        return message(notice, subject.clone(), body.clone());
    }
    let (subject, body, footer) = if language == "fr" {
        let (subject, body) = french_text(notice, base);
        (subject, body, "Se connecter au compte :")
    } else {
        let (subject, body) = english_text(notice, base);
        (subject, body, "Sign in to your account:")
    };
    // Every message leads to the account's own sign-in address (the
    // console), where whatever it is about can be seen and acted on.
    let body = format!(
        "{body}\n--\n{footer} {base}/a/{}/sign-in\n",
        notice.account_id()
    );
    message(notice, subject, body)
}

fn english_text(notice: &Notice, base: &str) -> (String, String) {
    match notice {
        Notice::PasswordSet {
            user_name,
            account_name,
            account_id,
            token,
            ..
        } => (
            format!("Set your password for {account_name}"),
            format!(
                "Hello {user_name},\n\nYou have been given access to the account {account_name} ({account_id}).\n\
                 Set your password here (the link works once):\n\n{base}/a/{account_id}/password/set?token={token}\n\n\
                 If you did not expect this, ignore this message.\n"
            ),
        ),
        Notice::PasswordReset {
            account_name,
            account_id,
            token,
            ..
        } => (
            format!("Reset your password for {account_name}"),
            format!(
                "Someone asked to reset the password of this address for the account {account_name} ({account_id}).\n\
                 Choose a new password here (the link works once and expires soon):\n\n\
                 {base}/a/{account_id}/password/reset?token={token}\n\n\
                 If it was not you, ignore this message; your password is unchanged.\n"
            ),
        ),
        Notice::OwnershipReceived {
            account_name,
            previous_owner_name,
            integrations,
            ..
        } => {
            let mut body = format!(
                "{previous_owner_name} made you the owner of the account {account_name}.\n\
                 You now manage its subscription: invoices, payment method and seats.\n"
            );
            if !integrations.is_empty() {
                // The list itself is the reauth-reminder plugin's mail (R06's
                // default policy); here only that there is one.
                body.push_str(&format!(
                    "\n{} integration(s) set up by the previous owner need to be reauthorized.\n",
                    integrations.len()
                ));
            }
            (format!("You are now the owner of {account_name}"), body)
        }
        Notice::OwnershipHandedOver {
            account_name,
            new_owner_name,
            ..
        } => (
            format!("You handed {account_name} over"),
            format!(
                "{new_owner_name} is now the owner of the account {account_name}.\n\
                 You remain an administrator; the subscription pages are now theirs.\n"
            ),
        ),
        Notice::EmailAdded {
            account_name,
            user_name,
            added,
            ..
        } => (
            format!("An address was added to your profile on {account_name}"),
            format!(
                "The address {added} was added to the profile of {user_name} on the account {account_name}.\n\
                 If you did not expect this, tell your account's administrators.\n"
            ),
        ),
        Notice::EmailVerification {
            account_id,
            account_name,
            token,
            ..
        } => (
            format!("Verify your address for {account_name}"),
            format!(
                "This address was added to a profile on the account {account_name}.\n\
                 Confirm it is yours here (the link works once):\n\n{base}/a/{account_id}/email/verify?token={token}\n"
            ),
        ),
        Notice::PrimaryEmailChanged {
            account_name,
            new_primary,
            ..
        } => (
            format!("Your primary address on {account_name} changed"),
            format!(
                "The primary address of your profile on {account_name} is now {new_primary}.\n\
                 Password resets now go to that address.\n"
            ),
        ),
        Notice::Custom { subject, body, .. } => (subject.clone(), body.clone()),
        Notice::IntegrationRevoked {
            account_name,
            integration_name,
            source,
            ..
        } => (
            format!("{integration_name} needs to be reauthorized on {account_name}"),
            format!(
                "{source} reported that the token of the integration {integration_name}, which you set up on {account_name}, was revoked.\n\
                 It needs to be reauthorized; until then it may not work.\n"
            ),
        ),
        Notice::InvoiceIssued {
            account_name,
            support_seats,
            sell_seats,
            amount_cents,
            currency,
            ..
        } => (
            format!("Invoice for {account_name}: {}", money(*amount_cents, currency, "en")),
            format!(
                "The subscription of {account_name} changed: {support_seats} agent seat(s), {sell_seats} Sell seat(s).\n\
                 It now amounts to {} a month. The invoices are on the Billing page.\n",
                money(*amount_cents, currency, "en")
            ),
        ),
        Notice::LicenceRequestDecided {
            account_name,
            product,
            granted_seats,
            expires_at,
            deny_reason,
            ..
        } => match (granted_seats, expires_at) {
            (Some(seats), Some(until)) => (
                format!("Temporary {} seats granted for {account_name}", product.as_str()),
                format!(
                    "Platform support granted {seats} temporary {} seat(s) to {account_name}, until {} (UTC).\n\
                     When they expire nobody loses access, but no new seat can be taken until usage fits.\n",
                    product.as_str(),
                    until.format("%Y-%m-%d %H:%M")
                ),
            ),
            _ => (
                format!("Temporary {} seats denied for {account_name}", product.as_str()),
                format!(
                    "Platform support denied the request for temporary {} seats: {}\n",
                    product.as_str(),
                    deny_reason.as_deref().unwrap_or("no reason given")
                ),
            ),
        },
    }
}

/// An amount as its reader writes it: "49.00 EUR", "49,00 EUR".
pub fn money(cents: u64, currency: &str, language: &str) -> String {
    let separator = if language == "fr" { ',' } else { '.' };
    format!("{}{separator}{:02} {currency}", cents / 100, cents % 100)
}

/// The product's name in French mails.
fn produit(product: &crate::domain::Product) -> &'static str {
    match product.as_str() {
        "sell" => "Sell",
        _ => "d'agent",
    }
}

fn french_text(notice: &Notice, base: &str) -> (String, String) {
    match notice {
        Notice::PasswordSet {
            user_name,
            account_name,
            account_id,
            token,
            ..
        } => (
            format!("Définissez votre mot de passe pour {account_name}"),
            format!(
                "Bonjour {user_name},\n\nVous avez reçu un accès au compte {account_name} ({account_id}).\n\
                 Définissez votre mot de passe ici (le lien ne sert qu'une fois) :\n\n{base}/a/{account_id}/password/set?token={token}\n\n\
                 Si vous ne vous y attendiez pas, ignorez ce message.\n"
            ),
        ),
        Notice::PasswordReset {
            account_name,
            account_id,
            token,
            ..
        } => (
            format!("Réinitialisez votre mot de passe pour {account_name}"),
            format!(
                "Quelqu'un a demandé à réinitialiser le mot de passe de cette adresse pour le compte {account_name} ({account_id}).\n\
                 Choisissez un nouveau mot de passe ici (le lien ne sert qu'une fois et expire bientôt) :\n\n\
                 {base}/a/{account_id}/password/reset?token={token}\n\n\
                 Si ce n'était pas vous, ignorez ce message : votre mot de passe ne change pas.\n"
            ),
        ),
        Notice::OwnershipReceived {
            account_name,
            previous_owner_name,
            integrations,
            ..
        } => {
            let mut body = format!(
                "{previous_owner_name} vous a désigné(e) propriétaire du compte {account_name}.\n\
                 Vous gérez désormais son abonnement : factures, moyen de paiement et licences.\n"
            );
            if !integrations.is_empty() {
                body.push_str(&format!(
                    "\n{} intégration(s) configurée(s) par l'ancien propriétaire doivent être réautorisée(s).\n",
                    integrations.len()
                ));
            }
            (format!("Vous êtes maintenant propriétaire de {account_name}"), body)
        }
        Notice::OwnershipHandedOver {
            account_name,
            new_owner_name,
            ..
        } => (
            format!("Vous avez transféré la propriété de {account_name}"),
            format!(
                "{new_owner_name} est maintenant propriétaire du compte {account_name}.\n\
                 Vous restez administrateur ; les pages de l'abonnement sont désormais les siennes.\n"
            ),
        ),
        Notice::EmailAdded {
            account_name,
            user_name,
            added,
            ..
        } => (
            format!("Une adresse a été ajoutée à votre profil sur {account_name}"),
            format!(
                "L'adresse {added} a été ajoutée au profil de {user_name} sur le compte {account_name}.\n\
                 Si vous ne vous y attendiez pas, prévenez les administrateurs de votre compte.\n"
            ),
        ),
        Notice::EmailVerification {
            account_id,
            account_name,
            token,
            ..
        } => (
            format!("Vérifiez votre adresse pour {account_name}"),
            format!(
                "Cette adresse a été ajoutée à un profil du compte {account_name}.\n\
                 Confirmez qu'elle est la vôtre ici (le lien ne sert qu'une fois) :\n\n{base}/a/{account_id}/email/verify?token={token}\n"
            ),
        ),
        Notice::PrimaryEmailChanged {
            account_name,
            new_primary,
            ..
        } => (
            format!("Votre adresse principale sur {account_name} a changé"),
            format!(
                "L'adresse principale de votre profil sur {account_name} est maintenant {new_primary}.\n\
                 Les réinitialisations de mot de passe sont désormais envoyées à cette adresse.\n"
            ),
        ),
        Notice::Custom { subject, body, .. } => (subject.clone(), body.clone()),
        Notice::IntegrationRevoked {
            account_name,
            integration_name,
            source,
            ..
        } => (
            format!("{integration_name} doit être réautorisée sur {account_name}"),
            format!(
                "{source} signale que le jeton de l'intégration {integration_name}, que vous avez configurée sur {account_name}, a été révoqué.\n\
                 Elle doit être réautorisée ; d'ici là, elle peut ne pas fonctionner.\n"
            ),
        ),
        Notice::InvoiceIssued {
            account_name,
            support_seats,
            sell_seats,
            amount_cents,
            currency,
            ..
        } => (
            format!("Facture pour {account_name} : {}", money(*amount_cents, currency, "fr")),
            format!(
                "L'abonnement de {account_name} a changé : {support_seats} licence(s) d'agent, {sell_seats} licence(s) Sell.\n\
                 Il s'élève désormais à {} par mois. Les factures sont sur la page Facturation.\n",
                money(*amount_cents, currency, "fr")
            ),
        ),
        Notice::LicenceRequestDecided {
            account_name,
            product,
            granted_seats,
            expires_at,
            deny_reason,
            ..
        } => match (granted_seats, expires_at) {
            (Some(seats), Some(until)) => (
                format!("Licences {} temporaires accordées pour {account_name}", produit(product)),
                format!(
                    "Le support de la plateforme a accordé {seats} licence(s) {} temporaire(s) à {account_name}, jusqu'au {} (UTC).\n\
                     À leur expiration, personne ne perd son accès, mais aucune licence ne peut être prise tant que l'usage dépasse le total.\n",
                    produit(product),
                    until.format("%d/%m/%Y %H:%M")
                ),
            ),
            _ => (
                format!("Licences {} temporaires refusées pour {account_name}", produit(product)),
                format!(
                    "Le support de la plateforme a refusé la demande de licences {} temporaires : {}\n",
                    produit(product),
                    deny_reason.as_deref().unwrap_or("aucun motif donné")
                ),
            ),
        },
    }
}

fn message(notice: &Notice, subject: String, body: String) -> OutboxMail {
    let now = Utc::now();
    OutboxMail {
        id: 0,
        to: notice.recipient().to_string(),
        subject,
        body,
        created_at: now,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        notice: None,
        language: None,
    }
}

/// A mail to queue with its change: the notice alone, rendered by the
/// outbox worker when it sends it (rendering stays off the writer), in
/// `language` when the commit knew it.
pub fn pending(notice: &Notice, language: Option<String>) -> OutboxMail {
    let mut mail = message(notice, String::new(), String::new());
    mail.notice = Some(notice.clone());
    mail.language = language;
    mail
}

pub enum Transport {
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    pub fn from_config(config: &MailConfig, mail_dir: PathBuf) -> anyhow::Result<Transport> {
        match config.transport {
            MailTransportKind::File => {
                std::fs::create_dir_all(mail_dir.join(MAIL_TMP_DIR)).with_context(|| {
                    format!("creating the mail directory {}", mail_dir.display())
                })?;
                Ok(Transport::File(mail_dir))
            }
            MailTransportKind::Smtp => {
                let s = &config.smtp;
                let builder = match s.security {
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                        .context("configuring SMTP over TLS")?,
                    SmtpSecurity::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                            .context("configuring SMTP with STARTTLS")?
                    }
                    SmtpSecurity::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                    }
                };
                let mut builder = builder
                    .port(s.port)
                    .timeout(Some(Duration::from_millis(s.timeout_ms)));
                if let (Some(user), Some(pass)) = (&s.username, &s.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
                }
                Ok(Transport::Smtp(builder.build()))
            }
        }
    }
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Clone)]
struct DeliveryError {
    message: String,
    permanent: bool,
}

/// The Message-ID of an outbox mail: its outbox id and the installation id
/// (unique across installations and data resets, the same on every attempt),
/// at the sender's domain.
pub fn message_id(outbox_id: u64, installation_id: &str, from: &Mailbox) -> String {
    format!(
        "<{outbox_id:016x}.{installation_id}@{}>",
        from.email.domain()
    )
}

fn build_message(
    mail: &OutboxMail,
    subject: String,
    body: String,
    from: &Mailbox,
    installation_id: &str,
) -> Result<Message, DeliveryError> {
    let permanent = |what: &str, e: &dyn std::fmt::Display| DeliveryError {
        message: format!("{what}: {e}"),
        permanent: true,
    };
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| permanent("bad recipient address", &e))?;
    // Given, so that lettre does not parse the From and To headers it has
    // just written back into addresses to find it (a tenth of the mail
    // worker's time).
    let envelope = lettre::address::Envelope::new(Some(from.email.clone()), vec![to.email.clone()])
        .map_err(|e| permanent("building the envelope", &e))?;
    let id = message_id(mail.id, installation_id, from);
    Message::builder()
        .from(from.clone())
        .to(to)
        .envelope(envelope)
        .subject(subject)
        .message_id(Some(id))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| permanent("building the message", &e))
}

/// SMTP sessions a batch of mails keeps open at once.
const SMTP_PARALLEL: usize = 8;

/// Delivers a batch of built messages (an error already for those that
/// could not be built): a file each, written together with one sync of
/// their contents and one of the folder, or over SMTP, several at once.
async fn deliver_batch(
    transport: &Transport,
    messages: Vec<Result<(String, Message), DeliveryError>>,
) -> Vec<Result<(), DeliveryError>> {
    match transport {
        Transport::File(dir) => {
            let files: Vec<Result<(String, Vec<u8>), DeliveryError>> = messages
                .into_iter()
                .map(|m| m.map(|(name, message)| (name, message.formatted())))
                .collect();
            let dir = dir.clone();
            let count = files.len();
            match tokio::task::spawn_blocking(move || write_mail_files(&dir, files)).await {
                Ok(results) => results,
                Err(e) => {
                    let error = DeliveryError {
                        message: format!("writing the mail files: {e}"),
                        permanent: false,
                    };
                    vec![Err(error); count]
                }
            }
        }
        Transport::Smtp(smtp) => {
            use futures_util::StreamExt;
            futures_util::stream::iter(messages)
                .map(|m| async move {
                    let (_, message) = m?;
                    smtp.send(message)
                        .await
                        .map(|_| ())
                        .map_err(|e| DeliveryError {
                            permanent: e.is_permanent(),
                            message: format!("SMTP: {e}"),
                        })
                })
                .buffered(SMTP_PARALLEL)
                .collect()
                .await
        }
    }
}

/// The folder inside the mail folder where a mail file is written before
/// it is named: hidden, so a reader of `*.eml` never sees it.
pub const MAIL_TMP_DIR: &str = ".tmp";

/// Writes mail files as a batch: each into the hidden `.tmp` folder, then
/// their contents synced to disk at once, then each moved to its own name
/// in the mail folder and the folder synced once. A reader never sees a
/// partial file, and a mail is settled (taken off the outbox) only once
/// its file and name are on disk: a crash before that writes it again,
/// under the same name. One sync per batch instead of one per file (file
/// creation and sync were a fifth of a transfer's time).
///
/// The files are created in the small `.tmp` folder, not beside the mail
/// already written, and named relative to the two folders' descriptors:
/// a look-up in a folder of 100,000 mails (its index, then a block of
/// names compared one by one) is made once per mail instead of three
/// times, and no path is walked from the root. That cut the kernel's work
/// per mail file by about a third (benches/analysis.md).
fn write_mail_files(
    dir: &std::path::Path,
    files: Vec<Result<(String, Vec<u8>), DeliveryError>>,
) -> Vec<Result<(), DeliveryError>> {
    let transient = |what: &str, e: &dyn std::fmt::Display| DeliveryError {
        message: format!("{what}: {e}"),
        permanent: false,
    };
    let folders = match MailFolders::open(dir) {
        Ok(folders) => folders,
        Err(e) => {
            let error = transient("opening the mail folder", &e);
            return files
                .into_iter()
                .map(|f| f.and(Err(error.clone())))
                .collect();
        }
    };
    let mut results: Vec<Result<String, DeliveryError>> = files
        .into_iter()
        .map(|file| {
            let (name, bytes) = file?;
            folders
                .write_tmp(&name, &bytes)
                .map_err(|e| transient("writing the mail file", &e))?;
            Ok(name)
        })
        .collect();
    if !results.iter().any(Result::is_ok) {
        return results.into_iter().map(|r| r.map(|_| ())).collect();
    }
    if let Err(e) = folders.sync_contents() {
        return fail_written(results, &transient("syncing the mail files", &e));
    }
    for result in results.iter_mut() {
        if let Ok(name) = result {
            if let Err(e) = folders.name(name) {
                *result = Err(transient("naming the mail file", &e));
            }
        }
    }
    if let Err(e) = folders.mail.sync_all() {
        return fail_written(results, &transient("syncing the mail folder", &e));
    }
    results.into_iter().map(|r| r.map(|_| ())).collect()
}

/// Every file of the batch that was written fails with `error` (its
/// content or name may not be on disk: written again next attempt).
fn fail_written(
    results: Vec<Result<String, DeliveryError>>,
    error: &DeliveryError,
) -> Vec<Result<(), DeliveryError>> {
    results
        .into_iter()
        .map(|r| r.and_then(|_| Err(error.clone())))
        .collect()
}

/// The mail folder and its `.tmp` folder, open for one batch.
struct MailFolders {
    mail: std::fs::File,
    tmp: std::fs::File,
}

impl MailFolders {
    fn open(dir: &std::path::Path) -> std::io::Result<MailFolders> {
        let tmp_path = dir.join(MAIL_TMP_DIR);
        let tmp = match std::fs::File::open(&tmp_path) {
            Ok(tmp) => tmp,
            // Removed while the daemon runs: made again, inside the mail
            // folder only (a mail folder that is gone fails the batch).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&tmp_path) {
                    // Another replica writing to this folder made it.
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
                std::fs::File::open(&tmp_path)?
            }
            Err(e) => return Err(e),
        };
        Ok(MailFolders {
            mail: std::fs::File::open(dir)?,
            tmp,
        })
    }

    /// `bytes` into `.tmp/<name>` (replacing what a crash left there).
    fn write_tmp(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::fd::{AsRawFd, FromRawFd};
        let name = c_name(name)?;
        // SAFETY: `name` is a NUL-terminated string that outlives the call;
        // the folder's descriptor is open while `self` lives.
        let fd = unsafe {
            libc::openat(
                self.tmp.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                // Read by the daemon's user alone (the umask is 077 too).
                0o600 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.write_all(bytes)?;
        // Without syncfs each file is synced on its own.
        #[cfg(not(target_os = "linux"))]
        file.sync_all()?;
        Ok(())
    }

    /// `.tmp/<name>` moved to `<name>` in the mail folder.
    fn name(&self, name: &str) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let name = c_name(name)?;
        // SAFETY: both names are NUL-terminated strings that outlive the
        // call; both descriptors are open while `self` lives.
        let done = unsafe {
            libc::renameat(
                self.tmp.as_raw_fd(),
                name.as_ptr(),
                self.mail.as_raw_fd(),
                name.as_ptr(),
            )
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The contents of the files written: on Linux one `syncfs` of the
    /// folder's file system covers them all (elsewhere `write_tmp` synced
    /// each file).
    fn sync_contents(&self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: syncfs only reads the descriptor, open while `self`
            // lives.
            if unsafe { libc::syncfs(self.tmp.as_raw_fd()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// A mail file's name for the C calls (the outbox names them by number:
/// no NUL can be in one).
fn c_name(name: &str) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(name).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a NUL in a mail file name",
        )
    })
}

/// The outbox: mails committed with their change, delivered after it is on
/// disk (see `queue::QueueWorker`), retried with doubling delays, dead
/// letters moved to `outbox_dead`.
pub struct Outbox {
    pub transport: Transport,
    pub from: String,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    /// Part of every Message-ID (unique across installations).
    pub installation_id: String,
    /// Base of the links in the mails it renders.
    pub public_url: String,
    /// Where each account's language is read when its mail is rendered
    /// (`None` in tests: the default for every account).
    pub accounts: Option<Store>,
    /// The language of mails of accounts that chose none
    /// (`[mail] default_language`).
    pub default_language: String,
}

impl Outbox {
    /// The language of `account_id`'s mails: its own, else the platform's.
    /// A store that cannot be read sends the mail in the default language
    /// rather than not at all.
    fn language_of(&self, account_id: &str) -> String {
        use crate::domain::StateView;
        self.accounts
            .as_ref()
            .and_then(|store| store.account(account_id).ok().flatten())
            .and_then(|account| account.language)
            .unwrap_or_else(|| self.default_language.clone())
    }

    /// Delivers a batch of mails: each built (rendered now when it was
    /// queued as a notice), then written or sent together.
    async fn deliver_mails(&self, mails: &[&OutboxMail]) -> Vec<Result<(), DeliveryError>> {
        // An account's language read once a batch (a transfer's two mails
        // share it), and only for mails whose commit did not know it: a
        // read per mail was half the mail worker's time on PostgreSQL,
        // where every transfer makes the cached account stale.
        let mut languages: HashMap<&str, String> = HashMap::new();
        // The sender is the same for every mail: parsed once a batch.
        let from: Result<Mailbox, DeliveryError> = self.from.parse().map_err(|e| DeliveryError {
            message: format!("bad sender address: {e}"),
            permanent: true,
        });
        let messages = mails
            .iter()
            .map(|mail| {
                let from = from.as_ref().map_err(Clone::clone)?;
                // A queued notice is rendered now (a mail of an earlier
                // version comes rendered); the item keeps its notice, not
                // the text.
                let message = match &mail.notice {
                    Some(notice) => {
                        let language = match &mail.language {
                            Some(language) => language.clone(),
                            None => languages
                                .entry(notice.account_id())
                                .or_insert_with(|| self.language_of(notice.account_id()))
                                .clone(),
                        };
                        let text = render(notice, &self.public_url, &language);
                        build_message(mail, text.subject, text.body, from, &self.installation_id)
                    }
                    None => build_message(
                        mail,
                        mail.subject.clone(),
                        mail.body.clone(),
                        from,
                        &self.installation_id,
                    ),
                }?;
                Ok((format!("{:020}.eml", mail.id), message))
            })
            .collect();
        deliver_batch(&self.transport, messages).await
    }
}

const RETRY_CAP_MS: u64 = 3_600_000;

impl Queue for Outbox {
    type Item = OutboxItem;
    const NAME: &'static str = "outbox";
    const QUEUE: QueueName = QueueName::Outbox;
    /// A pass's items (each the mails of one change) go 64 at a time: their
    /// files with one sync, their SMTP sends several at once, their
    /// settling in one commit.
    const BATCH: usize = 64;

    fn id(item: &OutboxItem) -> u64 {
        item.id
    }
    fn due_at(item: &OutboxItem) -> DateTime<Utc> {
        item.next_attempt_at
    }
    fn set_due_at(item: &mut OutboxItem, at: DateTime<Utc>) {
        item.next_attempt_at = at;
        for mail in &mut item.mails {
            mail.next_attempt_at = at;
        }
    }
    /// Each mail's failure is noted on it by the attempt, with its own
    /// error; an item none of whose mails was attempted (never the case
    /// today) gets the error on all of them.
    fn record_failure(item: &mut OutboxItem, error: &str) {
        if item.attempted.failed == 0 {
            for mail in &mut item.mails {
                mail.attempts += 1;
                mail.last_error = Some(error.to_string());
            }
        }
    }

    async fn attempt(&self, item: &mut OutboxItem) -> Attempt {
        let mut results = self.attempt_batch(std::slice::from_mut(item)).await;
        results.pop().unwrap_or(Attempt::Retry {
            error: "the mail was not attempted".into(),
            after: None,
        })
    }

    /// Every mail of the batch's items delivered together; a mail delivered
    /// or given up on leaves its item, the others stay in it for the
    /// item's next attempt, each with its own count and error.
    async fn attempt_batch(&self, items: &mut [OutboxItem]) -> Vec<Attempt> {
        let mails: Vec<&OutboxMail> = items.iter().flat_map(|item| item.mails.iter()).collect();
        let mut delivered = self.deliver_mails(&mails).await.into_iter();
        items
            .iter_mut()
            .map(|item| {
                let mut attempted = crate::store::MailsAttempted::default();
                let mut retry = None;
                let mut kept = Vec::new();
                for mut mail in std::mem::take(&mut item.mails) {
                    let result = delivered.next().unwrap_or_else(|| {
                        Err(DeliveryError {
                            message: "the mail was not attempted".into(),
                            permanent: false,
                        })
                    });
                    match result {
                        Ok(()) => {
                            tracing::info!(outbox_id = mail.id, "mail delivered");
                            attempted.delivered += 1;
                        }
                        Err(e) => {
                            attempted.failed += 1;
                            mail.attempts += 1;
                            mail.last_error = Some(e.message.clone());
                            if e.permanent {
                                tracing::error!(outbox_id = mail.id, error = %e.message, "mail given up");
                                attempted.given_up.push(mail);
                            } else {
                                retry.get_or_insert(e.message);
                                kept.push(mail);
                            }
                        }
                    }
                }
                item.mails = kept;
                item.attempted = attempted;
                match retry {
                    Some(error) => Attempt::Retry { error, after: None },
                    // Nothing left to retry: the item is done, its mails
                    // given up on go to the dead letters as it is settled.
                    None => Attempt::Done,
                }
            })
            .collect()
    }

    /// Doubling from `retry_base_ms`, capped at one hour; none once a mail
    /// of the item has had `max_attempts` (its mails fail and are retried
    /// together).
    fn retry_in(&self, item: &OutboxItem, _wish: Option<Duration>) -> Option<Duration> {
        let attempts = item.mails.iter().map(|m| m.attempts).max().unwrap_or(0);
        if attempts >= self.max_attempts {
            return None;
        }
        let shift = attempts.saturating_sub(1).min(20);
        let delay_ms = self
            .retry_base_ms
            .saturating_mul(1 << shift)
            .min(RETRY_CAP_MS);
        Some(Duration::from_millis(delay_ms))
    }

    /// Mails given up on move to the dead letters now, under their own ids;
    /// the others are kept for their next attempt.
    fn reschedule(&self, mut item: OutboxItem) -> Vec<Write> {
        let mut writes = dead_letters(std::mem::take(&mut item.attempted.given_up));
        writes.push(Store::queue_put(QueueName::Outbox, item.id, &item));
        writes
    }

    /// Counts mails, not items.
    fn tally(item: &OutboxItem, _: &Attempt, how: Option<&Settled>) -> Tally {
        let left_dead = match how {
            Some(Settled::Dead) => item.mails.len() as u64,
            _ => 0,
        };
        Tally {
            done: item.attempted.delivered,
            failures: item.attempted.failed,
            dead: item.attempted.given_up.len() as u64 + left_dead,
        }
    }

    /// A delivery that comes back after a crash (its removal not yet
    /// committed) rewrites the same file; SMTP receivers drop the duplicate
    /// Message-ID. Mails given up on (and, when the item is, those left)
    /// move to `outbox_dead` one by one, under their own ids.
    fn settle(
        &self,
        _: &Store,
        mut item: OutboxItem,
        how: Settled,
    ) -> Result<Vec<Write>, StoreError> {
        let mut dead = std::mem::take(&mut item.attempted.given_up);
        if let Settled::Dead = how {
            dead.append(&mut item.mails);
        }
        let mut writes = vec![Store::queue_remove(QueueName::Outbox, item.id)];
        writes.extend(dead_letters(dead));
        Ok(writes)
    }
}

/// Mails given up on, each to `outbox_dead` under its own id.
fn dead_letters(mails: Vec<OutboxMail>) -> Vec<Write> {
    mails
        .iter()
        .map(|mail| Store::queue_put(QueueName::OutboxDead, mail.id, mail))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Queue;

    fn outbox(dir: &std::path::Path) -> Outbox {
        Outbox {
            transport: Transport::File(dir.to_path_buf()),
            from: "admind <admind@example.test>".into(),
            max_attempts: 3,
            retry_base_ms: 10,
            installation_id: "0".repeat(32),
            public_url: "https://admin.example.test".into(),
            accounts: None,
            default_language: "en".into(),
        }
    }

    #[tokio::test]
    async fn a_queued_notice_is_rendered_when_sent_and_a_rendered_mail_of_an_earlier_version_still_goes(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let notice = Notice::PasswordSet {
            to: "ana@acme.test".into(),
            user_name: "Ana".into(),
            account_name: "Acme".into(),
            account_id: "acc_1".into(),
            token: "tok".into(),
        };
        let mut queued = pending(&notice, None);
        queued.id = 1;
        assert!(
            queued.subject.is_empty(),
            "nothing rendered on the commit path"
        );
        let mut earlier = render(&notice, "https://old.example.test", "en");
        earlier.id = 2;
        let outbox = outbox(dir.path());
        for mail in [queued, earlier] {
            assert!(matches!(
                outbox.attempt(&mut item_of(vec![mail])).await,
                crate::queue::Attempt::Done
            ));
        }
        let read = |n: u64| {
            std::fs::read_to_string(dir.path().join(format!("{n:020}.eml")))
                .unwrap()
                .replace("=\r\n", "")
                .replace("=3D", "=")
        };
        let now = read(1);
        assert!(now.contains("Subject: Set your password for Acme"), "{now}");
        assert!(
            now.contains("https://admin.example.test/a/acc_1/password/set?token=tok"),
            "{now}"
        );
        assert!(
            read(2).contains("https://old.example.test/a/acc_1/"),
            "sent as it was queued"
        );
    }

    /// A notice queued with the language its commit knew is rendered in
    /// it, without reading the account (this outbox has no store to read,
    /// and its platform default is English); one queued without goes in
    /// the language the outbox finds, here the default.
    #[tokio::test]
    async fn a_notice_is_rendered_in_the_language_its_commit_knew() {
        let dir = tempfile::tempdir().unwrap();
        let notice = |to: &str| Notice::PasswordSet {
            to: to.into(),
            user_name: "Ana".into(),
            account_name: "Acme".into(),
            account_id: "acc_1".into(),
            token: "tok".into(),
        };
        let mut mails = vec![
            pending(&notice("fr@acme.test"), Some("fr".into())),
            pending(&notice("en@acme.test"), None),
        ];
        mails[0].id = 1;
        mails[1].id = 2;
        let outbox = outbox(dir.path());
        let mut items: Vec<OutboxItem> = mails.into_iter().map(|m| item_of(vec![m])).collect();
        let sent = outbox.attempt_batch(&mut items).await;
        assert!(sent
            .iter()
            .all(|a| matches!(a, crate::queue::Attempt::Done)));
        let read =
            |n: u64| std::fs::read_to_string(dir.path().join(format!("{n:020}.eml"))).unwrap();
        let french = read(1);
        assert!(french.contains("Bonjour Ana"), "{french}");
        assert!(read(2).contains("Subject: Set your password for Acme"));
    }

    /// A batch of mails: every file under its own name with its whole
    /// text, no temporary file left; one bad address gives that mail up
    /// and no other; a folder that cannot be written fails the batch's
    /// mails for a retry (none is settled as sent).
    #[tokio::test]
    async fn a_batch_of_mails_is_written_whole_and_a_failed_write_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = outbox(dir.path());
        let mut mails: Vec<OutboxItem> = (1..=5u64)
            .map(|n| {
                let to = if n == 3 {
                    "not an address".into()
                } else {
                    format!("m{n}@acme.test")
                };
                item_of(vec![rendered(n, to)])
            })
            .collect();
        let results = outbox.attempt_batch(&mut mails).await;
        assert_eq!(results.len(), 5);
        for (n, result) in (1..=5u64).zip(&results) {
            let path = dir.path().join(format!("{n:020}.eml"));
            if n == 3 {
                // Given up on: off its item, which is done, to the dead
                // letters as it is settled.
                assert!(matches!(result, Attempt::Done));
                assert_eq!(mails[2].attempted.given_up.len(), 1);
                assert!(mails[2].mails.is_empty());
                assert!(!path.exists());
            } else {
                assert!(matches!(result, Attempt::Done));
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.contains(&format!("m{n}@acme.test")), "{text}");
                assert!(text.contains(&format!("tok{n}")), "{text}");
            }
        }
        let names_in = |dir: &std::path::Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let mut names = names_in(dir.path());
        names.sort();
        // The mails, and the folder they were written in before being
        // named, left empty.
        assert_eq!(names.len(), 5, "{names:?}");
        assert_eq!(names[0], MAIL_TMP_DIR);
        assert!(names[1..]
            .iter()
            .all(|n| n.ends_with(".eml") && !n.starts_with('.')));
        assert_eq!(
            names_in(&dir.path().join(MAIL_TMP_DIR)),
            Vec::<String>::new()
        );

        let mut mails: Vec<OutboxItem> = (10..12u64)
            .map(|n| item_of(vec![rendered(n, format!("m{n}@acme.test"))]))
            .collect();
        let gone = outbox_in(dir.path().join("no-such-folder"));
        let results = gone.attempt_batch(&mut mails).await;
        assert!(results.iter().all(|r| matches!(r, Attempt::Retry { .. })));
        assert!(mails.iter().all(|item| item.mails.len() == 1));
        assert!(!dir.path().join("no-such-folder").exists());

        // The `.tmp` folder removed while the daemon runs is made again
        // inside the mail folder, and the mails still go.
        std::fs::remove_dir(dir.path().join(MAIL_TMP_DIR)).unwrap();
        let again = outbox.attempt_batch(&mut mails).await;
        assert!(again.iter().all(|r| matches!(r, Attempt::Done)));
        assert!(dir.path().join(format!("{:020}.eml", 10)).exists());
        assert!(dir.path().join(MAIL_TMP_DIR).is_dir());
    }

    /// A mail rendered (as an earlier version queued it) to `to`, with
    /// outbox id `n` and token `tok<n>`.
    fn rendered(n: u64, to: String) -> OutboxMail {
        let mut mail = render(
            &Notice::PasswordSet {
                to,
                user_name: "Ana".into(),
                account_name: "Acme".into(),
                account_id: "acc_1".into(),
                token: format!("tok{n}"),
            },
            "https://admin.example.test",
            "en",
        );
        mail.id = n;
        mail
    }

    /// An outbox item of `mails`, numbered as they are.
    fn item_of(mails: Vec<OutboxMail>) -> OutboxItem {
        let mut ids = mails.iter().map(|m| m.id).collect::<Vec<_>>().into_iter();
        OutboxItem::numbered(mails, &mut || Ok(ids.next().unwrap_or(0)))
            .unwrap()
            .unwrap()
    }

    fn mail_to(id: u64, to: &str) -> OutboxMail {
        let mut mail = pending(
            &Notice::PasswordSet {
                to: to.into(),
                user_name: "Ana".into(),
                account_name: "Acme".into(),
                account_id: "acc_1".into(),
                token: format!("tok{id}"),
            },
            Some("en".into()),
        );
        mail.id = id;
        mail
    }

    /// A change's mails wait as one item and are delivered each under its
    /// own id; one given up on leaves for the dead letters under its id
    /// while the other is delivered; mails that fail are retried together,
    /// each with its own count, and counted one by one in the metrics.
    #[tokio::test]
    async fn a_changes_mails_wait_as_one_item_and_each_is_delivered_or_given_up_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = outbox(dir.path());
        let mut item = item_of(vec![
            mail_to(7, "new@acme.test"),
            mail_to(8, "not an address"),
        ]);
        assert_eq!(item.id, 7, "named after its first mail");
        let result = outbox.attempt(&mut item).await;
        assert!(matches!(result, Attempt::Done));
        assert!(dir.path().join(format!("{:020}.eml", 7)).exists());
        assert!(!dir.path().join(format!("{:020}.eml", 8)).exists());
        let tally = Outbox::tally(&item, &result, Some(&Settled::Done));
        assert_eq!((tally.done, tally.failures, tally.dead), (1, 1, 1));
        let store = Store::new(crate::store::memory::MemoryBackend::default());
        let writes = outbox.settle(&store, item, Settled::Done).unwrap();
        let dead: Vec<String> = writes.iter().map(|w| format!("{w:?}")).collect();
        assert_eq!(writes.len(), 2, "{dead:?}");
        assert!(
            dead[0].contains("QueueRemove") && dead[0].contains('7'),
            "{dead:?}"
        );
        assert!(
            dead[1].contains("OutboxDead") && dead[1].contains("id: 8"),
            "{dead:?}"
        );

        // Both mails fail for now: both stay, each counted once, and the
        // item is written again whole.
        let gone = outbox_in(dir.path().join("no-such-folder"));
        let mut item = item_of(vec![mail_to(9, "a@acme.test"), mail_to(10, "b@acme.test")]);
        let result = gone.attempt(&mut item).await;
        assert!(matches!(result, Attempt::Retry { .. }));
        assert!(item
            .mails
            .iter()
            .all(|m| m.attempts == 1 && m.last_error.is_some()));
        Outbox::record_failure(&mut item, "again");
        assert!(
            item.mails.iter().all(|m| m.attempts == 1),
            "a failure is counted once, by the attempt"
        );
        assert_eq!(Outbox::tally(&item, &result, None).failures, 2);
        let writes = gone.reschedule(item.clone());
        assert_eq!(writes.len(), 1);
        // Given up on once out of attempts: every mail left is dead.
        let tally = Outbox::tally(&item, &result, Some(&Settled::Dead));
        assert_eq!(tally.dead, 2);
        assert_eq!(gone.settle(&store, item, Settled::Dead).unwrap().len(), 3);
    }

    /// An outbox value written by an earlier version (one mail on its
    /// own) is read as an item of that mail.
    #[test]
    fn a_mail_queued_alone_by_an_earlier_version_reads_as_an_item_of_one() {
        let mail = mail_to(42, "ana@acme.test");
        let stored = crate::store::codec::encode(&mail);
        let item: OutboxItem = crate::store::codec::decode(&stored).unwrap();
        assert_eq!((item.id, item.mails.len()), (42, 1));
        assert_eq!(item.mails[0], mail);
        let again: OutboxItem =
            crate::store::codec::decode(&crate::store::codec::encode(&item)).unwrap();
        assert_eq!(again, item);
    }

    fn outbox_in(dir: std::path::PathBuf) -> Outbox {
        Outbox {
            transport: Transport::File(dir),
            ..outbox(std::path::Path::new("."))
        }
    }
}
