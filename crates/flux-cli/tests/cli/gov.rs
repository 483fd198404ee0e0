//! Governance through the real binary: proposal files and flags checked
//! before anything is sent, and on a real devnet a price change that passes,
//! takes effect at its height, and shows in `flux app price`.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use crate::{Flux, Setup, example};

/// Longer than the devnet's 30 s voting period plus the activation delay.
const DECISION_TIMEOUT: Duration = Duration::from_secs(120);

fn param<'a>(params: &'a Value, key: &str) -> &'a Value {
    params
        .as_array()
        .expect("a list of params")
        .iter()
        .find(|p| p["key"] == key)
        .unwrap_or_else(|| panic!("{key} is not listed: {params}"))
}

/// Polls `flux gov show ID` until `done` holds for it.
fn wait_for_proposal(flux: &Flux, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + DECISION_TIMEOUT;
    loop {
        let shown = flux.json(&["gov", "show", id]);
        if done(&shown) {
            return shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "proposal {id} did not reach '{what}' within {DECISION_TIMEOUT:?}: {shown}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn proposals_are_checked_before_anything_is_sent() {
    let temp = tempfile::tempdir().unwrap();
    let flux = Flux::new(&temp.path().join("home"), "http://127.0.0.1:9");
    flux.ok(&["keys", "new", "alice"]);

    let error = flux.fails(&[
        "gov",
        "propose",
        "--param",
        "tx_fee_min=1",
        "--from",
        "alice",
    ]);
    assert!(error.contains("--title"), "{error}");
    let error = flux.fails(&[
        "gov",
        "propose",
        &example("gov/text.toml"),
        "--param",
        "tx_fee_min=1",
        "--from",
        "alice",
    ]);
    assert!(error.contains("cannot be used with"), "{error}");
    let error = flux.fails(&["gov", "vote", "1", "maybe", "--from", "alice"]);
    assert!(error.contains("yes, no or abstain"), "{error}");

    let bad = temp.path().join("bad.toml");
    std::fs::write(&bad, "kind = \"param_change\"\ntitle = \"x\"\n").unwrap();
    let error = flux.fails(&["gov", "propose", bad.to_str().unwrap(), "--from", "alice"]);
    assert!(
        error.contains("bad.toml") && error.contains("[params]"),
        "{error}"
    );
    let error = flux.fails(&[
        "gov",
        "propose",
        "--param",
        "no-equals",
        "--title",
        "t",
        "--from",
        "alice",
    ]);
    assert!(error.contains("KEY=VALUE"), "{error}");
}

#[test]
fn a_price_change_passes_on_a_devnet_and_the_new_price_shows() {
    let setup = Setup::new(Ipv4Addr::new(127, 0, 7, 1));
    let flux = &setup.flux;
    let _devnet = setup.devnet_up();
    let hello = example("hello.json");
    assert_eq!(flux.json(&["app", "price", &hello])["total"], "0.55200000");

    let params = flux.json(&["chain", "params"]);
    let cpu = param(&params, "app_prices.cpu_per_tenth");
    assert_eq!(cpu["value"], "0.03", "{cpu}");
    assert_eq!(cpu["since_height"], 0, "{cpu}");
    let table = flux.ok(&["chain", "params"]);
    assert!(
        table.contains("app_prices.cpu_per_tenth") && table.contains("genesis"),
        "{table}"
    );

    // Out of range or unknown: refused before anything is signed or deposited.
    let balance = flux.balance("dev0");
    let error = flux.fails(&[
        "gov",
        "propose",
        "--param",
        "gov.quorum_percent=0",
        "--title",
        "No quorum",
        "--from",
        "dev0",
    ]);
    assert!(
        error.contains("gov.quorum_percent") && error.contains("1 to 100"),
        "{error}"
    );
    let error = flux.fails(&[
        "gov",
        "propose",
        "--param",
        "app_prices.gpu=1",
        "--title",
        "GPUs",
        "--from",
        "dev0",
    ]);
    assert!(error.contains("flux chain params"), "{error}");
    assert_eq!(flux.balance("dev0"), balance);

    // A text proposal from a file, and the price change from flags.
    let text = flux.json(&[
        "gov",
        "propose",
        &example("gov/text.toml"),
        "--from",
        "dev2",
    ]);
    assert_eq!(
        text["receipt"]["detail"]["type"], "proposal_submitted",
        "{text}"
    );
    let proposed = flux.json(&[
        "gov",
        "propose",
        "--param",
        "app_prices.cpu_per_tenth=0.02",
        "--title",
        "Cheaper CPU",
        "--from",
        "dev0",
    ]);
    let id = proposed["receipt"]["detail"]["proposal"]
        .as_u64()
        .expect("a proposal id")
        .to_string();

    // Each development key holds a quarter of the power; two reach the 30 % quorum.
    let voted = flux.json(&["gov", "vote", &id, "yes", "--from", "dev0"]);
    assert_eq!(voted["receipt"]["detail"]["type"], "voted", "{voted}");
    flux.json(&["gov", "vote", &id, "no", "--from", "dev1"]);
    let changed = flux.ok(&["gov", "vote", &id, "yes", "--from", "dev1"]);
    assert!(changed.contains("changed from no to yes"), "{changed}");

    // Coins received after the start carry no power for this proposal.
    flux.ok(&["keys", "new", "carol"]);
    flux.json(&["wallet", "send", "--from", "dev2", "--to", "carol", "5"]);
    let error = flux.fails(&["gov", "vote", &id, "yes", "--from", "carol"]);
    assert!(error.contains("no voting power"), "{error}");

    let shown = flux.json(&["gov", "show", &id]);
    assert_eq!(shown["status"], "open", "{shown}");
    assert_eq!(shown["tally"]["voters"], 2, "{shown}");
    assert_eq!(shown["quorum_reached"], true, "{shown}");
    assert!(shown["time_left_ms"].as_u64().unwrap() > 0, "{shown}");
    let human = flux.ok(&["gov", "show", &id]);
    assert!(
        human.contains("app_prices.cpu_per_tenth = 0.02") && human.contains("turnout"),
        "{human}"
    );
    let open = flux.json(&["gov", "list", "--status", "open"]);
    assert_eq!(open.as_array().unwrap().len(), 2, "{open}");
    assert!(flux.ok(&["gov", "list"]).contains("Cheaper CPU"));

    // The vote closes by chain time and the change applies at its height.
    let applied = wait_for_proposal(flux, &id, "applied", |p| {
        p["activation"]["result"] == "applied"
    });
    assert_eq!(applied["status"], "passed", "{applied}");
    assert_eq!(applied["deposit_fate"], "returned", "{applied}");
    let height = applied["activation"]["height"].as_u64().unwrap();
    let cpu = param(&flux.json(&["chain", "params"]), "app_prices.cpu_per_tenth").clone();
    assert_eq!(cpu["value"], "0.02", "{cpu}");
    assert_eq!(cpu["since_height"], height, "{cpu}");

    // (5 × 0.02 + 3 × 0.01 + 1 × 0.004) × 3 instances.
    assert_eq!(flux.json(&["app", "price", &hello])["total"], "0.40200000");
    assert!(flux.ok(&["app", "price", &hello]).contains("0.402 FLUX"));

    let passed = flux.json(&["gov", "list", "--status", "passed"]);
    assert_eq!(passed.as_array().unwrap().len(), 1, "{passed}");
    // Nobody voted on the text proposal: quorum missed, deposit burned.
    let text_id = text["receipt"]["detail"]["proposal"].to_string();
    let rejected = wait_for_proposal(flux, &text_id, "rejected", |p| p["status"] == "rejected");
    assert_eq!(rejected["deposit_fate"], "burned", "{rejected}");
    let error = flux.fails(&["gov", "vote", &id, "no", "--from", "dev0"]);
    assert!(error.contains("closed"), "{error}");
}
