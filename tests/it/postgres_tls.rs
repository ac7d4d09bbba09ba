//! TLS to PostgreSQL (`[store] url = "...?sslmode=..."`, rustls): against the test server
//! (whether its `ssl` is on or off, each case checks what must follow), and against a fake
//! server on loopback that speaks PostgreSQL's `SSLRequest` and then TLS with a certificate of
//! a CA made here (rcgen), so the handshake and the certificate checks of `verify-ca` and
//! `verify-full` are tested without a configured server. Skipped without a server, except under
//! `CI=true` (see `store_contract/postgres.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use outwatch::store::Store;
use outwatch::store::postgres::{PgStore, Target};

use crate::store_contract::postgres::{Schema, url};

/// What the fake server says once the TLS handshake is done (as a FATAL error).
const FAKE_DONE: &str = "fake server: TLS handshake done";

/// A CA and a server certificate it signed for `names`; the CA's PEM and the server's
/// certificate and key for rustls.
fn certificates(
    names: &[&str],
) -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "outwatch test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (ca.pem(), cert.der().clone(), key)
}

/// A fake server on loopback: answers `SSLRequest` with `S` and a TLS handshake with `cert`
/// (or with `N` when `cert` is `None`), reads the start-up message, says [`FAKE_DONE`].
fn fake_server(
    cert: Option<(
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let config = cert.map(|(c, k)| {
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![c], k)
            .unwrap(),
        )
    });
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = serve(s, config);
            });
        }
    });
    port
}

fn serve(mut s: TcpStream, config: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<()> {
    let mut req = [0u8; 8];
    s.read_exact(&mut req)?;
    // SSLRequest: length 8, code 80877103; anything else (no TLS asked for): hang up.
    if req != [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
        return Ok(());
    }
    let Some(config) = config else {
        s.write_all(b"N")?;
        // A client that goes on without TLS sends its start-up message in the clear.
        return finish(&mut s);
    };
    s.write_all(b"S")?;
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, s);
    finish(&mut tls)?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// Reads the start-up message and answers it with a FATAL error saying [`FAKE_DONE`].
fn finish(s: &mut (impl Read + Write)) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    s.read_exact(&mut rest)?;
    let mut fields = Vec::new();
    for (k, v) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28000"),
        (b'M', FAKE_DONE),
    ] {
        fields.push(k);
        fields.extend_from_slice(v.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    msg.extend_from_slice(&fields);
    s.write_all(&msg)?;
    s.flush()
}

/// The error of opening a store at `url` (it must fail).
fn open_error(url: String) -> String {
    let target = Target {
        schema: Some("t_tls".into()),
        ..Target::url(url)
    };
    let started = std::time::Instant::now();
    let e = PgStore::open(&target).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "it hung"
    );
    format!(
        "{e}: {:?}",
        std::error::Error::source(&e).map(|s| s.to_string())
    )
}

