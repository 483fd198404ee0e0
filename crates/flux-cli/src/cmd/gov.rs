//! `flux gov`: propose, list, show and vote on proposals; the image blocklist.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Subcommand, ValueEnum};
use flux_ledger::{Activation, DepositFate, Proposal, ProposalStatus, Rejection};
use flux_types::gov::{ProposalFile, parse_proposal};
use flux_types::{Amount, ParamChange, ProposalAction, TxBody, VoteChoice};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Context;
use crate::client::{Client, api_status, list_items};
use crate::output::{Text, utc};
use crate::submit::{self, TxOptions};

/// Largest proposal file read; real ones are a few hundred bytes.
const PROPOSAL_FILE_BYTES_MAX: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum GovCommand {
    /// Put a proposal to the vote: from a file (TOML or JSON, see examples/gov/),
    /// or a param change given with --param KEY=VALUE and --title
    Propose {
        /// The proposal file
        #[arg(conflicts_with_all = ["params", "title", "description"], required_unless_present = "params")]
        file: Option<PathBuf>,
        /// A param to change, KEY=VALUE with KEY as `flux chain params` lists it (repeatable)
        #[arg(long = "param", value_name = "KEY=VALUE", requires = "title")]
        params: Vec<String>,
        /// One line saying what a --param proposal does
        #[arg(long, value_name = "TEXT")]
        title: Option<String>,
        /// Why, for a --param proposal
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Deposit in FLUX [default: the file's, else the network's minimum]
        #[arg(long, value_name = "AMOUNT")]
        deposit: Option<Amount>,
        /// Key that proposes and deposits
        #[arg(long, value_name = "NAME")]
        from: String,
        #[command(flatten)]
        tx: TxOptions,
    },
    /// List proposals
    List {
        /// Only proposals with this status
        #[arg(long)]
        status: Option<StatusFilter>,
    },
    /// Show one proposal: action, tally, turnout, time left and outcome
    Show {
        /// The proposal's id
        id: u64,
    },
    /// Vote on an open proposal; voting again changes the vote
    Vote {
        /// The proposal's id
        id: u64,
        /// yes, no or abstain
        #[arg(value_parser = parse_choice)]
        choice: VoteChoice,
        /// Key that votes
        #[arg(long, value_name = "NAME")]
        from: String,
        #[command(flatten)]
        tx: TxOptions,
    },
    /// The network's image blocklist and the apps it blocks
    Blocklist,
}

/// A status to filter proposals by.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum StatusFilter {
    Open,
    Passed,
    Rejected,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Open => "open",
            StatusFilter::Passed => "passed",
            StatusFilter::Rejected => "rejected",
        }
    }
}

fn parse_choice(text: &str) -> Result<VoteChoice, String> {
    text.parse()
}

/// A proposal as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
struct ProposalView {
    #[serde(flatten)]
    proposal: Proposal,
    turnout: Amount,
    quorum_power: Amount,
    quorum_reached: bool,
    time_left_ms: u64,
}

