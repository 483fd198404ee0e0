//! Signed requests: how a client proves to a node, for one HTTP request,
//! that it holds a key (owner-only reads such as an app's logs and stats).
//!
//! The signature is ed25519 over a domain-separated message of the chain
//! id, the method, the path with its query, the SHA-256 of the body, a
//! timestamp in ms and a random 16-byte nonce; all of it travels in four
//! headers ([`HEADER_KEY`], [`HEADER_TIMESTAMP`], [`HEADER_NONCE`],
//! [`HEADER_SIGNATURE`]). A node accepts a request when its timestamp is
//! within [`REQUEST_SKEW_MS_MAX`] of the node's clock, the signature is
//! valid for the node's chain, and the nonce was not seen before
//! ([`ReplayCache`]). Whether the key may read what it asks for (the app's
//! owner) is the node's decision, made after these checks.
//!
//! Nothing here reads a clock: the time comes in as an argument, and so
//! does the nonce ([`random_nonce`] draws one from the operating system).

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use crate::crypto::{Hash, PublicKey, SecretKey, Signature};

/// Header carrying the signer's public key (64 hex characters).
pub const HEADER_KEY: &str = "flux-key";
/// Header carrying the signing time, ms since the Unix epoch (decimal).
pub const HEADER_TIMESTAMP: &str = "flux-timestamp";
/// Header carrying the nonce (32 hex characters).
pub const HEADER_NONCE: &str = "flux-nonce";
/// Header carrying the signature (128 hex characters).
pub const HEADER_SIGNATURE: &str = "flux-signature";

/// Largest difference between a request's timestamp and the node's clock,
/// either way, in ms.
pub const REQUEST_SKEW_MS_MAX: u64 = 5 * 60 * 1000;
/// Bytes of randomness in a nonce.
pub const NONCE_BYTES: usize = 16;
/// Most nonces a node remembers at once. An entry is kept until its
/// timestamp is out of the window, at most `2 × REQUEST_SKEW_MS_MAX`; at
/// the limit new requests are refused, never young nonces forgotten.
pub const REPLAY_CACHE_ENTRIES_MAX: usize = 65_536;
/// Longest method or path with query that is signed, in bytes.
pub const REQUEST_TARGET_LEN_MAX: usize = 8_192;

/// The domain of the signed message: a request signature can never be a
/// transaction or vote signature, and the reverse.
const DOMAIN: &[u8] = b"FLUX/request/v1";

/// Why a signed request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    /// A header is absent.
    #[error(
        "the request is not signed: header {header} is missing; sign it with the key that owns the app (`flux app logs NAME --from KEY`)"
    )]
    Missing {
        /// The missing header.
        header: &'static str,
    },
    /// A header does not parse.
    #[error("header {header} is malformed: {reason}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The timestamp is older than the window.
    #[error(
        "the signature expired: it was made {age_ms} ms ago, more than {window_ms} ms; sign the request again (and check this machine's clock)"
    )]
    Expired {
        /// How old the timestamp is.
        age_ms: u64,
        /// The window.
        window_ms: u64,
    },
    /// The timestamp is ahead of the node's clock by more than the window.
    #[error(
        "the signature is dated {ahead_ms} ms in the future, more than {window_ms} ms ahead of the node's clock; check this machine's clock"
    )]
    FromTheFuture {
        /// How far ahead the timestamp is.
        ahead_ms: u64,
        /// The window.
        window_ms: u64,
    },
    /// The signature does not match the request (another method, path,
    /// body, chain, time or nonce), or not the key.
    #[error(
        "the signature does not match this request on chain {chain_id}; it was made for another request, another network, or by another key"
    )]
    BadSignature {
        /// The chain the node checked against.
        chain_id: String,
    },
    /// The nonce was used before, within the window.
    #[error("the request was already received (nonce {nonce} reused); sign each request anew")]
    Replayed {
        /// The nonce, hex.
        nonce: String,
    },
    /// The node remembers as many nonces as it may.
    #[error(
        "the node is receiving too many signed requests ({entries} within {window_ms} ms); retry in a few seconds"
    )]
    ReplayCacheFull {
        /// Nonces remembered.
        entries: usize,
        /// How long a nonce is remembered at most.
        window_ms: u64,
    },
}

