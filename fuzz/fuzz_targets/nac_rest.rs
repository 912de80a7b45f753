//! The body FreeRADIUS' rlm_rest posts to the 802.1X decision API
//! (`posture_core::nac::rest::parse`), with the invariants the gate relies
//! on: an oversize body is refused; only a JSON object is read; and what
//! was read, written again as rlm_rest writes it, reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posture_core::nac::rest::{parse, AcctStatus, NacRequest, MAX_BODY_BYTES};
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let result = parse(data);
    if data.len() > MAX_BODY_BYTES {
        assert!(result.is_err(), "oversize body accepted");
        return;
    }
    let Ok(request) = result else {
        return;
    };
    assert!(
        serde_json::from_slice::<Map<String, Value>>(data).is_ok(),
        "read something that is not a JSON object"
    );
    let again = parse(rewrite(&request).to_string().as_bytes()).expect("a rewritten body reads");
    assert_eq!(again, request);
});

/// `request` as rlm_rest would post it.
fn rewrite(r: &NacRequest) -> Value {
    let mut body = Map::new();
    let mut put = |name: &str, kind: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(name.to_string(), json!({"type": kind, "value": [value]}));
        }
    };
    put("User-Name", "string", r.user_name.clone().map(Value::from));
    put("TLS-Client-Cert-Serial", "string", r.cert_serial.clone().map(Value::from));
    put("TLS-Client-Cert-Issuer", "string", r.cert_issuer.clone().map(Value::from));
    put("TLS-Client-Cert-Subject", "string", r.cert_subject.clone().map(Value::from));
    put("Calling-Station-Id", "string", r.calling_station_id.clone().map(Value::from));
    put("NAS-IP-Address", "ipaddr", r.nas_ip.map(|ip| Value::from(ip.to_string())));
    put("NAS-Identifier", "string", r.nas_identifier.clone().map(Value::from));
    put("NAS-Port", "integer", r.nas_port.map(Value::from));
    put(
        "Acct-Status-Type",
        "integer",
        r.acct_status.map(|s| {
            Value::from(match s {
                AcctStatus::Start => "Start",
                AcctStatus::InterimUpdate => "Interim-Update",
                AcctStatus::Stop => "Stop",
                AcctStatus::Other => "Accounting-On",
            })
        }),
    );
    put("Acct-Session-Id", "string", r.acct_session_id.clone().map(Value::from));
    put(
        "Class",
        "octets",
        r.class
            .as_ref()
            .map(|c| Value::from(format!("0x{}", hex::encode(c.as_bytes())))),
    );
    Value::Object(body)
}