pub(crate) fn run(ctx: &Context, command: GovCommand) -> Result<()> {
    match command {
        GovCommand::Propose {
            file,
            params,
            title,
            description,
            deposit,
            from,
            tx,
        } => {
            let proposal = match &file {
                Some(path) => read_proposal(path)?,
                None => ProposalFile {
                    title: title.unwrap_or_default(),
                    description: description.unwrap_or_default(),
                    action: ProposalAction::ParamChange {
                        changes: params
                            .iter()
                            .map(|text| parse_param(text))
                            .collect::<Result<_>>()?,
                    },
                    deposit: None,
                },
            };
            let key = ctx.keystore().load(&from)?.secret()?;
            let client = ctx.client()?;
            let prepared = submit::prepare(&client, &key)?;
            // The node checks again; checking here names the problem before anything is signed.
            if let ProposalAction::ParamChange { changes } = &proposal.action {
                prepared.params.with_changes(changes)?;
            }
            let deposit = deposit
                .or(proposal.deposit)
                .unwrap_or(prepared.params.gov.proposal_deposit);
            if !ctx.out.is_json() {
                ctx.out.note(&format!(
                    "proposing '{}' ({}), depositing {deposit} FLUX",
                    proposal.title,
                    proposal.action.kind()
                ));
            }
            let body = TxBody::GovPropose {
                title: proposal.title,
                description: proposal.description,
                action: proposal.action,
                deposit,
            };
            let signed = prepared.sign(&key, body, tx.fee);
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
            if let Some(flux_ledger::ReceiptDetail::ProposalSubmitted { proposal, .. }) =
                written.receipt.as_ref().map(|r| &r.detail)
                && !ctx.out.is_json()
            {
                ctx.out.note(&format!(
                    "vote with `flux gov vote {proposal} yes --from NAME`; follow it with `flux gov show {proposal}`"
                ));
            }
        }
        GovCommand::List { status } => {
            let client = ctx.client()?;
            let path = match status {
                Some(status) => format!("/gov/proposals?status={}", status.as_str()),
                None => "/gov/proposals".to_string(),
            };
            let value = client.get_value(&path)?;
            let proposals: Vec<ProposalView> = list_items(value.clone(), "proposals")
                .into_iter()
                .map(|item| {
                    serde_json::from_value(item)
                        .map_err(|e| anyhow!("unexpected proposal from {}: {e}", client.node_url()))
                })
                .collect::<Result<_>>()?;
            ctx.out.show(&value, |text| {
                let rows: Vec<Vec<String>> = proposals.iter().map(list_row).collect();
                text.table(
                    &[
                        "ID", "STATUS", "KIND", "YES", "NO", "ABSTAIN", "ENDS", "TITLE",
                    ],
                    &rows,
                    "no proposals; propose one with `flux gov propose FILE --from NAME`",
                );
            });
        }
        GovCommand::Show { id } => {
            let client = ctx.client()?;
            let value = get_proposal(&client, id)?;
            let view: ProposalView = serde_json::from_value(value.clone())
                .map_err(|e| anyhow!("unexpected proposal from {}: {e}", client.node_url()))?;
            ctx.out.show(&value, |text| show_proposal(text, &view));
        }
        GovCommand::Vote {
            id,
            choice,
            from,
            tx,
        } => {
            let key = ctx.keystore().load(&from)?.secret()?;
            let client = ctx.client()?;
            let value = get_proposal(&client, id)?;
            let view: ProposalView = serde_json::from_value(value)
                .map_err(|e| anyhow!("unexpected proposal from {}: {e}", client.node_url()))?;
            if view.proposal.status != ProposalStatus::Open {
                bail!(
                    "voting on proposal {id} is closed (it {}); `flux gov show {id}` shows the outcome",
                    view.proposal.status.as_str()
                );
            }
            let prepared = submit::prepare(&client, &key)?;
            let body = TxBody::GovVote {
                proposal: id,
                choice,
            };
            let signed = prepared.sign(&key, body, tx.fee);
            let written = submit::submit_and_wait(&client, &ctx.out, &signed, &tx)?;
            submit::show_written(&ctx.out, &written);
        }
        GovCommand::Blocklist => {
            let client = ctx.client()?;
            let value = client.get_value("/gov/blocklist")?;
            ctx.out.show(&value, |text| {
                let images: Vec<Vec<String>> = list_items(value["images"].clone(), "images")
                    .iter()
                    .map(|entry| {
                        vec![
                            string(&entry["image"]),
                            entry["since_height"].to_string(),
                            entry["proposal"].to_string(),
                        ]
                    })
                    .collect();
                text.table(
                    &["IMAGE", "SINCE HEIGHT", "PROPOSAL"],
                    &images,
                    "no image is blocked",
                );
                let apps: Vec<Vec<String>> = list_items(value["apps"].clone(), "apps")
                    .iter()
                    .map(|app| {
                        vec![
                            string(&app["app"]),
                            string(&app["image"]),
                            string(&app["entry"]),
                            app["since_height"].to_string(),
                        ]
                    })
                    .collect();
                if !apps.is_empty() {
                    text.blank();
                    text.table(
                        &["BLOCKED APP", "IMAGE", "ENTRY", "SINCE HEIGHT"],
                        &apps,
                        "",
                    );
                }
            });
        }
    }
    Ok(())
}

fn string(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Reads a proposal file; errors name the file.
fn read_proposal(path: &Path) -> Result<ProposalFile> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read proposal {}", path.display()))?
        .len();
    if size > PROPOSAL_FILE_BYTES_MAX {
        bail!(
            "{} is {size} bytes; a proposal file is at most {PROPOSAL_FILE_BYTES_MAX} bytes",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read proposal {}", path.display()))?;
    parse_proposal(&text).map_err(|e| {
        anyhow!(
            "{}: invalid proposal: {e}; examples/gov/ shows each kind",
            path.display()
        )
    })
}

/// `KEY=VALUE`.
fn parse_param(text: &str) -> Result<ParamChange> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        anyhow!("--param '{text}' is not KEY=VALUE, e.g. --param app_prices.cpu_per_tenth=0.02")
    })?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || value.is_empty() {
        bail!("--param '{text}' is not KEY=VALUE, e.g. --param app_prices.cpu_per_tenth=0.02");
    }
    Ok(ParamChange {
        key: key.to_string(),
        value: value.to_string(),
    })
}

fn get_proposal(client: &Client, id: u64) -> Result<Value> {
    client.get_value(&format!("/gov/proposals/{id}")).map_err(|e| {
        let e = anyhow!(e);
        if api_status(&e) == Some(404) {
            anyhow!(
                "no proposal with id {id} on the node at {}; `flux gov list` shows the proposals",
                client.node_url()
            )
        } else {
            e
        }
    })
}

