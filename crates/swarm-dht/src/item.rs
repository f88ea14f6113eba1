//! BEP 44 items: what the DHT's key-value store holds.
//!
//! An *immutable* item is a bencoded value `v` whose key (target) is the
//! SHA-1 of `v`: anyone can check a value against its key. A *mutable* item
//! is signed by an ed25519 key; its target is SHA-1 of the public key and an
//! optional salt (so one key can own many items), and it carries a sequence
//! number: nodes keep the highest, and a writer may ask for compare-and-swap.
//! The signature covers `4:salt<len>:<salt>3:seqi<seq>e1:v<v>` (the salt part
//! only with a salt), exactly the bytes BEP 44 names.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha1::{Digest, Sha1};
use swarm_wire::krpc::{NodeId, SALT_LEN_MAX, VALUE_LEN_MAX};

/// A mutable item's signed metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub key: [u8; 32],
    pub sig: [u8; 64],
    pub salt: Vec<u8>,
    pub seq: i64,
}

/// An item: a bencoded value, and for a mutable item its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub value: Vec<u8>,
    pub signed: Option<Signed>,
}

/// Why an item is refused (each maps to a BEP 44 error code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    #[error("value longer than {VALUE_LEN_MAX} bytes")]
    TooBig,
    #[error("salt longer than {SALT_LEN_MAX} bytes")]
    SaltTooBig,
    #[error("invalid signature")]
    BadSignature,
    #[error("value is not bencode")]
    NotBencode,
}

impl ItemError {
    /// The BEP 44 error code.
    pub fn code(&self) -> i64 {
        use swarm_wire::krpc::code;
        match self {
            ItemError::TooBig => code::MESSAGE_TOO_BIG,
            ItemError::SaltTooBig => code::SALT_TOO_BIG,
            ItemError::BadSignature => code::INVALID_SIGNATURE,
            ItemError::NotBencode => code::PROTOCOL,
        }
    }
}

/// The target of an immutable item.
pub fn immutable_target(value: &[u8]) -> NodeId {
    NodeId(Sha1::digest(value).into())
}

/// The target of a mutable item.
pub fn mutable_target(key: &[u8; 32], salt: &[u8]) -> NodeId {
    let mut h = Sha1::new();
    h.update(key);
    h.update(salt);
    NodeId(h.finalize().into())
}

/// The bytes a mutable item's signature covers.
pub fn signable(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + salt.len() + 40);
    if !salt.is_empty() {
        out.extend_from_slice(b"4:salt");
        out.extend_from_slice(salt.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(salt);
    }
    out.extend_from_slice(b"3:seqi");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b"e1:v");
    out.extend_from_slice(value);
    out
}

impl Item {
    /// An immutable item (checks the size and that `value` is bencode).
    pub fn immutable(value: Vec<u8>) -> Result<Item, ItemError> {
        check_value(&value)?;
        Ok(Item {
            value,
            signed: None,
        })
    }

    /// A mutable item signed with `key`.
    pub fn sign(
        key: &SigningKey,
        salt: &[u8],
        seq: i64,
        value: Vec<u8>,
    ) -> Result<Item, ItemError> {
        check_value(&value)?;
        if salt.len() > SALT_LEN_MAX {
            return Err(ItemError::SaltTooBig);
        }
        let sig = key.sign(&signable(salt, seq, &value)).to_bytes();
        Ok(Item {
            value,
            signed: Some(Signed {
                key: key.verifying_key().to_bytes(),
                sig,
                salt: salt.to_vec(),
                seq,
            }),
        })
    }

    /// The item's key in the DHT.
    pub fn target(&self) -> NodeId {
        match &self.signed {
            None => immutable_target(&self.value),
            Some(s) => mutable_target(&s.key, &s.salt),
        }
    }

    /// Checks the size limits and, for a mutable item, the signature.
    pub fn verify(&self) -> Result<(), ItemError> {
        check_value(&self.value)?;
        if let Some(s) = &self.signed {
            if s.salt.len() > SALT_LEN_MAX {
                return Err(ItemError::SaltTooBig);
            }
            let key = VerifyingKey::from_bytes(&s.key).map_err(|_| ItemError::BadSignature)?;
            let sig = Signature::from_bytes(&s.sig);
            key.verify(&signable(&s.salt, s.seq, &self.value), &sig)
                .map_err(|_| ItemError::BadSignature)?;
        }
        Ok(())
    }

    /// Bytes this item holds (for the store's accounting).
    pub fn size(&self) -> usize {
        self.value.len() + self.signed.as_ref().map_or(0, |s| 96 + s.salt.len() + 8)
    }
}

fn check_value(value: &[u8]) -> Result<(), ItemError> {
    if value.len() > VALUE_LEN_MAX {
        return Err(ItemError::TooBig);
    }
    swarm_wire::bencode::decode_lenient(value).map_err(|_| ItemError::NotBencode)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // BEP 44's test vectors (its private key is in the expanded 64-byte
    // form, so the vectors are checked from the public key and signature).
    #[test]
    fn bep44_vectors() {
        let key = hex32("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548");
        let item = Item {
            value: b"12:Hello World!".to_vec(),
            signed: Some(Signed {
                key,
                sig: hex64(
                    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff\
                     1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01",
                ),
                salt: Vec::new(),
                seq: 1,
            }),
        };
        item.verify().unwrap();
        assert_eq!(
            hex(&item.target().0),
            "4a533d47ec9c7d95b1ad75f576cffc641853b750"
        );

        let salted = Item {
            value: b"12:Hello World!".to_vec(),
            signed: Some(Signed {
                key,
                sig: hex64(
                    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d\
                     df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08",
                ),
                salt: b"foobar".to_vec(),
                seq: 1,
            }),
        };
        salted.verify().unwrap();
        assert_eq!(
            hex(&salted.target().0),
            "411eba73b6f087ca51a3795d9c8c938d365e32c1"
        );

        let imm = Item::immutable(b"12:Hello World!".to_vec()).unwrap();
        assert_eq!(
            hex(&imm.target().0),
            "e5f96f6f38320f0f33959cb4d3d656452117aadb"
        );

        let mut forged = item.clone();
        forged.value = b"12:Hello World?".to_vec();
        assert_eq!(forged.verify(), Err(ItemError::BadSignature));
        let mut replayed = salted.clone();
        replayed.signed.as_mut().unwrap().seq = 2;
        assert_eq!(replayed.verify(), Err(ItemError::BadSignature));
        assert_eq!(
            Item::immutable(vec![b'x'; 10]).unwrap_err(),
            ItemError::NotBencode
        );

        // Our own signing verifies, and the signature is the key's.
        let sk = SigningKey::from_bytes(&[7; 32]);
        let mine = Item::sign(&sk, b"s", 5, b"3:abc".to_vec()).unwrap();
        mine.verify().unwrap();
        assert_eq!(
            mine.signed.as_ref().unwrap().key,
            sk.verifying_key().to_bytes()
        );
    }

    fn hex(b: &[u8]) -> String {
        hex::encode(b)
    }

    fn hex64(s: &str) -> [u8; 64] {
        let s: String = s.split_whitespace().collect();
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }
}
