//! The local keystore: one JSON file per key under `HOME/keys/`, readable
//! only by its owner. Keys never leave this machine; the node only ever sees
//! signatures.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use flux_types::{Address, PublicKey, SecretKey};
use serde::{Deserialize, Serialize};

/// Longest key name.
const NAME_LEN_MAX: usize = 32;
/// Largest key file read; a real one is a few hundred bytes.
const KEY_FILE_BYTES_MAX: u64 = 16 * 1024;

/// A key file: the secret seed and, for convenience, what derives from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyFile {
    /// The key's name in the keystore.
    pub(crate) name: String,
    /// The address the key controls.
    pub(crate) address: Address,
    /// The ed25519 public key.
    pub(crate) public_key: PublicKey,
    /// The 32-byte ed25519 seed, hex. Whoever reads it controls the address.
    pub(crate) seed: String,
}

impl KeyFile {
    pub(crate) fn new(name: &str, key: &SecretKey) -> KeyFile {
        KeyFile {
            name: name.to_string(),
            address: key.address(),
            public_key: key.public_key(),
            seed: hex::encode(key.seed()),
        }
    }

    /// The signing key, checked against the public key and address stored
    /// beside it so that a damaged file is caught before it signs anything.
    pub(crate) fn secret(&self) -> Result<SecretKey> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(self.seed.trim(), &mut seed).map_err(|_| {
            anyhow!(
                "the seed of key '{}' is not 64 hexadecimal characters",
                self.name
            )
        })?;
        let key = SecretKey::from_seed(seed);
        if key.public_key() != self.public_key || key.address() != self.address {
            bail!(
                "key file of '{}' is inconsistent: its seed does not derive its public key or address",
                self.name
            );
        }
        Ok(key)
    }
}

/// Writes a key file that only its owner can read; never replaces an existing file.
pub(crate) fn write_key_file(path: &Path, key: &KeyFile) -> Result<()> {
    let mut text = serde_json::to_string_pretty(key)?;
    text.push('\n');
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                anyhow!(
                    "{} already exists; refusing to overwrite a key",
                    path.display()
                )
            }
            _ => anyhow!("cannot create {}: {e}", path.display()),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reads and checks a key file.
pub(crate) fn read_key_file(path: &Path) -> Result<KeyFile> {
    let size = fs::metadata(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?
        .len();
    if size > KEY_FILE_BYTES_MAX {
        bail!(
            "{} is {size} bytes, too large to be a key file",
            path.display()
        );
    }
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let key: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid key file", path.display()))?;
    key.secret()
        .with_context(|| format!("{} is damaged", path.display()))?;
    Ok(key)
}

/// Creates `dir` (and its parents) readable only by its owner.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // An existing directory keeps its mode from `create`; tighten it.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {} to its owner", dir.display()))
}

/// Checks a key name: it becomes a file name and must never read as an address.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let rule = "use 1 to 32 letters, digits, '-' or '_', starting with a letter or digit";
    let ok = !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("'{name}' is not a valid key name; {rule}");
    }
    if name.starts_with("flux1") {
        bail!("'{name}' looks like an address; key names may not start with 'flux1'");
    }
    Ok(())
}

/// What [`Keystore::ensure`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ensured {
    Created,
    AlreadyPresent,
}

