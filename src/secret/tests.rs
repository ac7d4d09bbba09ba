use super::*;
use crate::finding::{Classification, Severity};

/// A key shaped like an abuse.ch Auth-Key (48 hex characters).
const HEX: &str = "3f9a0c7be1d24f6a8b5c0d1e2f3a4b5c6d7e8f9012345678";

/// Every run of `min` or more characters of `key` found in `text`, ignoring case.
fn fragments(text: &str, key: &str, min: usize) -> Vec<String> {
    let (t, k) = (text.to_ascii_lowercase(), key.to_ascii_lowercase());
    let mut out = Vec::new();
    for i in 0..k.len() {
        for j in i + min..=k.len() {
            if let Some(piece) = k.get(i..j)
                && t.contains(piece)
            {
                out.push(piece.to_string());
            }
        }
    }
    out
}

#[test]
fn never_printed() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?} {s}"), format!("{REDACTED} {REDACTED}"));
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        format!("\"{REDACTED}\"")
    );
    assert_eq!(
        s.scrub("https://x/?key=hunter2"),
        format!("https://x/?key={REDACTED}")
    );
}

#[test]
fn scrubs_encoded_forms() {
    let s = Secret::new("k3y/with+odd chars?");
    let url = "https://x/?key=k3y%2Fwith%2Bodd%20chars%3F&q=k3y%2fwith%2bodd+chars%3f";
    assert!(!s.scrub(url).contains("k3y"), "{}", s.scrub(url));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode("k3y/with+odd chars?");
    let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("k3y/with+odd chars?");
    let text = format!("Authorization: Basic {b64}; token {urlsafe}.");
    assert_eq!(
        s.scrub(&text),
        format!("Authorization: Basic {REDACTED}; token {REDACTED}.")
    );
}

#[test]
fn scrubs_json_escaped_and_case_changed_echoes() {
    let s = Secret::new("AbC/dEf0123456789+xyz");
    // `\/` is how many JSON writers escape a slash; the base64 form holds slashes too.
    let json = r#"{"error":"bad key AbC\/dEf0123456789+xyz"}"#;
    assert_eq!(
        s.scrub(json),
        format!(r#"{{"error":"bad key {REDACTED}"}}"#)
    );
    let hex = Secret::new(HEX);
    let upper = format!("KEY {} REFUSED", HEX.to_ascii_uppercase());
    assert_eq!(hex.scrub(&upper), format!("KEY {REDACTED} REFUSED"));
}

#[test]
fn a_key_cut_by_an_excerpt_is_removed_from_its_first_six_characters_on() {
    let s = Secret::new(HEX);
    for cut in 0..=HEX.len() {
        let text = format!("HTTP 400: invalid key {}", &HEX[..cut]);
        let got = s.scrub(&text);
        assert!(
            fragments(&got, HEX, MIN_FRAGMENT).is_empty(),
            "{cut}: {got}"
        );
        if cut < MIN_FRAGMENT {
            assert_eq!(got, text, "a piece shorter than {MIN_FRAGMENT} stays");
        }
    }
    // Scrubbing first, then clipping, leaves nothing at any length.
    let body = format!("{{\"error\": \"{}{HEX}\"}}", "x".repeat(150));
    for n in 0..body.len() {
        let clipped: String = s.scrub(&body).chars().take(n).collect();
        assert!(fragments(&clipped, HEX, 3).is_empty(), "{n}: {clipped}");
    }
}

#[test]
fn ordinary_words_of_a_readable_secret_stay() {
    // Only the *start* of a form is taken for a cut key: a secret ending in a word leaves that
    // word alone elsewhere in a message.
    let s = Secret::new("test-secret-9f1e77");
    assert_eq!(
        s.scrub("check sources.shadowserver.api_key and secret"),
        "check sources.shadowserver.api_key and secret"
    );
}

#[test]
fn scrubbing_keeps_multibyte_text_whole() {
    let s = Secret::new("ключ-секрет-123456");
    let got = s.scrub("ошибка: ключ-секрет-123456 и ключ-с");
    assert_eq!(got, format!("ошибка: {REDACTED} и {REDACTED}"));
}

fn finding() -> Finding {
    let mut f = Finding::new(
        "feodotracker",
        "ipblocklist",
        Classification::new("malicious-code", "c2-server", "feodo"),
        Severity::High,
    );
    f.ip = Some("192.0.2.1".parse().unwrap());
    f.seal();
    f
}

#[test]
fn keys_in_data_fields_are_masked_and_the_finding_resealed() {
    let sc = Scrubber::new(&[&Secret::new(HEX)]);
    let mut clean = finding();
    assert!(!sc.mask_finding(&mut clean));
    let mut f = finding();
    f.extra.insert(
        "malware".into(),
        serde_json::json!(format!("Emotet {}", HEX.to_ascii_uppercase())),
    );
    f.extra
        .insert("tags".into(), serde_json::json!(["a", HEX, {"k": HEX}]));
    f.url = Some(format!("http://192.0.2.1/x?k={HEX}"));
    let before = f.fingerprint.clone();
    assert!(sc.view_holds(&f.view()));
    assert!(sc.mask_finding(&mut f));
    let text = serde_json::to_string(&f).unwrap();
    assert!(fragments(&text, HEX, MIN_FRAGMENT).is_empty(), "{text}");
    assert!(text.contains(&format!("Emotet {REDACTED}")), "{text}");
    assert_ne!(f.fingerprint, before, "the URL is part of the identity");
    assert!(!sc.view_holds(&f.view()));
    // A mere prefix of a key in data is a value, not a key.
    let mut g = finding();
    g.extra.insert("hash".into(), serde_json::json!(&HEX[..20]));
    assert!(!sc.mask_finding(&mut g));
}

#[test]
fn resolves_from_env() {
    // SAFETY: test-only env var with a unique name.
    unsafe { std::env::set_var("OUTWATCH_TEST_SECRET_RESOLVE", "abcdefgh-long-enough") };
    let r = resolve(&None, &Some("OUTWATCH_TEST_SECRET_RESOLVE".into()), "k").unwrap();
    assert_eq!(r.unwrap().expose(), "abcdefgh-long-enough");
    let e = resolve(&None, &Some("OUTWATCH_TEST_SECRET_MISSING".into()), "k").unwrap_err();
    assert!(e.to_string().contains("OUTWATCH_TEST_SECRET_MISSING"));
    assert!(resolve(&Some(Secret::new("a")), &Some("X".into()), "k").is_err());
}

#[test]
fn a_key_too_short_to_be_real_is_refused_with_the_minimum() {
    let e = resolve(&Some(Secret::new("x")), &None, "sources.hibp.api_key").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("sources.hibp.api_key") && msg.contains("at least 32"),
        "{msg}"
    );
    // SAFETY: test-only env var with a unique name.
    unsafe { std::env::set_var("OUTWATCH_TEST_SHORT_AUTH_KEY", "abc") };
    let e = resolve(
        &None,
        &Some("OUTWATCH_TEST_SHORT_AUTH_KEY".into()),
        "sources.urlhaus.auth_key",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("$OUTWATCH_TEST_SHORT_AUTH_KEY") && e.to_string().contains("16"),
        "{e}"
    );
    assert!(resolve(&Some(Secret::new(HEX)), &None, "sources.urlhaus.auth_key").is_ok());
}