fn write_ca(dir: &Path, pem: &str) -> String {
    let p = dir.join("ca.pem");
    std::fs::write(&p, pem).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn verify_full_and_verify_ca_check_the_certificate_of_a_tls_server() {
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(&["localhost", "127.0.0.1"]);
    let ca = write_ca(d.path(), &ca);
    let port = fake_server(Some((cert, key)));
    let url = |host: &str, mode: &str, root: &str| {
        format!(
            "postgres://outwatch:Sekr1tPassw0rd@{host}:{port}/x?sslmode={mode}&sslrootcert={root}"
        )
    };
    // The handshake succeeds, the certificate is checked: the server's own message comes back.
    for (host, mode) in [
        ("127.0.0.1", "verify-full"),
        ("localhost", "verify-full"),
        ("127.0.0.1", "verify-ca"),
    ] {
        let e = open_error(url(host, mode, &ca));
        assert!(e.contains(FAKE_DONE), "{host} {mode}: {e}");
        assert!(!e.contains("Sekr1t"), "{e}");
    }
    // `require` without a root: encrypted, the certificate not checked (as libpq).
    let e = open_error(format!(
        "postgres://outwatch@127.0.0.1:{port}/x?sslmode=require"
    ));
    assert!(e.contains(FAKE_DONE), "{e}");

    // A certificate of another CA: refused by verify-ca and verify-full, and by require with
    // a root (which libpq makes verify-ca).
    let (other_ca, _, _) = certificates(&["localhost"]);
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other_ca = write_ca(&other, &other_ca);
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = open_error(url("127.0.0.1", mode, &other_ca));
        assert!(
            e.contains("TLS") && e.contains("certificate") && !e.contains(FAKE_DONE),
            "{mode}: {e}"
        );
        assert!(!e.contains("Sekr1t"), "{e}");
    }

    // A certificate for other names: verify-full refuses it, verify-ca takes it.
    let (ca2, cert, key) = certificates(&["db.example.org"]);
    let d2 = tempfile::tempdir().unwrap();
    let ca2 = write_ca(d2.path(), &ca2);
    let port2 = fake_server(Some((cert, key)));
    let url2 = |mode: &str| {
        format!(
            "host=127.0.0.1 port={port2} user=outwatch dbname=x sslmode={mode} sslrootcert='{ca2}'"
        )
    };
    let e = open_error(url2("verify-full"));
    assert!(
        e.contains("TLS") && e.contains("not valid for name") && !e.contains(FAKE_DONE),
        "{e}"
    );
    let e = open_error(url2("verify-ca"));
    assert!(e.contains(FAKE_DONE), "{e}");
}

#[test]
fn require_against_a_server_without_tls_fails_naming_tls_and_prefer_goes_on_without() {
    let port = fake_server(None);
    let e = open_error(format!(
        "postgres://outwatch:Sekr1tPassw0rd@127.0.0.1:{port}/x?sslmode=require"
    ));
    assert!(
        e.contains("TLS") && !e.contains(FAKE_DONE) && !e.contains("Sekr1t"),
        "{e}"
    );
    for mode in ["prefer", "allow"] {
        let e = open_error(format!(
            "postgres://outwatch@127.0.0.1:{port}/x?sslmode={mode}"
        ));
        assert!(e.contains(FAKE_DONE), "{mode}: {e}");
    }
    // `disable` sends no SSLRequest at all: the fake (which wants one) hangs up.
    let e = open_error(format!(
        "postgres://outwatch@127.0.0.1:{port}/x?sslmode=disable"
    ));
    assert!(!e.contains(FAKE_DONE), "{e}");
}

#[test]
fn a_bad_sslrootcert_is_a_clear_error_of_the_configuration() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("pg.toml");
    std::fs::write(
        &cfg,
        "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n\
         [store]\npath = \"data\"\nbackend = \"postgres\"\n\
         url = \"postgres://outwatch:Sekr1tPassw0rd@127.0.0.1:1/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem\"\n",
    )
    .unwrap();
    for cmd in ["check-config", "status"] {
        let out = crate::support::cli(d.path())
            .arg("--config")
            .arg(&cfg)
            .arg(cmd)
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}: {all}");
        assert!(
            all.contains("sslrootcert /nonexistent/ca.pem cannot be read"),
            "{cmd}: {all}"
        );
        assert!(!all.contains("Sekr1t"), "{all}");
    }
}

