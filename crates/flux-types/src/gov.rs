//! Governance: what a proposal asks for, how votes are cast, the params of
//! the process itself, the matching rules of the network's image blocklist,
//! and the file form of a proposal.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::codec::{check_count, check_len};
use crate::crypto::Address;

/// Longest proposal title, in bytes.
pub const TITLE_LEN_MAX: usize = 140;
/// Longest proposal description, in bytes.
pub const DESCRIPTION_LEN_MAX: usize = 4_000;
/// Most params changed by one proposal.
pub const PARAM_CHANGES_MAX: usize = 32;
/// Longest param key, in bytes.
pub const PARAM_KEY_LEN_MAX: usize = 64;
/// Longest param value text, in bytes.
pub const PARAM_VALUE_LEN_MAX: usize = 64;
/// Most images added to or removed from the blocklist by one proposal.
pub const IMAGES_MAX: usize = 32;
/// Longest image entry of the blocklist, in bytes.
pub const IMAGE_LEN_MAX: usize = 255;

/// The params of governance itself (governable like every other param).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct GovParams {
    /// The least a proposal must deposit; returned when the vote reaches
    /// quorum, burned when it does not.
    pub proposal_deposit: Amount,
    /// How long a proposal is open for votes, in ms of chain time.
    pub voting_period_ms: u64,
    /// Share of the total voting power at a proposal's start that must vote
    /// (yes, no or abstain) for the outcome to count, in percent.
    pub quorum_percent: u32,
    /// Blocks between the end of a passed vote and the block whose
    /// transactions first see its effect.
    pub activation_delay_blocks: u64,
    /// Voting power per unit of locked node collateral, in thousandths.
    pub collateral_weight_milli: u64,
    /// Voting power per unit of liquid balance, in thousandths.
    pub balance_weight_milli: u64,
    /// Most proposals open for votes at once; a further proposal is refused
    /// until one closes.
    pub open_proposals_max: u32,
}

impl GovParams {
    /// Production defaults: a week of voting, 30 % quorum, a 100 FLUX deposit.
    pub fn mainnet() -> GovParams {
        GovParams {
            proposal_deposit: Amount::flux(100),
            voting_period_ms: 7 * 24 * 3_600 * 1_000,
            quorum_percent: 30,
            activation_delay_blocks: 3_600,
            collateral_weight_milli: 1_000,
            balance_weight_milli: 1_000,
            open_proposals_max: 100,
        }
    }

    /// Devnet defaults: 30 s of voting and a short delay, so that a walkthrough takes a minute.
    pub fn devnet() -> GovParams {
        GovParams {
            proposal_deposit: Amount::flux(10),
            voting_period_ms: 30_000,
            activation_delay_blocks: 2,
            ..GovParams::mainnet()
        }
    }

    /// Checks consistency.
    pub fn validate(&self) -> Result<(), String> {
        if self.voting_period_ms == 0 {
            return Err("gov.voting_period_ms must be positive".into());
        }
        if self.quorum_percent > 100 {
            return Err("gov.quorum_percent must be at most 100".into());
        }
        if self.activation_delay_blocks == 0 {
            return Err("gov.activation_delay_blocks must be at least 1".into());
        }
        if self.collateral_weight_milli == 0 && self.balance_weight_milli == 0 {
            return Err(
                "gov.collateral_weight_milli and gov.balance_weight_milli cannot both be 0".into(),
            );
        }
        if self.open_proposals_max == 0 {
            return Err("gov.open_proposals_max must be at least 1".into());
        }
        Ok(())
    }
}

/// One param set to a new value, by key (as `flux chain params` lists them).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct ParamChange {
    /// The key, e.g. `app_prices.cpu_per_tenth`.
    pub key: String,
    /// The new value as text: FLUX amounts as decimals (`0.02`), counts as integers.
    pub value: String,
}

