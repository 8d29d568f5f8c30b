//! A ban fact as hosts share it: one key per (origin host, address or
//! prefix) in a JetStream key-value bucket, so that each key has one
//! writer; the record is signed with its origin's Ed25519 key (a NATS
//! nkey), and a host takes it only from origins whose public key it pins.

use serde::{Deserialize, Serialize};

use crate::jail::Prefix;

/// Domain separation: a signature over a record can never be taken for a
/// signature over anything else the key signs (NATS nonces, say).
const SIGNING_CONTEXT: &str = "wasmban-fleet-record-v1";

/// One ban fact. `end` at or before now means the ban was lifted: a host
/// lifts by writing its record again, never by deleting it, so that a
/// lift reaches hosts that were away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Names this ban (origin, address, start).
    pub id: String,
    /// The host that banned.
    pub origin: String,
    /// The network address (host bits clear).
    pub address: String,
    /// The prefix length (32 or 128 for one address).
    pub prefix: u8,
    /// The jail that banned on the origin.
    pub jail: String,
    /// Why: the jail's filter, or `manual`.
    pub reason: String,
    /// Unix seconds.
    pub start: i64,
    /// Unix seconds; `None`: forever.
    pub end: Option<i64>,
    /// How many times the origin banned it (its `bancount`).
    pub count: u32,
    /// Ed25519 over [`Record::signed_bytes`], in hex.
    #[serde(default)]
    pub signature: String,
}

/// Why a record is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of a record.
    #[error("not a ban record: {0}")]
    Malformed(String),
    /// The key it was found under is not its own.
    #[error("found under key {key}, but it is {expected}'s record")]
    WrongKey {
        /// The key.
        key: String,
        /// The key the record belongs under.
        expected: String,
    },
    /// Its address is not an address or prefix.
    #[error("{0:?} is not an address or prefix")]
    BadAddress(String),
    /// No public key is pinned for its origin.
    #[error("origin {0} is not trusted (no key for it in [fleet] trust)")]
    Untrusted(String),
    /// The signature does not verify with the origin's pinned key.
    #[error("origin {0}: the signature does not verify with its pinned key")]
    BadSignature(String),
}

impl Record {
    /// The ban's address and length, checked.
    pub fn network(&self) -> Result<Prefix, RecordError> {
        let text = format!("{}/{}", self.address, self.prefix);
        Prefix::parse(&text)
            .filter(|p| p.network().to_string() == self.address || p.to_string() == self.address)
            .ok_or(RecordError::BadAddress(text))
    }

    /// The bucket key of this record: `ORIGIN.ADDRESS` (`:` written `_`,
    /// as keys allow no colon; a prefix as `ADDRESS/LEN`).
    pub fn key(&self) -> String {
        key_for(&self.origin, &self.address, self.prefix)
    }