impl RequestAuthError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RequestAuthError::Missing { .. } => "signature_missing",
            RequestAuthError::Malformed { .. } => "signature_malformed",
            RequestAuthError::Expired { .. } => "signature_expired",
            RequestAuthError::FromTheFuture { .. } => "signature_from_the_future",
            RequestAuthError::BadSignature { .. } => "signature_invalid",
            RequestAuthError::Replayed { .. } => "nonce_replayed",
            RequestAuthError::ReplayCacheFull { .. } => "replay_cache_full",
        }
    }

    /// Whether the fault is the node's load, not the request (the request
    /// may succeed later as it is).
    pub fn is_overload(&self) -> bool {
        matches!(self, RequestAuthError::ReplayCacheFull { .. })
    }
}

/// What a request is, as far as its signature goes.
#[derive(Clone, Copy, Debug)]
pub struct RequestTarget<'a> {
    /// The network's chain id.
    pub chain_id: &'a str,
    /// The HTTP method, e.g. `GET` (compared in upper case).
    pub method: &'a str,
    /// The path with its query, exactly as sent: `/api/v1/apps/web/logs?tail=10`.
    pub path_and_query: &'a str,
    /// The request body (empty for `GET`).
    pub body: &'a [u8],
}

/// A fresh nonce from the operating system's randomness.
pub fn random_nonce() -> [u8; NONCE_BYTES] {
    use rand::RngCore as _;
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// The signature of one request and what it covers besides the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAuth {
    /// The signer's key.
    pub key: PublicKey,
    /// When it was signed, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Random bytes, never used twice.
    pub nonce: [u8; NONCE_BYTES],
    /// The signature over [`signed_message`].
    pub signature: Signature,
}

/// The bytes that are signed: the domain, then each field with its length
/// (u64 little-endian) in front, so no two requests share a message.
pub fn signed_message(
    target: &RequestTarget<'_>,
    timestamp_ms: u64,
    nonce: &[u8; NONCE_BYTES],
) -> Vec<u8> {
    let body_hash = Hash::digest(&[target.body]);
    let method = target.method.to_ascii_uppercase();
    let timestamp = timestamp_ms.to_le_bytes();
    let fields: [&[u8]; 6] = [
        target.chain_id.as_bytes(),
        method.as_bytes(),
        target.path_and_query.as_bytes(),
        body_hash.as_bytes(),
        &timestamp,
        nonce,
    ];
    let mut message =
        Vec::with_capacity(DOMAIN.len() + fields.iter().map(|f| f.len() + 8).sum::<usize>());
    message.extend_from_slice(DOMAIN);
    for field in fields {
        message.extend_from_slice(&(field.len() as u64).to_le_bytes());
        message.extend_from_slice(field);
    }
    message
}

impl RequestAuth {
    /// Signs `target` with `key` at `timestamp_ms` with `nonce` (fresh
    /// randomness, [`NONCE_BYTES`] of it).
    pub fn sign(
        key: &SecretKey,
        target: &RequestTarget<'_>,
        timestamp_ms: u64,
        nonce: [u8; NONCE_BYTES],
    ) -> RequestAuth {
        let signature = key.sign(&signed_message(target, timestamp_ms, &nonce));
        RequestAuth {
            key: key.public_key(),
            timestamp_ms,
            nonce,
            signature,
        }
    }

