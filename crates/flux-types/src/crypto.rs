//! Hashes, ed25519 keys and signatures, and checksummed addresses.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32m, Hrp};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The human-readable prefix of every address: `flux1…`.
pub const ADDRESS_HRP: &str = "flux";

/// A SHA-256 digest.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, parent of the genesis block.
    pub const ZERO: Hash = Hash([0; 32]);

    /// SHA-256 of the concatenation of `parts`.
    pub fn digest(parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Hash(hasher.finalize().into())
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &hex::encode(self.0)[..12])
    }
}

/// Why a text could not be read as a key, hash, signature or address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// Not valid hexadecimal of the right length.
    #[error("'{text}' is not {expected}")]
    BadHex {
        /// The text that was given.
        text: String,
        /// What was expected, e.g. "64 hexadecimal characters".
        expected: &'static str,
    },
    /// Valid length but not a point on the curve.
    #[error("'{0}' is not a valid ed25519 public key")]
    BadKey(String),
    /// Address text that fails its checksum or format.
    #[error(
        "'{text}' is not a valid address ({reason}); a Flux address starts with 'flux1' and has a checksum, so check it for typos"
    )]
    BadAddress {
        /// The text that was given.
        text: String,
        /// What was wrong.
        reason: String,
    },
}

fn parse_hex<const N: usize>(text: &str, expected: &'static str) -> Result<[u8; N], KeyParseError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| KeyParseError::BadHex {
        text: text.to_string(),
        expected,
    })?;
    Ok(out)
}

impl FromStr for Hash {
    type Err = KeyParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_hex(text, "a hash (64 hexadecimal characters)").map(Hash)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An ed25519 public key: the identity of an account holder or a node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The address this key controls.
    pub fn address(&self) -> Address {
        let digest = Hash::digest(&[b"FLUX/address/v1", &self.0]);
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&digest.0[..20]);
        Address(bytes)
    }

    /// Verifies `signature` over `message` with this key (ZIP-215 rules, the
    /// same ones batch verification uses, so both always agree).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let Ok(key) = ed25519_consensus::VerificationKey::try_from(self.0) else {
            return false;
        };
        key.verify(&ed25519_consensus::Signature::from(signature.0), message)
            .is_ok()
    }

    /// Whether the bytes are a valid curve point.
    pub fn is_valid(&self) -> bool {
        ed25519_consensus::VerificationKey::try_from(self.0).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &hex::encode(self.0)[..12])
    }
}

impl FromStr for PublicKey {
    type Err = KeyParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let key = PublicKey(parse_hex(text, "a public key (64 hexadecimal characters)")?);
        if key.is_valid() {
            Ok(key)
        } else {
            Err(KeyParseError::BadKey(text.to_string()))
        }
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", &hex::encode(self.0)[..12])
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for Signature {
    type Err = KeyParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_hex(text, "a signature (128 hexadecimal characters)").map(Signature)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signing key. Never leaves the machine of its holder.
#[derive(Clone)]
pub struct SecretKey(ed25519_consensus::SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> SecretKey {
        SecretKey(ed25519_consensus::SigningKey::new(rand::rngs::OsRng))
    }

    /// The key whose 32 seed bytes are `seed`.
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(ed25519_consensus::SigningKey::from(seed))
    }

    /// A well-known key derived from a label, for development networks only:
    /// anyone can derive it, so it must never hold real value.
    pub fn development(label: &str) -> SecretKey {
        SecretKey::from_seed(Hash::digest(&[b"FLUX/development-key/v1", label.as_bytes()]).0)
    }

    /// The 32 seed bytes, for the keystore.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verification_key().to_bytes())
    }

    /// The address this key controls.
    pub fn address(&self) -> Address {
        self.public_key().address()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(for {})", self.address())
    }
}

/// Verifies many signatures at once, about twice as fast as one by one.
/// Returns `false` if any signature is invalid; the caller then checks one by
/// one to find which.
pub fn verify_batch<'a>(
    items: impl IntoIterator<Item = (&'a PublicKey, &'a [u8], &'a Signature)>,
) -> bool {
    let mut verifier = ed25519_consensus::batch::Verifier::new();
    for (key, message, signature) in items {
        let Ok(vk) = ed25519_consensus::VerificationKeyBytes::try_from(key.0.as_slice()) else {
            return false;
        };
        verifier.queue((vk, ed25519_consensus::Signature::from(signature.0), message));
    }
    verifier.verify(rand::thread_rng()).is_ok()
}

/// An account address: the first 20 bytes of a domain-separated SHA-256 of a
/// public key. Its text form is bech32m with the prefix `flux`, so a typo is
/// caught by the checksum instead of sending coins nowhere.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of a module account (treasury, reward pool): derived from
    /// a name, with no private key behind it, so only the ledger moves its coins.
    pub fn module(name: &str) -> Address {
        let digest = Hash::digest(&[b"FLUX/module-account/v1", name.as_bytes()]);
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&digest.0[..20]);
        Address(bytes)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(ADDRESS_HRP);
        match bech32::encode::<Bech32m>(hrp, &self.0) {
            Ok(text) => f.write_str(&text),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = KeyParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| KeyParseError::BadAddress {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32m>(trimmed)
            .map_err(|e| bad(&e.to_string()))?;
        if checked.hrp().as_str() != ADDRESS_HRP {
            return Err(bad(&format!(
                "prefix is '{}', expected '{ADDRESS_HRP}'",
                checked.hrp()
            )));
        }
        let data: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 20] = data.try_into().map_err(|_| bad("wrong length"))?;
        Ok(Address(bytes))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_round_trips_and_catches_typos() {
        let key = SecretKey::development("dev0");
        let address = key.address();
        let text = address.to_string();
        assert!(text.starts_with("flux1"), "{text}");
        assert_eq!(text.parse::<Address>().unwrap(), address);
        // Change one character: the checksum must catch it.
        let mut chars: Vec<char> = text.chars().collect();
        let i = chars.len() - 3;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(
            typo.parse::<Address>(),
            Err(KeyParseError::BadAddress { .. })
        ));
        assert!(
            "cosmos1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
                .parse::<Address>()
                .is_err()
        );
    }

    #[test]
    fn signatures_verify_singly_and_in_batch() {
        let key = SecretKey::generate();
        let signature = key.sign(b"hello");
        let public = key.public_key();
        assert!(public.verify(b"hello", &signature));
        assert!(!public.verify(b"hullo", &signature));
        let items = [(&public, &b"hello"[..], &signature)];
        assert!(verify_batch(items.iter().copied()));
        let bad = [(&public, &b"hullo"[..], &signature)];
        assert!(!verify_batch(bad.iter().copied()));
    }

    #[test]
    fn development_keys_are_stable() {
        assert_eq!(
            SecretKey::development("dev0").address(),
            SecretKey::development("dev0").address()
        );
        assert_ne!(
            SecretKey::development("dev0").address(),
            SecretKey::development("dev1").address()
        );
    }
}