/// What a proposal does when it passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProposalAction {
    /// Set one or more params.
    ParamChange {
        /// The changes, applied together or not at all.
        changes: Vec<ParamChange>,
    },
    /// Add images to the network blocklist, or remove them from it.
    ImagePolicy {
        /// Entries to add: `repository`, `repository:tag` or `repository@sha256:digest`.
        #[serde(default)]
        block: Vec<String>,
        /// Entries to remove.
        #[serde(default)]
        unblock: Vec<String>,
    },
    /// Pay from the treasury.
    TreasurySpend {
        /// Recipient.
        to: Address,
        /// Amount.
        amount: Amount,
    },
    /// Nothing: the outcome is recorded, no more.
    Text,
}

impl ProposalAction {
    /// A short stable name of the kind of proposal.
    pub fn kind(&self) -> &'static str {
        match self {
            ProposalAction::ParamChange { .. } => "param_change",
            ProposalAction::ImagePolicy { .. } => "image_policy",
            ProposalAction::TreasurySpend { .. } => "treasury_spend",
            ProposalAction::Text => "text",
        }
    }

    /// Checks lengths and counts (decode limits).
    pub(crate) fn check_limits(&self) -> Result<(), String> {
        match self {
            ProposalAction::ParamChange { changes } => {
                check_count("changes", changes, PARAM_CHANGES_MAX)?;
                for change in changes {
                    check_len("param key", &change.key, PARAM_KEY_LEN_MAX)?;
                    check_len("param value", &change.value, PARAM_VALUE_LEN_MAX)?;
                }
                Ok(())
            }
            ProposalAction::ImagePolicy { block, unblock } => {
                check_count("block", block, IMAGES_MAX)?;
                check_count("unblock", unblock, IMAGES_MAX)?;
                for image in block.iter().chain(unblock) {
                    check_len("image", image, IMAGE_LEN_MAX)?;
                }
                Ok(())
            }
            ProposalAction::TreasurySpend { .. } | ProposalAction::Text => Ok(()),
        }
    }
}

/// Checks the decode limits of a proposal's texts and action.
pub(crate) fn check_proposal_limits(
    title: &str,
    description: &str,
    action: &ProposalAction,
) -> Result<(), String> {
    check_len("title", title, TITLE_LEN_MAX)?;
    check_len("description", description, DESCRIPTION_LEN_MAX)?;
    action.check_limits()
}

/// A vote.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VoteChoice {
    /// For.
    Yes,
    /// Against.
    No,
    /// Counts toward quorum, neither for nor against.
    Abstain,
}

impl VoteChoice {
    /// `yes`, `no` or `abstain`.
    pub fn as_str(&self) -> &'static str {
        match self {
            VoteChoice::Yes => "yes",
            VoteChoice::No => "no",
            VoteChoice::Abstain => "abstain",
        }
    }
}

impl fmt::Display for VoteChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VoteChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "yes" => Ok(VoteChoice::Yes),
            "no" => Ok(VoteChoice::No),
            "abstain" => Ok(VoteChoice::Abstain),
            other => Err(format!("'{other}' is not a vote; vote yes, no or abstain")),
        }
    }
}

/// An image reference split into its parts, with Docker Hub's default
/// registry and `library/` namespace removed, so that `nginx`,
/// `library/nginx` and `docker.io/library/nginx` are the same repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `[host[:port]/]path`, normalized.
    pub repository: String,
    /// The tag, if one was named.
    pub tag: Option<String>,
    /// The digest `sha256:<hex>`, if one was named.
    pub digest: Option<String>,
}

/// Docker Hub's names for itself: an image there may be written with or without them.
const DEFAULT_REGISTRIES: [&str; 3] = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"];