/// The test server: `require` works when its `ssl` is on (and the session is encrypted), and
/// fails naming TLS when it is off; `disable` never encrypts; a CA that did not sign its
/// certificate is refused by `verify-full`.
#[test]
fn the_test_server_over_tls_when_it_offers_it() {
    let Some(schema) = Schema::new() else { return };
    let mut pg = postgres::Client::connect(&url(), postgres::NoTls).unwrap();
    let ssl_on = pg.query_one("SHOW ssl", &[]).unwrap().get::<_, String>(0) == "on";
    let base = "postgres://postgres@127.0.0.1:5432/test";
    let with = |mode: &str, app: &str| Target {
        schema: Some(schema.name().to_string()),
        ..Target::url(format!("{base}?sslmode={mode}&application_name={app}"))
    };
    // Whether the sessions of application `app` are encrypted (its turn keeps one open).
    let mut encrypted = |store: &PgStore, app: &str| -> bool {
        let _turn = store.try_turn("tls-test").unwrap();
        let row = pg
            .query_one(
                "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                &[&app],
            )
            .unwrap();
        assert!(row.get::<_, i64>(0) > 0, "no session of {app}");
        row.get(1)
    };
    let app = format!("{}_plain", schema.name());
    let plain = PgStore::open(&with("disable", &app)).unwrap();
    assert!(!encrypted(&plain, &app));
    drop(plain);
    let app = format!("{}_tls", schema.name());
    if ssl_on {
        let store = PgStore::open(&with("require", &app)).unwrap();
        assert!(encrypted(&store, &app), "require must encrypt");
        assert_eq!(store.count().unwrap(), 0);
        drop(store);
        let d = tempfile::tempdir().unwrap();
        let (ca, _, _) = certificates(&["localhost"]);
        let ca = write_ca(d.path(), &ca);
        let e = open_error(format!("{base}?sslmode=verify-full&sslrootcert={ca}"));
        assert!(e.contains("TLS") && e.contains("certificate"), "{e}");
    } else {
        let e = open_error(format!("{base}?sslmode=require"));
        assert!(e.contains("TLS"), "{e}");
        let store = PgStore::open(&with("prefer", &app)).unwrap();
        assert!(!encrypted(&store, &app), "prefer goes on without");
    }
}

/// `sslrootcert=system`: the system's CAs (here `SSL_CERT_FILE`, as OpenSSL reads it), with
/// the host name checked; a weaker `sslmode` with it is refused before connecting.
#[test]
fn sslrootcert_system_trusts_the_system_cas_and_checks_the_host() {
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(&["localhost"]);
    let ca = write_ca(d.path(), &ca);
    let (other_ca, _, _) = certificates(&["localhost"]);
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other_ca = write_ca(&other, &other_ca);
    let empty = d.path().join("no-more-cas");
    std::fs::create_dir(&empty).unwrap();
    let port = fake_server(Some((cert, key)));
    let status = |host: &str, query: &str, cas: &str| {
        let cfg = d.path().join("pg.toml");
        std::fs::write(
            &cfg,
            format!(
                "[organisation]\nname = \"Test\"\nprefixes = [\"192.0.2.0/24\"]\n\n\
                 [store]\npath = \"data\"\nbackend = \"postgres\"\n\
                 url = \"postgres://outwatch:Sekr1tPassw0rd@{host}:{port}/x?{query}\"\n"
            ),
        )
        .unwrap();
        let out = crate::support::cli(d.path())
            .arg("--config")
            .arg(&cfg)
            .arg("status")
            .env("SSL_CERT_FILE", cas)
            .env("SSL_CERT_DIR", &empty)
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all}");
        assert!(!all.contains("Sekr1t"), "{all}");
        all
    };
    // Signed by a CA the system trusts, for this host: the handshake is done.
    for query in [
        "sslrootcert=system",
        "sslmode=verify-full&sslrootcert=system",
    ] {
        let all = status("localhost", query, &ca);
        assert!(all.contains(FAKE_DONE), "{query}: {all}");
    }
    // A CA the system does not trust, or another host name: refused.
    let all = status("localhost", "sslrootcert=system", &other_ca);
    assert!(
        all.contains("TLS") && all.contains("certificate") && !all.contains(FAKE_DONE),
        "{all}"
    );
    let all = status("127.0.0.1", "sslrootcert=system", &ca);
    assert!(
        all.contains("TLS") && all.contains("not valid for name") && !all.contains(FAKE_DONE),
        "{all}"
    );
    // Encryption without checking the server is not what `system` is for.
    let all = status("localhost", "sslmode=require&sslrootcert=system", &ca);
    assert!(
        all.contains("sslmode `require` may not be used with sslrootcert=system"),
        "{all}"
    );
}
