//! The development PKI on disk: files, modes, refusal to overwrite, and
//! device certificates that openssl and the verifier both accept. The
//! `pki init` and `pki issue-device` commands are run as a person runs
//! them: the `posture-gate` binary.

use std::fs;
use std::path::Path;
use std::process::Command;

use posture_core::attestation::sign::{key_matches_certificate, SigningKey};
use posture_core::attestation::{NonceCheck, Verifier, VerifierSettings};
use posture_core::device::DeviceIdentity;
use posture_gate::pki::{self, DevicePaths, Pki, PkiPaths};
use posture_testkit::token::{now, TokenBuilder};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `posture-gate pki ARGS`: Ok(stdout) or Err(stderr).
fn pki_command(args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_posture-gate"))
        .arg("pki")
        .args(args)
        .output()
        .expect("posture-gate runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    if out.status.success() {
        Ok(text(out.stdout))
    } else {
        Err(text(out.stderr))
    }
}

/// `posture-gate pki init DIR`, and the files it says it wrote.
fn init(dir: &Path) -> Result<PkiPaths, String> {
    let said = pki_command(&["init", dir.to_str().unwrap()])?;
    let paths = PkiPaths::in_dir(dir);
    for shown in [
        &paths.ca_cert,
        &paths.ca_key,
        &paths.device_ca_cert,
        &paths.server_cert,
        &paths.server_key,
    ] {
        assert!(said.contains(&shown.display().to_string()), "{said}");
    }
    Ok(paths)
}

/// `posture-gate pki issue-device DIR --name N --org O [--ou U]`.
fn issue_device(
    dir: &Path,
    name: &str,
    org: &str,
    ou: Option<&str>,
) -> Result<DevicePaths, String> {
    let mut args = vec![
        "issue-device",
        dir.to_str().unwrap(),
        "--name",
        name,
        "--org",
        org,
    ];
    if let Some(ou) = ou {
        args.extend(["--ou", ou]);
    }
    let said = pki_command(&args)?;
    let dev = dir.join("devices").join(name);
    let paths = DevicePaths {
        cert: dev.join("cert.pem"),
        key: dev.join("key.pem"),
        dir: dev,
    };
    assert!(said.contains(&paths.cert.display().to_string()), "{said}");
    Ok(paths)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_every_file_with_private_keys_0600() {
    let dir = tempfile::tempdir().unwrap();
    let paths = init(dir.path()).unwrap();
    for p in [
        &paths.ca_cert,
        &paths.ca_key,
        &paths.device_ca_cert,
        &paths.device_ca_key,
        &paths.server_cert,
        &paths.server_key,
    ] {
        assert!(p.is_file(), "{}", p.display());
    }
    #[cfg(unix)]
    for key in [&paths.ca_key, &paths.device_ca_key, &paths.server_key] {
        assert_eq!(mode(key), 0o600, "{}", key.display());
    }
    assert_eq!(certs(&paths.ca_cert).len(), 1);
    assert_eq!(certs(&paths.server_cert).len(), 1);
}

#[test]
fn init_refuses_to_overwrite_an_existing_ca_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = init(dir.path()).unwrap();
    let before = fs::read(&first.ca_key).unwrap();
    let refused = init(dir.path()).expect_err("a second init");
    assert!(refused.contains("already exists"), "{refused}");
    assert_eq!(fs::read(&first.ca_key).unwrap(), before);
}