impl ImageRef {
    /// Splits `[host[:port]/]path[:tag][@sha256:digest]`; the tag is optional.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an image entry is empty; name a repository such as 'nginx'".into());
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                let ok = digest
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !ok {
                    return Err(format!(
                        "'{text}' has a malformed digest; expected @sha256:<64 hex>"
                    ));
                }
                (name, Some(digest.to_ascii_lowercase()))
            }
            None => (text, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if let Some(tag) = &tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
            if !ok {
                return Err(format!("'{text}' has a malformed tag"));
            }
        }
        let ok_path = !path.is_empty()
            && path.split('/').all(|segment| {
                !segment.is_empty()
                    && segment.bytes().all(|b| {
                        b.is_ascii_alphanumeric()
                            || b == b'.'
                            || b == b'_'
                            || b == b'-'
                            || b == b':'
                    })
            });
        if !ok_path {
            return Err(format!(
                "'{text}' is not an image repository (letters, digits, '.', '_', '-' and '/' only)"
            ));
        }
        let mut repository = path.to_ascii_lowercase();
        for registry in DEFAULT_REGISTRIES {
            if let Some(rest) = repository.strip_prefix(registry) {
                repository = rest.to_string();
                break;
            }
        }
        if let Some(rest) = repository.strip_prefix("library/")
            && !rest.contains('/')
        {
            repository = rest.to_string();
        }
        Ok(ImageRef {
            repository,
            tag,
            digest,
        })
    }

    /// The blocklist entries that would block this image: its repository,
    /// its `repository:tag` and its `repository@digest`.
    pub fn block_keys(&self) -> Vec<String> {
        let mut keys = vec![self.repository.clone()];
        if let Some(tag) = &self.tag {
            keys.push(format!("{}:{tag}", self.repository));
        }
        if let Some(digest) = &self.digest {
            keys.push(format!("{}@{digest}", self.repository));
        }
        keys
    }
}

/// The canonical form of a blocklist entry: `repository`, `repository:tag`
/// or `repository@sha256:digest`, normalized as [`ImageRef`] does.
pub fn blocklist_entry(text: &str) -> Result<String, String> {
    let image = ImageRef::parse(text)?;
    match (&image.tag, &image.digest) {
        (None, None) => Ok(image.repository),
        (Some(tag), None) => Ok(format!("{}:{tag}", image.repository)),
        (None, Some(digest)) => Ok(format!("{}@{digest}", image.repository)),
        (Some(_), Some(_)) => Err(format!(
            "'{text}' names both a tag and a digest; block 'repository:tag' or 'repository@sha256:digest'"
        )),
    }
}

/// A proposal as written in a file (TOML or JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProposalFile {
    /// One line saying what the proposal does.
    pub title: String,
    /// Why; free text.
    pub description: String,
    /// What happens when it passes.
    pub action: ProposalAction,
    /// The deposit, when the file names one (otherwise the network's minimum).
    pub deposit: Option<Amount>,
}

/// The fields a proposal file may have.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    kind: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    deposit: Option<Amount>,
    #[serde(default)]
    params: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    block: Option<Vec<String>>,
    #[serde(default)]
    unblock: Option<Vec<String>>,
    #[serde(default)]
    to: Option<Address>,
    #[serde(default)]
    amount: Option<Amount>,
}