    /// The four headers, names and values.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_KEY, self.key.to_string()),
            (HEADER_TIMESTAMP, self.timestamp_ms.to_string()),
            (HEADER_NONCE, hex::encode(self.nonce)),
            (HEADER_SIGNATURE, self.signature.to_string()),
        ]
    }

    /// Reads the four headers through `header` (a lookup by lower-case
    /// name); a missing or malformed one is an error naming it.
    pub fn from_headers<'h>(
        header: impl Fn(&'static str) -> Option<&'h str>,
    ) -> Result<RequestAuth, RequestAuthError> {
        let get = |name: &'static str| {
            header(name)
                .map(str::trim)
                .ok_or(RequestAuthError::Missing { header: name })
        };
        let malformed =
            |header: &'static str, reason: String| RequestAuthError::Malformed { header, reason };
        let key: PublicKey = get(HEADER_KEY)?
            .parse()
            .map_err(|e| malformed(HEADER_KEY, format!("{e}")))?;
        let timestamp = get(HEADER_TIMESTAMP)?;
        let timestamp_ms: u64 = timestamp.parse().map_err(|_| {
            malformed(
                HEADER_TIMESTAMP,
                format!("'{}' is not ms since the Unix epoch", shorten(timestamp)),
            )
        })?;
        let nonce_text = get(HEADER_NONCE)?;
        let mut nonce = [0u8; NONCE_BYTES];
        hex::decode_to_slice(nonce_text, &mut nonce).map_err(|_| {
            malformed(
                HEADER_NONCE,
                format!("expected {} hexadecimal characters", NONCE_BYTES * 2),
            )
        })?;
        let signature: Signature = get(HEADER_SIGNATURE)?
            .parse()
            .map_err(|e| malformed(HEADER_SIGNATURE, format!("{e}")))?;
        Ok(RequestAuth {
            key,
            timestamp_ms,
            nonce,
            signature,
        })
    }

    /// Checks the time window (against `now_ms`, the verifier's clock) and
    /// the signature over `target`. The nonce is checked separately, with
    /// [`ReplayCache::admit`], once the caller knows the signer may ask.
    pub fn verify(&self, target: &RequestTarget<'_>, now_ms: u64) -> Result<(), RequestAuthError> {
        if self.timestamp_ms.saturating_add(REQUEST_SKEW_MS_MAX) < now_ms {
            return Err(RequestAuthError::Expired {
                age_ms: now_ms - self.timestamp_ms,
                window_ms: REQUEST_SKEW_MS_MAX,
            });
        }
        if self.timestamp_ms > now_ms.saturating_add(REQUEST_SKEW_MS_MAX) {
            return Err(RequestAuthError::FromTheFuture {
                ahead_ms: self.timestamp_ms - now_ms,
                window_ms: REQUEST_SKEW_MS_MAX,
            });
        }
        if target.method.len() > REQUEST_TARGET_LEN_MAX
            || target.path_and_query.len() > REQUEST_TARGET_LEN_MAX
        {
            return Err(RequestAuthError::Malformed {
                header: HEADER_SIGNATURE,
                reason: format!("the signed path is longer than {REQUEST_TARGET_LEN_MAX} bytes"),
            });
        }
        let message = signed_message(target, self.timestamp_ms, &self.nonce);
        if self.key.verify(&message, &self.signature) {
            Ok(())
        } else {
            Err(RequestAuthError::BadSignature {
                chain_id: target.chain_id.to_string(),
            })
        }
    }
}

/// At most the first 40 characters of a header value, for messages.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// The nonces a node has accepted and still has to refuse again: each is
/// kept until its request's timestamp falls out of the window, then
/// forgotten (a request that old is refused as expired anyway).
///
/// Bounded: with `capacity` nonces kept, a new one is refused
/// ([`RequestAuthError::ReplayCacheFull`]) rather than an older one
/// forgotten, which would let a recorded request be replayed.
pub struct ReplayCache {
    capacity: usize,
    window_ms: u64,
    seen: HashSet<(PublicKey, [u8; NONCE_BYTES])>,
    /// The same entries by expiry time, for eviction in time order.
    by_expiry: BTreeSet<(u64, PublicKey, [u8; NONCE_BYTES])>,
}

impl fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity)
            .field("window_ms", &self.window_ms)
            .field("entries", &self.seen.len())
            .finish()
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(REPLAY_CACHE_ENTRIES_MAX, REQUEST_SKEW_MS_MAX)
    }
}