#[test]
fn issue_device_writes_chain_and_key_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let paths = init(dir.path()).unwrap();
    let dev = issue_device(dir.path(), "lt-042", "Supplier BV", Some("IT")).unwrap();
    assert_eq!(dev.dir, dir.path().join("devices").join("lt-042"));
    #[cfg(unix)]
    assert_eq!(mode(&dev.key), 0o600);

    let chain = certs(&dev.cert);
    assert_eq!(chain.len(), 2, "cert.pem is leaf then device CA");
    assert_eq!(chain[1], certs(&paths.device_ca_cert)[0]);
    let id = DeviceIdentity::from_der(chain[0].as_ref()).unwrap();
    assert_eq!(id.subject, "CN=lt-042,OU=IT,O=Supplier BV");

    let key = SigningKey::from_pem(&fs::read_to_string(&dev.key).unwrap()).unwrap();
    assert!(key_matches_certificate(&key, chain[0].as_ref()).unwrap());

    // The files on disk make a token the verifier accepts with ca.pem.
    let anchors = certs(&paths.ca_cert);
    let verifier = Verifier::new(&anchors, VerifierSettings::default()).unwrap();
    let token = posture_core::attestation::sign::sign_token(
        &posture_testkit::token::valid_claims(now()),
        &chain,
        &key,
    )
    .unwrap();
    let v = verifier
        .verify(
            token.as_bytes(),
            Some(chain[0].as_ref()),
            now(),
            NonceCheck::Skip,
        )
        .unwrap();
    assert_eq!(v.device, id);

    // A second device with the same name would replace its key: refused.
    let refused =
        issue_device(dir.path(), "lt-042", "Supplier BV", None).expect_err("a second lt-042");
    assert!(refused.contains("already exists"), "{refused}");
}

#[test]
fn issue_device_refuses_names_with_path_separators() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path()).unwrap();
    for bad in ["../evil", "a/b", "..", ""] {
        let refused = issue_device(dir.path(), bad, "O", None).expect_err(bad);
        assert!(refused.contains("must be 1 to 64"), "{bad:?}: {refused}");
    }
    assert!(!dir.path().join("evil").exists());
}

#[test]
fn loaded_pki_issues_devices_the_original_root_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let original = Pki::generate().unwrap();
    original.write(dir.path()).unwrap();
    let loaded = Pki::load(dir.path()).unwrap();
    assert_eq!(loaded.root_cert_der(), original.root_cert_der());
    let d = loaded.issue_device("lt-1", "Org", None).unwrap();
    let verifier = Verifier::new(
        &[original.root_cert_der().clone()],
        VerifierSettings::default(),
    )
    .unwrap();
    let token = TokenBuilder::new(&d).build().unwrap();
    assert!(verifier
        .verify(token.as_bytes(), None, now(), NonceCheck::Skip)
        .is_ok());
}

#[test]
fn server_certificate_names_localhost_and_loopback() {
    let pki = Pki::generate().unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(pki.server_cert_der().as_ref()).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    use x509_parser::extensions::GeneralName;
    let names = &san.value.general_names;
    assert!(
        names.contains(&GeneralName::DNSName("localhost")),
        "{names:?}"
    );
    assert!(
        names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])),
        "{names:?}"
    );
    let v6 = std::net::Ipv6Addr::LOCALHOST.octets();
    assert!(names.contains(&GeneralName::IPAddress(&v6)), "{names:?}");
    // webpki agrees it is a server certificate for localhost from the root.
    let anchor = webpki::anchor_from_trusted_cert(pki.root_cert_der()).unwrap();
    let ee = webpki::EndEntityCert::try_from(pki.server_cert_der()).unwrap();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    ee.verify_is_valid_for_subject_name(&name).unwrap();
    let ip = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    ee.verify_is_valid_for_subject_name(&ip).unwrap();
}

