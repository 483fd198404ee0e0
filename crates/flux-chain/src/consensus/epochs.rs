//! Committees by epoch: computed from ledger state at each epoch's end,
//! kept on disk, and offered to consensus as signing schemes.
//!
//! The committee of epoch `e + 1` is a function of the state after the last
//! block of epoch `e`. That state is gone once later blocks commit, so the
//! committees are written to `committees.json` in the data directory before
//! the boundary block is acknowledged to consensus. The file holds only the
//! epochs where the committee changed, plus the highest epoch known.
//!
//! Invariant on restart: if the finalized tip is the last block of epoch
//! `e`, the file knows every epoch up to `e` and maybe `e + 1`; otherwise it
//! knows every epoch up to the tip's. A missing `e + 1` is computed again
//! from the tip state, which is exactly the state it was computed from.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use commonware_codec::DecodeExt as _;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::types::Epoch;
use commonware_cryptography::{certificate, ed25519};
use commonware_utils::ordered::Set;
use flux_types::PublicKey;
use serde::{Deserialize, Serialize};

use crate::committee::Member;

/// The file, in the node's data directory.
pub(crate) const COMMITTEES_FILE: &str = "committees.json";
/// Largest committees file read.
const COMMITTEES_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// A committee member as written to disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredMember {
    key: PublicKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p2p_endpoint: Option<String>,
}

/// The file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    /// Highest epoch whose committee is known.
    highest_epoch: Option<u64>,
    /// From each epoch where the committee changed, the committee.
    changes: BTreeMap<u64, Vec<StoredMember>>,
}

/// Why the committees could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EpochsError {
    /// The file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A different committee for an epoch already recorded: the ledger is
    /// not deterministic, or the file belongs to another chain.
    #[error(
        "the committee computed for epoch {epoch} differs from the one recorded in {path}; the data directory does not match this chain"
    )]
    Conflict {
        /// The epoch.
        epoch: u64,
        /// The file.
        path: PathBuf,
    },
}

/// The committees known so far.
#[derive(Debug)]
pub(crate) struct Committees {
    path: PathBuf,
    stored: Stored,
}

