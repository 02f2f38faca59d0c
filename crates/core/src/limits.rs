//! Every limit the core applies, in one place, named with its unit. The
//! daemon's own limits (bodies, connections, hashing, scripts) live in its
//! configuration; these are the ones the rules themselves enforce.

// Text a client sends (characters).
pub const NAME_MAX_CHARS: usize = 200;
pub const EMAIL_MAX_CHARS: usize = 254;
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 256;
pub const NOTE_MAX_CHARS: usize = 4000;
pub const TOKEN_MAX_CHARS: usize = 128;
pub const POLICY_SUBJECT_MAX_CHARS: usize = 200;
pub const POLICY_BODY_MAX_CHARS: usize = 10_000;
pub const WEBHOOK_ID_MAX_CHARS: usize = 256;
pub const WEBHOOK_TYPE_MAX_CHARS: usize = 200;
/// Random hex digits after the prefix of every id admind issues
/// (`acc_`, `usr_`, `int_`, `lic_`, `inv_`: 80 random bits).
pub const ID_HEX_DIGITS: usize = 20;

// Counts.
pub const SEATS_MAX: u32 = 1_000_000;
pub const EMAILS_PER_USER_MAX: usize = 10;
pub const PENDING_LICENCE_REQUESTS_MAX: usize = 20;
/// Unexpired temporary grants per account.
pub const ACTIVE_GRANTS_MAX: usize = 100;
/// Items of one page of a list.
pub const PAGE_LIMIT_MAX: usize = 200;
pub const PAGE_LIMIT_DEFAULT: usize = 50;
/// Accounts one search of the account list looks through, at most (names
/// are not indexed: a search is a bounded scan; page on with `after`).
pub const ACCOUNT_SEARCH_SCAN_MAX: usize = 10_000;
/// Owner candidates listed (R04).
pub const CANDIDATES_MAX: usize = 1000;
pub const SELL_USERS_MAX: usize = 1000;
/// Directory (SCIM) tokens per account.
pub const SCIM_TOKENS_PER_ACCOUNT_MAX: usize = 10;

// Durations.
pub const GRANT_DURATION_MAX_DAYS: i64 = 366;
pub const EMAIL_VERIFICATION_TTL_HOURS: i64 = 24;
/// A directory token's last use is kept to this precision (a busy
/// directory does not rewrite its account on every request).
pub const SCIM_TOKEN_USE_PRECISION_MINUTES: i64 = 10;
