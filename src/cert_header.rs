//! TEMPORARY stand-in for the certificate-header parsers (replaced by the
//! fa-parse branch before this lands).
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFormat {
    EscapedPem,
    Base64Der,
    Xfcc,
}

pub const MAX_VALUE_BYTES: usize = 64 * 1024;
pub const MAX_CERTIFICATES: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertHeaderError {
    #[error("malformed certificate header")]
    Malformed,
}

pub fn decode(
    format: HeaderFormat,
    value: &[u8],
) -> Result<Option<Vec<CertificateDer<'static>>>, CertHeaderError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(CertHeaderError::Malformed);
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Ok(None);
    }
    match format {
        HeaderFormat::EscapedPem => {
            let pem: Vec<u8> = percent_encoding::percent_decode(value).collect();
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
            let certs = certs.map_err(|_| CertHeaderError::Malformed)?;
            if certs.is_empty() || certs.len() > MAX_CERTIFICATES {
                return Err(CertHeaderError::Malformed);
            }
            Ok(Some(certs))
        }
        HeaderFormat::Base64Der => {
            use base64::Engine;
            let mut out = Vec::new();
            for item in value.split(|b| *b == b',') {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(item.trim_ascii())
                    .map_err(|_| CertHeaderError::Malformed)?;
                out.push(CertificateDer::from(der));
            }
            if out.len() > MAX_CERTIFICATES {
                return Err(CertHeaderError::Malformed);
            }
            Ok(Some(out))
        }
        HeaderFormat::Xfcc => Err(CertHeaderError::Malformed),
    }
}