#[test]
fn openssl_verifies_the_device_chain() {
    let dir = tempfile::tempdir().unwrap();
    let paths = init(dir.path()).unwrap();
    let dev = issue_device(dir.path(), "lt-042", "Supplier BV", None).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&paths.ca_cert)
        .arg("-untrusted")
        .arg(&paths.device_ca_cert)
        .arg("-purpose")
        .arg("sslclient")
        .arg(&dev.cert)
        .output()
        .unwrap_or_else(|e| panic!("this test needs the `openssl` command line tool: {e}"));
    assert!(
        out.status.success(),
        "openssl verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And the server certificate against the root.
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&paths.ca_cert)
        .arg("-purpose")
        .arg("sslserver")
        .arg(&paths.server_cert)
        .output()
        .unwrap_or_else(|e| panic!("this test needs the `openssl` command line tool: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 13: the gate refuses a client certificate without the clientAuth
/// EKU (webpki alone would take one without any EKU), so `pki issue-device`
/// must write it, and the server certificate must be for serverAuth only.
#[test]
fn device_certificates_carry_client_auth_and_the_server_certificate_server_auth() {
    let dir = tempfile::tempdir().unwrap();
    let paths = init(dir.path()).unwrap();
    let dev = issue_device(dir.path(), "lt-7", "Supplier BV", None).unwrap();
    let eku = |der: &CertificateDer<'_>| {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let ext = cert
            .extended_key_usage()
            .unwrap()
            .expect("an extended key usage extension");
        (ext.value.client_auth, ext.value.server_auth, ext.value.any)
    };
    assert_eq!(eku(&certs(&dev.cert)[0]), (true, false, false), "device");
    assert_eq!(
        eku(&certs(&paths.server_cert)[0]),
        (false, true, false),
        "server"
    );
    // The device CA alone, the gate's client CA, is enough to verify a device.
    let anchor_der = certs(&paths.device_ca_cert).remove(0);
    let anchor = webpki::anchor_from_trusted_cert(&anchor_der).unwrap();
    let leaf = certs(&dev.cert).remove(0);
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::required(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]),
        None,
        None,
    )
    .unwrap();
}

/// The test PKI asks for the host names its routes use; localhost and the
/// loopback addresses stay, and localhost is named once.
#[test]
fn the_server_certificate_covers_extra_host_names() {
    let pki = Pki::generate_with_server_names(&["localhost", "finance.test"]).unwrap();
    let ee = webpki::EndEntityCert::try_from(pki.server_cert_der()).unwrap();
    for name in ["finance.test", "localhost", "127.0.0.1"] {
        let name = rustls_pki_types::ServerName::try_from(name).unwrap();
        ee.verify_is_valid_for_subject_name(&name).unwrap();
    }
    let other = rustls_pki_types::ServerName::try_from("office.test").unwrap();
    assert!(ee.verify_is_valid_for_subject_name(&other).is_err());
    let (_, cert) = x509_parser::parse_x509_certificate(pki.server_cert_der().as_ref()).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let localhost = san
        .value
        .general_names
        .iter()
        .filter(|n| **n == x509_parser::extensions::GeneralName::DNSName("localhost"))
        .count();
    assert_eq!(localhost, 1);
    // The default PKI names no more than before.
    let plain = Pki::generate().unwrap();
    let ee = webpki::EndEntityCert::try_from(plain.server_cert_der()).unwrap();
    let finance = rustls_pki_types::ServerName::try_from("finance.test").unwrap();
    assert!(ee.verify_is_valid_for_subject_name(&finance).is_err());
}

