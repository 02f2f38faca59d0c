//! The webhook verifier on arbitrary headers and bodies: it never panics,
//! only a correct signature passes, and what `sign` makes always verifies.
#![no_main]

use admind::webhooks::WebhookSource;
use admind::webhooks::{decode_secret, sign, Verifier};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fuzz_target!(|data: &[u8]| {
    let verifier = Verifier::from_config(&[WebhookSource { name: "crm".into(), secrets: vec![SECRET.into()] }]).unwrap();
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (id, ts, sig, body) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or("").as_bytes());
    let now = 1_700_000_000;
    // Arbitrary headers: must not panic; a pass needs the real signature.
    if verifier.verify("crm", id, ts, sig, body, now).is_ok() {
        let key = decode_secret(SECRET).unwrap();
        let ts: i64 = ts.unwrap().trim().parse().unwrap();
        assert!(sig.unwrap().split(' ').any(|s| s == sign(&key, id.unwrap(), ts, body)));
    }
    // Round trip on the arbitrary body and id.
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        let key = decode_secret(SECRET).unwrap();
        let good = sign(&key, id, now, data);
        assert!(verifier.verify("crm", Some(id), Some(&now.to_string()), Some(&good), data, now).is_ok());
        assert!(verifier.verify("other", Some(id), Some(&now.to_string()), Some(&good), data, now).is_err());
    }
});