/// Reads a proposal file: JSON when it starts with `{`, TOML otherwise.
///
/// ```toml
/// kind = "param_change"          # or image_policy, treasury_spend, text
/// title = "Cheaper CPU"
/// description = "Halve the price of CPU for a quarter."
/// [params]
/// "app_prices.cpu_per_tenth" = "0.015"
/// ```
pub fn parse_proposal(text: &str) -> Result<ProposalFile, String> {
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        let value: toml::Value =
            toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
        serde_json::to_value(value).map_err(|e| e.to_string())?
    };
    let form: FileForm = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let misplaced = |field: &str, present: bool| -> Result<(), String> {
        if present {
            Err(format!(
                "'{field}' does not belong in a {} proposal",
                form.kind
            ))
        } else {
            Ok(())
        }
    };
    let action = match form.kind.as_str() {
        "param_change" => {
            misplaced("block", form.block.is_some())?;
            misplaced("unblock", form.unblock.is_some())?;
            misplaced("to", form.to.is_some())?;
            misplaced("amount", form.amount.is_some())?;
            let params = form
                .params
                .as_ref()
                .filter(|p| !p.is_empty())
                .ok_or("a param_change proposal needs a [params] table of KEY = VALUE")?;
            let mut flat = BTreeMap::new();
            flatten_params("", params, &mut flat)?;
            ProposalAction::ParamChange {
                changes: flat
                    .into_iter()
                    .map(|(key, value)| ParamChange { key, value })
                    .collect(),
            }
        }
        "image_policy" => {
            misplaced("params", form.params.is_some())?;
            misplaced("to", form.to.is_some())?;
            misplaced("amount", form.amount.is_some())?;
            let block = form.block.clone().unwrap_or_default();
            let unblock = form.unblock.clone().unwrap_or_default();
            if block.is_empty() && unblock.is_empty() {
                return Err(
                    "an image_policy proposal needs a 'block' or an 'unblock' list of images"
                        .into(),
                );
            }
            ProposalAction::ImagePolicy { block, unblock }
        }
        "treasury_spend" => {
            misplaced("params", form.params.is_some())?;
            misplaced("block", form.block.is_some())?;
            misplaced("unblock", form.unblock.is_some())?;
            ProposalAction::TreasurySpend {
                to: form
                    .to
                    .ok_or("a treasury_spend proposal needs 'to', the recipient's address")?,
                amount: form
                    .amount
                    .ok_or("a treasury_spend proposal needs 'amount', in FLUX")?,
            }
        }
        "text" => {
            misplaced("params", form.params.is_some())?;
            misplaced("block", form.block.is_some())?;
            misplaced("unblock", form.unblock.is_some())?;
            misplaced("to", form.to.is_some())?;
            misplaced("amount", form.amount.is_some())?;
            ProposalAction::Text
        }
        other => {
            return Err(format!(
                "kind '{other}' is not a kind of proposal; use param_change, image_policy, treasury_spend or text"
            ));
        }
    };
    if form.title.trim().is_empty() {
        return Err("the title is empty; say in one line what the proposal does".into());
    }
    check_proposal_limits(&form.title, &form.description, &action)?;
    Ok(ProposalFile {
        title: form.title,
        description: form.description,
        action,
        deposit: form.deposit,
    })
}