/// A device's serial is its certificate's, and the device CA's CRL revokes
/// exactly the devices it lists: the verifier trusting the device CA refuses
/// a revoked device's token and still takes another's.
#[test]
fn the_device_crl_revokes_the_listed_devices_by_serial() {
    let pki = Pki::generate().unwrap();
    let revoked = pki.issue_device("lt-1", "Org", None).unwrap();
    let kept = pki.issue_device("lt-2", "Org", None).unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(revoked.cert_der.as_ref()).unwrap();
    assert_eq!(revoked.serial(), leaf.raw_serial());
    assert_ne!(revoked.serial(), kept.serial());

    let crl = pki.device_crl(&[&revoked]).unwrap();
    let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref()).unwrap();
    let (_, device_ca) =
        x509_parser::parse_x509_certificate(pki.device_ca_cert_der().as_ref()).unwrap();
    assert_eq!(parsed.issuer(), device_ca.subject());
    let serials: Vec<&[u8]> = parsed
        .iter_revoked_certificates()
        .map(|r| r.raw_serial())
        .collect();
    assert_eq!(serials, [revoked.serial()]);

    let verifier = Verifier::new(
        &[pki.device_ca_cert_der().clone()],
        VerifierSettings::default(),
    )
    .unwrap()
    .with_crls(std::slice::from_ref(&crl))
    .unwrap();
    let verify = |d: &pki::DeviceCredentials| {
        let token = TokenBuilder::new(d).build().unwrap();
        verifier
            .verify(token.as_bytes(), None, now(), NonceCheck::Skip)
            .map(|_| ())
    };
    assert_eq!(
        verify(&revoked),
        Err(posture_core::attestation::Reason::UntrustedChain)
    );
    assert_eq!(verify(&kept), Ok(()));
    // The PEM form reads back as the same CRL.
    let pem = pki::crl_pem(&crl);
    let back =
        rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(back, crl);
}

#[test]
fn a_device_spec_without_organization_issues_a_subject_without_o() {
    let pki = Pki::generate().unwrap();
    let mut spec = pki::DeviceSpec::new("lt-9", "ignored");
    spec.org = None;
    spec.ou = Some("Laptops".to_owned());
    let d = pki.issue_device_with(spec).unwrap();
    let id = DeviceIdentity::from_der(d.cert_der.as_ref()).unwrap();
    assert_eq!(id.subject, "CN=lt-9,OU=Laptops");
    assert_eq!(id.organization, None);
}

/// `openssl req -new` for a fresh key of `newkey` (openssl's -newkey
/// argument, plus -pkeyopt when given) with `subject`; returns (csr, key).
fn openssl_request(
    dir: &Path,
    stem: &str,
    newkey: &[&str],
    subject: &str,
    extra: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let csr = dir.join(format!("{stem}.csr"));
    let key = dir.join(format!("{stem}.key"));
    let out = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey"])
        .args(newkey)
        .args([
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ])
        .args(["-subj", subject])
        .args(extra)
        .output()
        .expect("this test needs the openssl program");
    assert!(out.status.success(), "{out:?}");
    (csr, key)
}

fn sign_csr(dir: &Path, csr: &Path, extra: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "sign-csr",
        dir.to_str().unwrap(),
        "--csr",
        csr.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pki_command(&args)
}