fn list_row(view: &ProposalView) -> Vec<String> {
    let p = &view.proposal;
    let ends = match p.status {
        ProposalStatus::Open => format!("in {}", duration(view.time_left_ms)),
        _ => utc(p.voting_ends_ms),
    };
    vec![
        p.id.to_string(),
        p.status.as_str().to_string(),
        p.action.kind().to_string(),
        p.tally.yes.to_string(),
        p.tally.no.to_string(),
        p.tally.abstain.to_string(),
        ends,
        p.title.clone(),
    ]
}

/// `1 h 5 min`, `42 s`.
fn duration(ms: u64) -> String {
    let secs = ms.div_ceil(1_000);
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min {} s", secs / 60, secs % 60),
        3_600..86_400 => format!("{} h {} min", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// `part` as a percentage of `whole`, with two decimals.
fn percent(part: Amount, whole: Amount) -> String {
    if whole.is_zero() {
        return "-".into();
    }
    let hundredths = u128::from(part.as_units()) * 10_000 / u128::from(whole.as_units());
    format!("{}.{:02} %", hundredths / 100, hundredths % 100)
}

fn describe_action(action: &ProposalAction) -> Vec<(&'static str, String)> {
    match action {
        ProposalAction::ParamChange { changes } => changes
            .iter()
            .map(|c| ("set", format!("{} = {}", c.key, c.value)))
            .collect(),
        ProposalAction::ImagePolicy { block, unblock } => {
            let mut lines: Vec<(&str, String)> =
                block.iter().map(|image| ("block", image.clone())).collect();
            lines.extend(unblock.iter().map(|image| ("unblock", image.clone())));
            lines
        }
        ProposalAction::TreasurySpend { to, amount } => {
            vec![("pay", format!("{amount} FLUX from the treasury to {to}"))]
        }
        ProposalAction::Text => vec![("effect", "none (records the outcome)".into())],
    }
}

fn show_proposal(text: &mut Text, view: &ProposalView) {
    let p = &view.proposal;
    let mut fields: Vec<(&str, String)> = vec![
        ("proposal", p.id.to_string()),
        ("title", p.title.clone()),
        ("kind", p.action.kind().to_string()),
    ];
    fields.extend(describe_action(&p.action));
    fields.extend([
        ("proposer", p.proposer.to_string()),
        ("status", p.status.as_str().to_string()),
    ]);
    let deposit = match p.deposit_fate {
        DepositFate::Held => format!("{} FLUX, held", p.deposit),
        DepositFate::Returned => format!("{} FLUX, returned", p.deposit),
        DepositFate::Burned => format!("{} FLUX, burned (quorum missed)", p.deposit),
    };
    fields.push(("deposit", deposit));
    let voting = match p.status {
        ProposalStatus::Open => format!(
            "ends {} (in {})",
            utc(p.voting_ends_ms),
            duration(view.time_left_ms)
        ),
        _ => format!(
            "ended {} (closed at height {})",
            utc(p.voting_ends_ms),
            p.closed_height.unwrap_or_default()
        ),
    };
    fields.push(("voting", voting));
    let tally = &p.tally;
    fields.extend([
        (
            "yes",
            format!("{} ({})", tally.yes, percent(tally.yes, view.turnout)),
        ),
        (
            "no",
            format!("{} ({})", tally.no, percent(tally.no, view.turnout)),
        ),
        ("abstain", tally.abstain.to_string()),
        (
            "turnout",
            format!(
                "{} of {} power ({}), {} voter(s)",
                view.turnout,
                p.total_power,
                percent(view.turnout, p.total_power),
                tally.voters
            ),
        ),
        (
            "quorum",
            format!(
                "{} % = {} power, {}",
                p.quorum_percent,
                view.quorum_power,
                if view.quorum_reached {
                    "reached"
                } else {
                    "not reached"
                }
            ),
        ),
    ]);
    if let Some(rejection) = p.rejection {
        fields.push((
            "rejected",
            match rejection {
                Rejection::QuorumMissed => "quorum missed".to_string(),
                Rejection::NotEnoughYes => "yes did not outweigh no".to_string(),
            },
        ));
    }
    if let Some(activation) = &p.activation {
        fields.push((
            "takes effect",
            match activation {
                Activation::Pending { height } => format!("at height {height}"),
                Activation::Applied { height } => format!("applied at height {height}"),
                Activation::Failed { height, reason } => {
                    format!("failed at height {height}: {reason}")
                }
            },
        ));
    }
    text.fields(&fields);
    if !p.description.is_empty() {
        text.blank();
        text.line(&p.description);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_durations() {
        let change = parse_param(" app_prices.cpu_per_tenth = 0.02 ").unwrap();
        assert_eq!(change.key, "app_prices.cpu_per_tenth");
        assert_eq!(change.value, "0.02");
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("key=").is_err());
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(29_400), "30 s");
        assert_eq!(duration(3_725_000), "1 h 2 min");
        assert_eq!(duration(7 * 86_400_000), "7 d 0 h");
        assert_eq!(percent(Amount::flux(1), Amount::flux(3)), "33.33 %");
        assert_eq!(percent(Amount::flux(1), Amount::ZERO), "-");
    }
}