impl Committees {
    /// Loads `dir/committees.json`, or starts empty if there is none.
    pub(crate) fn load(dir: &Path) -> Result<Committees, EpochsError> {
        let path = dir.join(COMMITTEES_FILE);
        let io = |message: String| EpochsError::Io {
            path: path.clone(),
            message,
        };
        let stored = match fs::metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(error) => return Err(io(error.to_string())),
            Ok(meta) if meta.len() > COMMITTEES_FILE_BYTES_MAX => {
                return Err(io(format!(
                    "{} bytes, more than the {COMMITTEES_FILE_BYTES_MAX} allowed",
                    meta.len()
                )));
            }
            Ok(_) => {
                let text = fs::read_to_string(&path).map_err(|e| io(e.to_string()))?;
                serde_json::from_str(&text).map_err(|e| io(format!("not valid: {e}")))?
            }
        };
        Ok(Committees { path, stored })
    }

    /// The highest epoch whose committee is known.
    pub(crate) fn highest_epoch(&self) -> Option<u64> {
        self.stored.highest_epoch
    }

    /// The committee of `epoch`, if known.
    pub(crate) fn get(&self, epoch: u64) -> Option<Vec<Member>> {
        if self.stored.highest_epoch? < epoch {
            return None;
        }
        let (_, members) = self.stored.changes.range(..=epoch).next_back()?;
        Some(
            members
                .iter()
                .map(|m| Member {
                    key: m.key,
                    p2p_endpoint: m.p2p_endpoint.clone(),
                })
                .collect(),
        )
    }

    /// Records the committee of `epoch` (the next one after the highest, or
    /// an epoch already known with the same committee) and makes it durable.
    pub(crate) fn record(&mut self, epoch: u64, members: &[Member]) -> Result<(), EpochsError> {
        let keys = |members: &[Member]| -> Vec<PublicKey> {
            let mut keys: Vec<PublicKey> = members.iter().map(|m| m.key).collect();
            keys.sort();
            keys
        };
        if let Some(known) = self.get(epoch) {
            if keys(&known) != keys(members) {
                return Err(EpochsError::Conflict {
                    epoch,
                    path: self.path.clone(),
                });
            }
            return Ok(());
        }
        let expected = self.stored.highest_epoch.map_or(0, |h| h + 1);
        assert_eq!(epoch, expected, "committees are recorded epoch after epoch");
        let stored: Vec<StoredMember> = members
            .iter()
            .map(|m| StoredMember {
                key: m.key,
                p2p_endpoint: m.p2p_endpoint.clone(),
            })
            .collect();
        let mut next = self.stored.clone();
        let changed = match next.changes.range(..=epoch).next_back() {
            Some((_, previous)) => previous != &stored,
            None => true,
        };
        if changed {
            next.changes.insert(epoch, stored);
        }
        next.highest_epoch = Some(epoch);
        self.write(&next)?;
        self.stored = next;
        Ok(())
    }

    /// Writes through a temporary file and a rename, with fsyncs, so that a
    /// crash leaves either the old file or the new one.
    fn write(&self, stored: &Stored) -> Result<(), EpochsError> {
        let io = |message: String| EpochsError::Io {
            path: self.path.clone(),
            message,
        };
        let text = serde_json::to_string(stored).map_err(|e| io(e.to_string()))?;
        let partial = self.path.with_extension("json.partial");
        let mut file = fs::File::create(&partial).map_err(|e| io(e.to_string()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io(e.to_string()))?;
        drop(file);
        fs::rename(&partial, &self.path).map_err(|e| io(e.to_string()))?;
        if let Some(dir) = self.path.parent()
            && let Ok(dir) = fs::File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// A Flux key as a consensus key.
pub(crate) fn consensus_key(key: &PublicKey) -> Option<ed25519::PublicKey> {
    ed25519::PublicKey::decode(commonware_codec::Copying(&key.0)).ok()
}

/// A consensus key as a Flux key.
pub(crate) fn flux_key(key: &ed25519::PublicKey) -> PublicKey {
    let bytes: &[u8] = key.as_ref();
    let mut out = [0; 32];
    out.copy_from_slice(bytes);
    PublicKey(out)
}

/// The participants of a committee, in the order consensus uses (sorted).
pub(crate) fn participants(members: &[Member]) -> Set<ed25519::PublicKey> {
    Set::from_iter_dedup(members.iter().filter_map(|m| consensus_key(&m.key)))
}

/// The signing or verifying scheme of each epoch this node knows, shared by
/// marshal (to verify certificates of any known epoch) and the epoch
/// orchestrator (to sign in the epochs where this node has a seat).
#[derive(Clone)]
pub(crate) struct EpochSchemes {
    namespace: Arc<Vec<u8>>,
    signer: ed25519::PrivateKey,
    schemes: Arc<RwLock<BTreeMap<Epoch, Arc<Scheme>>>>,
}

impl EpochSchemes {
    pub(crate) fn new(namespace: Vec<u8>, signer: ed25519::PrivateKey) -> EpochSchemes {
        EpochSchemes {
            namespace: Arc::new(namespace),
            signer,
            schemes: Arc::default(),
        }
    }

    /// Registers the committee of `epoch`; returns its scheme, which signs if
    /// this node is a member and only verifies otherwise.
    pub(crate) fn register(&self, epoch: Epoch, members: &[Member]) -> Arc<Scheme> {
        let participants = participants(members);
        let scheme = Scheme::signer(&self.namespace, participants.clone(), self.signer.clone())
            .unwrap_or_else(|| Scheme::verifier(&self.namespace, participants));
        let scheme = Arc::new(scheme);
        self.schemes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(epoch, scheme.clone());
        scheme
    }

    /// Whether this node signs in `epoch`.
    pub(crate) fn is_member(&self, epoch: Epoch) -> bool {
        self.get(epoch).is_some_and(|scheme| {
            matches!(
                certificate::Scheme::me(scheme.as_ref()),
                Some(certificate::Membership::Signer(_))
            )
        })
    }

    fn get(&self, epoch: Epoch) -> Option<Arc<Scheme>> {
        self.schemes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&epoch)
            .cloned()
    }
}

impl certificate::Provider for EpochSchemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, epoch: Epoch) -> Option<certificate::Scoped<Scheme>> {
        let scheme = self.get(epoch)?;
        Some(if self.is_member(epoch) {
            certificate::Scoped::scheme(scheme)
        } else {
            certificate::Scoped::verifier(scheme)
        })
    }

    /// Also returns verify-only schemes: marshal needs one to accept
    /// notarized blocks on a node without a seat.
    fn scheme(&self, epoch: Epoch) -> Option<Arc<Scheme>> {
        self.get(epoch)
    }
}

#[cfg(test)]
mod tests {
    use flux_types::SecretKey;

    use super::*;

    fn member(name: &str) -> Member {
        Member {
            key: SecretKey::development(name).public_key(),
            p2p_endpoint: Some("127.0.0.1:16125".into()),
        }
    }

    #[test]
    fn records_changes_durably_and_refuses_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let mut committees = Committees::load(dir.path()).unwrap();
        assert_eq!(committees.highest_epoch(), None);
        let ab = [member("a"), member("b")];
        let abc = [member("a"), member("b"), member("c")];
        committees.record(0, &ab).unwrap();
        committees.record(1, &ab).unwrap();
        committees.record(2, &abc).unwrap();
        // Recording a known epoch again is harmless; a different committee is refused.
        committees.record(1, &ab).unwrap();
        assert!(matches!(
            committees.record(1, &abc),
            Err(EpochsError::Conflict { epoch: 1, .. })
        ));
        let again = Committees::load(dir.path()).unwrap();
        assert_eq!(again.highest_epoch(), Some(2));
        assert_eq!(again.get(1).unwrap(), ab);
        assert_eq!(again.get(2).unwrap(), abc);
        assert_eq!(again.get(3), None);
        // Only the changes are stored.
        assert_eq!(again.stored.changes.len(), 2);
    }

    #[test]
    fn keys_convert_both_ways() {
        let key = SecretKey::development("a").public_key();
        let consensus = consensus_key(&key).unwrap();
        assert_eq!(flux_key(&consensus), key);
    }
}