/// Turns `{ app_prices = { cpu_per_tenth = "0.02" } }` and
/// `{ "app_prices.cpu_per_tenth" = "0.02" }` alike into dotted keys with text values.
fn flatten_params(
    prefix: &str,
    table: &serde_json::Map<String, serde_json::Value>,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let text = match value {
            serde_json::Value::Object(inner) => {
                flatten_params(&key, inner, out)?;
                continue;
            }
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Number(number) => number.to_string(),
            other => {
                return Err(format!(
                    "param {key} has the value {other}; write a number or a string"
                ));
            }
        };
        if out.insert(key.clone(), text).is_some() {
            return Err(format!("param {key} is set twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_normalize_and_name_their_block_keys() {
        let image = ImageRef::parse("docker.io/library/nginx:1.25").unwrap();
        assert_eq!(image.repository, "nginx");
        assert_eq!(image.block_keys(), ["nginx", "nginx:1.25"]);
        let image = ImageRef::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(image.repository, "localhost:5000/team/app");
        assert_eq!(image.tag.as_deref(), Some("v1"));
        assert_eq!(ImageRef::parse("ghcr.io/x/y").unwrap().tag, None);
        let digest = format!("sha256:{}", "a".repeat(64));
        let image = ImageRef::parse(&format!("miner@{digest}")).unwrap();
        assert_eq!(
            image.block_keys(),
            ["miner".into(), format!("miner@{digest}")]
        );

        assert_eq!(blocklist_entry("library/nginx").unwrap(), "nginx");
        assert_eq!(
            blocklist_entry("Evil/Miner:Latest").unwrap(),
            "evil/miner:Latest"
        );
        assert!(blocklist_entry("").is_err());
        assert!(blocklist_entry("a b").is_err());
        assert!(blocklist_entry("x:").is_err());
        assert!(blocklist_entry(&format!("x:1@{digest}")).is_err());
        assert!(blocklist_entry("x@sha256:12").is_err());
    }

    #[test]
    fn the_example_files_parse() {
        let examples = [
            (
                include_str!("../../../examples/gov/cheaper-cpu.toml"),
                "param_change",
            ),
            (
                include_str!("../../../examples/gov/cheaper-cpu.json"),
                "param_change",
            ),
            (
                include_str!("../../../examples/gov/longer-votes.toml"),
                "param_change",
            ),
            (
                include_str!("../../../examples/gov/block-image.toml"),
                "image_policy",
            ),
            (
                include_str!("../../../examples/gov/treasury-spend.toml"),
                "treasury_spend",
            ),
            (include_str!("../../../examples/gov/text.toml"), "text"),
        ];
        for (text, kind) in examples {
            let proposal = parse_proposal(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
            assert_eq!(proposal.action.kind(), kind);
            if let ProposalAction::ParamChange { changes } = &proposal.action {
                crate::Params::mainnet()
                    .with_changes(changes)
                    .unwrap_or_else(|e| panic!("{e}:\n{text}"));
            }
            if let ProposalAction::ImagePolicy { block, .. } = &proposal.action {
                for image in block {
                    blocklist_entry(image).unwrap();
                }
            }
        }
        let toml = parse_proposal(examples[0].0).unwrap();
        assert_eq!(toml, parse_proposal(examples[1].0).unwrap());
    }

    #[test]
    fn votes_parse() {
        assert_eq!("YES".parse::<VoteChoice>(), Ok(VoteChoice::Yes));
        assert_eq!("abstain".parse::<VoteChoice>(), Ok(VoteChoice::Abstain));
        assert!(
            "maybe"
                .parse::<VoteChoice>()
                .unwrap_err()
                .contains("yes, no or abstain")
        );
    }

    #[test]
    fn proposal_files_in_both_forms_and_both_param_spellings() {
        let toml = r#"
            kind = "param_change"
            title = "Cheaper CPU"
            [params]
            "app_prices.cpu_per_tenth" = "0.02"
            epoch_length_blocks = 900
        "#;
        let nested = r#"
            kind = "param_change"
            title = "Cheaper CPU"
            [params.app_prices]
            cpu_per_tenth = "0.02"
            [params]
            epoch_length_blocks = 900
        "#;
        let json = r#"{"kind": "param_change", "title": "Cheaper CPU",
            "params": {"app_prices.cpu_per_tenth": "0.02", "epoch_length_blocks": 900}}"#;
        let expected = ProposalAction::ParamChange {
            changes: vec![
                ParamChange {
                    key: "app_prices.cpu_per_tenth".into(),
                    value: "0.02".into(),
                },
                ParamChange {
                    key: "epoch_length_blocks".into(),
                    value: "900".into(),
                },
            ],
        };
        for text in [toml, json] {
            assert_eq!(parse_proposal(text).unwrap().action, expected, "{text}");
        }
        assert_eq!(parse_proposal(nested).unwrap().action, expected);

        let spend = parse_proposal(&format!(
            "kind = \"treasury_spend\"\ntitle = \"t\"\nto = \"{}\"\namount = \"5\"\ndeposit = \"20\"",
            Address::module("x")
        ))
        .unwrap();
        assert_eq!(spend.deposit, Some(Amount::flux(20)));
        assert!(
            matches!(spend.action, ProposalAction::TreasurySpend { amount, .. } if amount == Amount::flux(5))
        );

        let error = parse_proposal("kind = \"text\"\ntitle = \"t\"\nblock = [\"x\"]").unwrap_err();
        assert!(error.contains("'block' does not belong"), "{error}");
        let error = parse_proposal("kind = \"vote\"\ntitle = \"t\"").unwrap_err();
        assert!(error.contains("param_change, image_policy"), "{error}");
        let error = parse_proposal("kind = \"param_change\"\ntitle = \"t\"").unwrap_err();
        assert!(error.contains("[params]"), "{error}");
        let error = parse_proposal("kind = \"text\"\ntitle = \"t\"\ncolour = 1").unwrap_err();
        assert!(error.contains("colour"), "{error}");
    }
}