/// The keys under `HOME/keys`.
pub(crate) struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    pub(crate) fn new(home: &Path) -> Keystore {
        Keystore {
            dir: home.join("keys"),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Stores `key` under `name`; refuses a name that is taken.
    pub(crate) fn create(&self, name: &str, key: &SecretKey) -> Result<KeyFile> {
        validate_name(name)?;
        create_private_dir(&self.dir)?;
        let path = self.path(name);
        if path.exists() {
            bail!(
                "a key named '{name}' already exists ({}); choose another name, the old key is kept",
                path.display()
            );
        }
        let file = KeyFile::new(name, key);
        write_key_file(&path, &file)?;
        Ok(file)
    }

    /// Stores `key` under `name` unless that exact key is already there; a
    /// different key under the same name is an error (never overwritten).
    pub(crate) fn ensure(&self, name: &str, key: &SecretKey) -> Result<Ensured> {
        self.check_ensure(name, key)?;
        if self.path(name).exists() {
            return Ok(Ensured::AlreadyPresent);
        }
        self.create(name, key)?;
        Ok(Ensured::Created)
    }

    /// Checks that [`Keystore::ensure`] would succeed, changing nothing.
    pub(crate) fn check_ensure(&self, name: &str, key: &SecretKey) -> Result<()> {
        validate_name(name)?;
        let path = self.path(name);
        if !path.exists() {
            return Ok(());
        }
        let existing = read_key_file(&path)?;
        if existing.address != key.address() {
            bail!(
                "a key named '{name}' already exists in {} with address {}, not the development key {}; \
                 rename or remove {} (or use another --home) so the devnet can install its well-known keys",
                self.dir.display(),
                existing.address,
                key.address(),
                path.display()
            );
        }
        Ok(())
    }

    /// The key named `name`; an unknown name lists the known ones.
    pub(crate) fn load(&self, name: &str) -> Result<KeyFile> {
        validate_name(name)?;
        let path = self.path(name);
        if !path.exists() {
            let names = self.names();
            if names.is_empty() {
                bail!(
                    "no key named '{name}': the keystore {} is empty; create one with `flux keys new {name}`, \
                     or start a devnet with `flux devnet up` to get funded development keys",
                    self.dir.display()
                );
            }
            bail!(
                "no key named '{name}' in {}; known keys: {} (create one with `flux keys new {name}`)",
                self.dir.display(),
                names.join(", ")
            );
        }
        read_key_file(&path)
    }

    /// Names of the stored keys, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".json")?;
                validate_name(stem).ok()?;
                Some(stem.to_string())
            })
            .collect();
        names.sort();
        names
    }

    /// Every readable key, sorted by name, and a message per unreadable file.
    pub(crate) fn list(&self) -> (Vec<KeyFile>, Vec<String>) {
        let mut keys = Vec::new();
        let mut problems = Vec::new();
        for name in self.names() {
            match read_key_file(&self.path(&name)) {
                Ok(key) => keys.push(key),
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        (keys, problems)
    }
}

/// Who an argument names: a key from the keystore or a bare address.
pub(crate) struct Party {
    pub(crate) address: Address,
    pub(crate) key_name: Option<String>,
}

/// Reads `text` as an address (`flux1…`, checked against its checksum) or
/// as the name of a key in the keystore.
pub(crate) fn resolve_party(keystore: &Keystore, text: &str) -> Result<Party> {
    let text = text.trim();
    if text.starts_with("flux1") {
        let address: Address = text.parse()?;
        return Ok(Party {
            address,
            key_name: None,
        });
    }
    let key = keystore.load(text)?;
    Ok(Party {
        address: key.address,
        key_name: Some(key.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["alice", "dev0", "a", "node-1_b", "ABC"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a b",
            "a/b",
            "../x",
            "a.json",
            "flux1abc",
            &"x".repeat(33),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stores_and_refuses_overwrite() {
        let home = tempfile::tempdir().unwrap();
        let keystore = Keystore::new(home.path());
        let key = SecretKey::development("x");
        let stored = keystore.create("alice", &key).unwrap();
        assert_eq!(stored.address, key.address());
        let mode = fs::metadata(keystore.path("alice"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(keystore.dir()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert!(keystore.create("alice", &SecretKey::generate()).is_err());
        assert_eq!(keystore.load("alice").unwrap().address, key.address());
        assert_eq!(
            keystore.ensure("alice", &key).unwrap(),
            Ensured::AlreadyPresent
        );
        assert!(
            keystore
                .ensure("alice", &SecretKey::development("y"))
                .is_err()
        );
        let error = keystore.load("bob").unwrap_err().to_string();
        assert!(error.contains("known keys: alice"), "{error}");
    }
}