impl ReplayCache {
    /// A cache of at most `capacity` nonces (at least 1), for requests
    /// accepted within `window_ms` of the clock.
    pub fn new(capacity: usize, window_ms: u64) -> ReplayCache {
        ReplayCache {
            capacity: capacity.max(1),
            window_ms,
            seen: HashSet::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Records the nonce of `auth` (already verified) at `now_ms`; refuses
    /// a nonce this key used before within the window, and any new nonce
    /// when the cache is full of nonces still young.
    pub fn admit(&mut self, auth: &RequestAuth, now_ms: u64) -> Result<(), RequestAuthError> {
        self.evict(now_ms);
        let entry = (auth.key, auth.nonce);
        if self.seen.contains(&entry) {
            return Err(RequestAuthError::Replayed {
                nonce: hex::encode(auth.nonce),
            });
        }
        if self.seen.len() >= self.capacity {
            return Err(RequestAuthError::ReplayCacheFull {
                entries: self.seen.len(),
                window_ms: self.window_ms.saturating_mul(2),
            });
        }
        let expires_ms = auth.timestamp_ms.saturating_add(self.window_ms);
        self.seen.insert(entry);
        self.by_expiry.insert((expires_ms, auth.key, auth.nonce));
        Ok(())
    }

    /// Forgets the nonces whose requests are now out of the window.
    fn evict(&mut self, now_ms: u64) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 >= now_ms {
                break;
            }
            let (_, key, nonce) = *first;
            self.by_expiry.pop_first();
            self.seen.remove(&(key, nonce));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = "flux-devnet";
    const NOW: u64 = 1_800_000_000_000;

    fn target<'a>(path: &'a str, body: &'a [u8]) -> RequestTarget<'a> {
        RequestTarget {
            chain_id: CHAIN,
            method: "GET",
            path_and_query: path,
            body,
        }
    }

    fn signed(key: &SecretKey, path: &str, at: u64, nonce: u8) -> RequestAuth {
        RequestAuth::sign(key, &target(path, b""), at, [nonce; NONCE_BYTES])
    }

    /// Verifies `auth` against a request, then admits its nonce.
    fn check(
        cache: &mut ReplayCache,
        auth: &RequestAuth,
        request: &RequestTarget<'_>,
        now: u64,
    ) -> Result<(), &'static str> {
        auth.verify(request, now).map_err(|e| e.code())?;
        cache.admit(auth, now).map_err(|e| e.code())
    }

    #[test]
    fn a_fresh_signature_passes_through_its_headers() {
        let key = SecretKey::development("owner");
        let auth = signed(&key, "/api/v1/apps/web/logs?tail=10", NOW, 1);
        let headers = auth.headers();
        let parsed = RequestAuth::from_headers(|name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        })
        .unwrap();
        assert_eq!(parsed, auth);
        let mut cache = ReplayCache::default();
        check(
            &mut cache,
            &parsed,
            &target("/api/v1/apps/web/logs?tail=10", b""),
            NOW + 1_000,
        )
        .unwrap();
        // The method is compared in upper case.
        let lower = RequestTarget {
            method: "get",
            ..target("/api/v1/apps/web/logs?tail=10", b"")
        };
        auth.verify(&lower, NOW).unwrap();
    }

    #[test]
    fn any_change_to_the_request_breaks_the_signature() {
        let key = SecretKey::development("owner");
        let original = target("/api/v1/apps/web/logs?tail=10", b"body");
        let auth = RequestAuth::sign(&key, &original, NOW, [7; NONCE_BYTES]);
        auth.verify(&original, NOW).unwrap();
        let cases = [
            ("body", target("/api/v1/apps/web/logs?tail=10", b"bodY")),
            ("path", target("/api/v1/apps/other/logs?tail=10", b"body")),
            ("query", target("/api/v1/apps/web/logs?tail=11", b"body")),
            (
                "method",
                RequestTarget {
                    method: "POST",
                    ..original
                },
            ),
            (
                "chain id",
                RequestTarget {
                    chain_id: "flux-mainnet",
                    ..original
                },
            ),
        ];
        for (what, changed) in cases {
            let error = auth.verify(&changed, NOW).unwrap_err();
            assert_eq!(error.code(), "signature_invalid", "{what}");
        }
        let mut other_time = auth.clone();
        other_time.timestamp_ms += 1;
        assert_eq!(
            other_time.verify(&original, NOW).unwrap_err().code(),
            "signature_invalid"
        );
        let mut other_nonce = auth.clone();
        other_nonce.nonce[0] ^= 1;
        assert_eq!(
            other_nonce.verify(&original, NOW).unwrap_err().code(),
            "signature_invalid"
        );
        let mut other_key = auth.clone();
        other_key.key = SecretKey::development("thief").public_key();
        assert_eq!(
            other_key.verify(&original, NOW).unwrap_err().code(),
            "signature_invalid"
        );
        let wrong_chain = auth
            .verify(
                &RequestTarget {
                    chain_id: "flux-mainnet",
                    ..original
                },
                NOW,
            )
            .unwrap_err();
        assert!(
            wrong_chain.to_string().contains("flux-mainnet"),
            "{wrong_chain}"
        );
    }