#[test]
fn sign_csr_issues_a_device_certificate_for_openssl_requests_p256_and_ed25519() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    init(&dir).unwrap();
    for (stem, newkey, key_type) in [
        (
            "p256",
            &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "P-256",
        ),
        ("ed", &["ed25519"][..], "Ed25519"),
    ] {
        let name = format!("lt-{stem}");
        let (csr, key) = openssl_request(
            tmp.path(),
            stem,
            newkey,
            &format!("/O=Leverancier BV/OU=Beheer/CN={name}/emailAddress=x@example.org"),
            &["-addext", "subjectAltName=DNS:evil.example"],
        );
        // The request's O and OU alone are not taken: the signer states them.
        let unsaid = sign_csr(&dir, &csr, &[]).unwrap_err();
        assert!(
            unsaid.contains("give the device's organisation with --org")
                && unsaid.contains("O=\"Leverancier BV\""),
            "{unsaid}"
        );
        let other = sign_csr(&dir, &csr, &["--org", "Ministerie", "--ou", "Beheer"]).unwrap_err();
        assert!(
            other.contains("asks for O=\"Leverancier BV\", but --org says \"Ministerie\""),
            "{other}"
        );
        let no_ou = sign_csr(&dir, &csr, &["--org", "Leverancier BV"]).unwrap_err();
        assert!(
            no_ou.contains("asks for OU=\"Beheer\", but --ou says nothing"),
            "{no_ou}"
        );
        let vouched = ["--org", "Leverancier BV", "--ou", "Beheer"];
        let said = sign_csr(&dir, &csr, &vouched).unwrap();
        let cert = dir.join("devices").join(&name).join("cert.pem");
        assert!(
            said.contains(&format!("CN={name},OU=Beheer,O=Leverancier BV ({key_type}"))
                && said.contains("Send back")
                && said.contains(&cert.display().to_string())
                && said.contains(&dir.join("ca.pem").display().to_string()),
            "{said}"
        );
        let chain = certs(&cert);
        assert_eq!(chain.len(), 2, "leaf and device CA");
        assert_eq!(chain[1], certs(&dir.join("device-ca.pem"))[0]);
        // The certificate is for the request's key, and says only what
        // issue-device says: no SAN, no e-mail address from the request.
        let key_pem = fs::read_to_string(&key).unwrap();
        let signing = SigningKey::from_pem(&key_pem).unwrap();
        assert!(key_matches_certificate(&signing, &chain[0]).unwrap());
        let identity = DeviceIdentity::from_der(&chain[0]).unwrap();
        assert_eq!(
            identity.subject,
            format!("CN={name},OU=Beheer,O=Leverancier BV")
        );
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in", cert.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(
            !text.contains("evil.example") && !text.contains("x@example.org"),
            "{text}"
        );
        let verify = Command::new("openssl")
            .args(["verify", "-purpose", "sslclient", "-CAfile"])
            .arg(dir.join("ca.pem"))
            .arg("-untrusted")
            .arg(dir.join("device-ca.pem"))
            .arg(&cert)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
        // Not twice for one name: that would break the first device's pair.
        let again = sign_csr(&dir, &csr, &vouched).unwrap_err();
        assert!(again.contains("already exists"), "{again}");
    }
}

#[test]
fn sign_csr_refuses_rsa_ca_and_tampered_requests_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    init(&dir).unwrap();
    let (rsa, _) = openssl_request(tmp.path(), "rsa", &["rsa:2048"], "/O=X/CN=rsa", &[]);
    let err = sign_csr(&dir, &rsa, &["--org", "X"]).unwrap_err();
    assert!(err.contains("the key is RSA"), "{err}");

    let (ca, _) = openssl_request(
        tmp.path(),
        "ca",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/O=X/CN=ca",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    let err = sign_csr(&dir, &ca, &["--org", "X"]).unwrap_err();
    assert!(err.contains("asks to be a CA"), "{err}");

    // One letter of the signed subject changed after signing: lt-042 -> lt-043.
    let (good, _) = openssl_request(
        tmp.path(),
        "good",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/O=X/CN=lt-042",
        &[],
    );
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_file(&good).unwrap();
    let mut bytes = der.as_ref().to_vec();
    let at = bytes.windows(6).position(|w| w == b"lt-042").unwrap();
    bytes[at + 5] = b'3';
    let tampered = tmp.path().join("tampered.der");
    fs::write(&tampered, &bytes).unwrap();
    let err = sign_csr(&dir, &tampered, &["--org", "X"]).unwrap_err();
    assert!(err.contains("signature does not verify"), "{err}");
    // The untampered DER is accepted (so the refusal was the signature's).
    assert!(
        !dir.join("devices").exists(),
        "nothing written for refused requests"
    );
    fs::write(tmp.path().join("good.der"), der.as_ref()).unwrap();
    sign_csr(&dir, &tmp.path().join("good.der"), &["--org", "X"]).unwrap();
    assert!(dir.join("devices/lt-042/cert.pem").is_file());
    // Windows certreq's and keytool's label for the same request.
    let pem = fs::read_to_string(&good)
        .unwrap()
        .replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    fs::write(tmp.path().join("new.csr"), pem).unwrap();
    sign_csr(
        &dir,
        &tmp.path().join("new.csr"),
        &["--org", "X", "--name", "lt-042b"],
    )
    .unwrap();
    assert!(dir.join("devices/lt-042b/cert.pem").is_file());
}