    /// What the signature covers: every field but the signature, one a
    /// line, after the context.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{SIGNING_CONTEXT}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.id,
            self.origin,
            self.address,
            self.prefix,
            self.jail,
            self.reason,
            self.start,
            self.end.map_or_else(|| "-".to_string(), |e| e.to_string()),
            self.count
        )
        .into_bytes()
    }

    /// Sign with `key` (this host's).
    pub fn sign(&mut self, key: &nkeys::KeyPair) -> Result<(), String> {
        let signature = key.sign(&self.signed_bytes()).map_err(|e| e.to_string())?;
        self.signature = signature.iter().map(|b| format!("{b:02x}")).collect();
        Ok(())
    }

    /// Whether `public` (an nkey public key) signed this record.
    pub fn verify(&self, public: &nkeys::KeyPair) -> Result<(), RecordError> {
        let bad = || RecordError::BadSignature(self.origin.clone());
        if self.signature.len() != 128 {
            return Err(bad());
        }
        let bytes: Vec<u8> = (0..self.signature.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&self.signature[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        public.verify(&self.signed_bytes(), &bytes).map_err(|_| bad())
    }

    /// Read a record found under `key` in the bucket: well formed, under
    /// its own key, with a sound address. The signature is checked by the
    /// caller, who holds the pinned keys.
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Record, RecordError> {
        let record: Record = serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        record.network()?;
        let expected = record.key();
        if expected != key {
            return Err(RecordError::WrongKey { key: key.to_string(), expected });
        }
        Ok(record)
    }

    /// Whether it bans at `now`.
    pub fn in_force(&self, now: i64) -> bool {
        self.end.is_none_or(|end| end > now)
    }
}

/// The bucket key for `origin`'s ban of `address`/`prefix`.
pub fn key_for(origin: &str, address: &str, prefix: u8) -> String {
    let full = if address.contains(':') { 128 } else { 32 };
    let address = address.replace(':', "_");
    if prefix == full { format!("{origin}.{address}") } else { format!("{origin}.{address}/{prefix}") }
}

/// Whether `name` can name a host: the bucket keys and NATS subjects it
/// goes into allow letters, digits, `-` and `_` in one token.
pub fn valid_origin(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(origin: &str, address: &str, prefix: u8) -> Record {
        Record {
            id: "web1-1".into(),
            origin: origin.into(),
            address: address.into(),
            prefix,
            jail: "sshd".into(),
            reason: "sshd".into(),
            start: 1000,
            end: Some(4600),
            count: 1,
            signature: String::new(),
        }
    }

    #[test]
    fn keys_are_one_per_origin_and_address() {
        assert_eq!(record("web1", "192.0.2.7", 32).key(), "web1.192.0.2.7");
        assert_eq!(record("web1", "2001:db8::", 64).key(), "web1.2001_db8__/64");
        assert_eq!(record("web1", "2001:db8::7", 128).key(), "web1.2001_db8__7");
        assert!(valid_origin("web-1_a") && !valid_origin("web.1") && !valid_origin("") && !valid_origin("a>"));
    }

    #[test]
    fn signed_records_verify_and_any_change_breaks_them() {
        let key = nkeys::KeyPair::new_user();
        let public = nkeys::KeyPair::from_public_key(&key.public_key()).unwrap();
        let mut r = record("web1", "192.0.2.7", 32);
        r.sign(&key).unwrap();
        assert_eq!(r.verify(&public), Ok(()));
        let wire = serde_json::to_vec(&r).unwrap();
        let back = Record::parse("web1.192.0.2.7", &wire).unwrap();
        assert_eq!(back.verify(&public), Ok(()));
        for tamper in [
            |r: &mut Record| r.end = None,
            |r: &mut Record| r.address = "192.0.2.8".into(),
            |r: &mut Record| r.prefix = 24,
            |r: &mut Record| r.origin = "web2".into(),
        ] {
            let mut t = back.clone();
            tamper(&mut t);
            assert!(t.verify(&public).is_err(), "{t:?}");
        }
        let other = nkeys::KeyPair::from_public_key(&nkeys::KeyPair::new_user().public_key()).unwrap();
        assert_eq!(back.verify(&other), Err(RecordError::BadSignature("web1".into())));
    }

    #[test]
    fn a_record_under_another_key_or_with_a_bad_address_is_refused() {
        let wire = serde_json::to_vec(&record("web1", "192.0.2.7", 32)).unwrap();
        assert!(matches!(Record::parse("web2.192.0.2.7", &wire), Err(RecordError::WrongKey { .. })));
        let wire = serde_json::to_vec(&record("web1", "192.0.2.7", 24)).unwrap();
        assert!(matches!(Record::parse("web1.192.0.2.7/24", &wire), Err(RecordError::BadAddress(_))));
        let wire = serde_json::to_vec(&record("web1", "evil", 32)).unwrap();
        assert!(matches!(Record::parse("web1.evil", &wire), Err(RecordError::BadAddress(_))));
        assert!(matches!(Record::parse("web1.x", b"{"), Err(RecordError::Malformed(_))));
    }
}