    #[test]
    fn the_window_is_five_minutes_either_way() {
        let key = SecretKey::development("owner");
        let path = "/api/v1/apps/web/stats";
        let request = target(path, b"");
        signed(&key, path, NOW - REQUEST_SKEW_MS_MAX, 1)
            .verify(&request, NOW)
            .unwrap();
        signed(&key, path, NOW + REQUEST_SKEW_MS_MAX, 2)
            .verify(&request, NOW)
            .unwrap();
        let expired = signed(&key, path, NOW - REQUEST_SKEW_MS_MAX - 1, 3)
            .verify(&request, NOW)
            .unwrap_err();
        assert_eq!(expired.code(), "signature_expired");
        assert!(expired.to_string().contains("300001 ms ago"), "{expired}");
        let future = signed(&key, path, NOW + REQUEST_SKEW_MS_MAX + 1, 4)
            .verify(&request, NOW)
            .unwrap_err();
        assert_eq!(future.code(), "signature_from_the_future");
    }

    #[test]
    fn a_nonce_is_refused_again_until_its_request_expires() {
        let key = SecretKey::development("owner");
        let path = "/api/v1/apps/web/logs";
        let request = target(path, b"");
        let mut cache = ReplayCache::default();
        let auth = signed(&key, path, NOW, 9);
        check(&mut cache, &auth, &request, NOW).unwrap();
        assert_eq!(
            check(&mut cache, &auth, &request, NOW + 1),
            Err("nonce_replayed")
        );
        assert_eq!(
            check(&mut cache, &auth, &request, NOW + REQUEST_SKEW_MS_MAX),
            Err("nonce_replayed")
        );
        // Once out of the window the request is refused as expired, and its
        // nonce is forgotten.
        assert_eq!(
            check(&mut cache, &auth, &request, NOW + REQUEST_SKEW_MS_MAX + 1),
            Err("signature_expired")
        );
        let later = signed(&key, path, NOW + REQUEST_SKEW_MS_MAX + 1, 10);
        check(&mut cache, &later, &request, NOW + REQUEST_SKEW_MS_MAX + 1).unwrap();
        assert_eq!(cache.len(), 1);
        // The same nonce from another key is another request.
        let other = signed(
            &SecretKey::development("other"),
            path,
            NOW + REQUEST_SKEW_MS_MAX + 1,
            10,
        );
        check(&mut cache, &other, &request, NOW + REQUEST_SKEW_MS_MAX + 1).unwrap();
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let key = SecretKey::development("owner");
        let path = "/api/v1/apps/web/logs";
        let request = target(path, b"");
        let mut cache = ReplayCache::new(2, REQUEST_SKEW_MS_MAX);
        let first = signed(&key, path, NOW, 1);
        check(&mut cache, &first, &request, NOW).unwrap();
        check(
            &mut cache,
            &signed(&key, path, NOW + 10, 2),
            &request,
            NOW + 10,
        )
        .unwrap();
        let third = signed(&key, path, NOW + 20, 3);
        assert_eq!(
            check(&mut cache, &third, &request, NOW + 20),
            Err("replay_cache_full")
        );
        assert!(
            RequestAuthError::ReplayCacheFull {
                entries: 2,
                window_ms: 1
            }
            .is_overload()
        );
        // The young nonces are all still refused.
        assert_eq!(
            check(&mut cache, &first, &request, NOW + 20),
            Err("nonce_replayed")
        );
        // Once the first expires there is room again.
        let at = NOW + REQUEST_SKEW_MS_MAX + 1;
        let fourth = signed(&key, path, at, 4);
        check(&mut cache, &fourth, &request, at).unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let key = SecretKey::development("owner");
        let headers = signed(&key, "/x", NOW, 1).headers();
        for (skip, _) in &headers {
            let error = RequestAuth::from_headers(|name| {
                headers
                    .iter()
                    .find(|(n, _)| *n == name && n != skip)
                    .map(|(_, v)| v.as_str())
            })
            .unwrap_err();
            assert_eq!(error, RequestAuthError::Missing { header: skip });
            assert_eq!(error.code(), "signature_missing");
        }
        for (broken, value) in [
            (HEADER_KEY, "zz"),
            (HEADER_TIMESTAMP, "yesterday"),
            (HEADER_NONCE, "abcd"),
            (HEADER_SIGNATURE, "00"),
        ] {
            let error = RequestAuth::from_headers(|name| {
                if name == broken {
                    Some(value)
                } else {
                    headers
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.as_str())
                }
            })
            .unwrap_err();
            assert_eq!(error.code(), "signature_malformed", "{broken}");
            assert!(error.to_string().contains(broken), "{error}");
        }
    }
}
