//! Request bodies as the HTTP layer reads them, then the core's validation:
//! arbitrary bytes never panic, whatever parses goes through the same limits.
#![no_main]

use admind::domain::validate;
use admind::http::dto::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = serde_json::from_slice::<CreateAccountRequest>(data) {
        let _ = validate::name("name", &b.name);
        let _ = validate::name("owner.name", &b.owner.name);
        let _ = validate::email("owner.email", &b.owner.email);
        let _ = validate::seats("support_seats", b.support_seats);
    }
    if let Ok(b) = serde_json::from_slice::<AddMemberRequest>(data) {
        let _ = validate::email("email", &b.email);
        let _ = validate::name("name", &b.name);
    }
    if let Ok(b) = serde_json::from_slice::<PasswordResetConfirm>(data) {
        let _ = validate::password(&b.password);
    }
    if let Ok(b) = serde_json::from_slice::<InvestigationRequest>(data) {
        let _ = validate::note("note", &b.note);
    }
    let _ = serde_json::from_slice::<SeatsRequest>(data);
    let _ = serde_json::from_slice::<TransferRequest>(data);
    let _ = serde_json::from_slice::<SignInRequest>(data);
    let _ = serde_json::from_slice::<LicenceRequestBody>(data);
    let _ = serde_json::from_slice::<GrantRequest>(data);
    let _ = serde_json::from_slice::<SellUserRequest>(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = validate::email("e", s);
        let _ = validate::name("n", s);
    }
});
