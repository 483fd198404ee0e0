//! Node tiers and regions.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A node's tier: how much collateral it locks and how much hardware it must prove.
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
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum Tier {
    /// The smallest tier.
    Cumulus = 0,
    /// The middle tier.
    Nimbus = 1,
    /// The largest tier.
    Stratus = 2,
}

impl Tier {
    /// All tiers, smallest first.
    pub const ALL: [Tier; 3] = [Tier::Cumulus, Tier::Nimbus, Tier::Stratus];

    /// Position in [`Tier::ALL`], used to index per-tier params.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Cumulus => "cumulus",
            Tier::Nimbus => "nimbus",
            Tier::Stratus => "stratus",
        })
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "cumulus" => Ok(Tier::Cumulus),
            "nimbus" => Ok(Tier::Nimbus),
            "stratus" => Ok(Tier::Stratus),
            _ => Err(format!(
                "unknown tier '{text}'; use cumulus, nimbus or stratus"
            )),
        }
    }
}

/// Continent codes used in regions and geolocation rules.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// Checks a node region `CONTINENT_COUNTRY` (e.g. `EU_CZ`), optionally with a
/// third part for a state or region (`NA_US_CA`).
pub fn validate_region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('_').collect();
    let example = "write it as CONTINENT_COUNTRY, e.g. EU_CZ or NA_US";
    if parts.len() < 2 || parts.len() > 3 {
        return Err(format!("region '{region}' is malformed; {example}"));
    }
    if !CONTINENTS.contains(&parts[0]) {
        return Err(format!(
            "region '{region}' has unknown continent '{}'; use one of {}",
            parts[0],
            CONTINENTS.join(", ")
        ));
    }
    let country_ok = parts[1].len() == 2 && parts[1].bytes().all(|b| b.is_ascii_uppercase());
    if !country_ok {
        return Err(format!(
            "region '{region}' has country '{}', expected a two-letter ISO code; {example}",
            parts[1]
        ));
    }
    if let Some(sub) = parts.get(2) {
        let ok =
            !sub.is_empty() && sub.len() <= 32 && sub.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "region '{region}' has a malformed third part '{sub}'"
            ));
        }
    }
    Ok(())
}

/// Checks a node endpoint `HOST:PORT` (a DNS name, IPv4, or bracketed IPv6).
pub fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    let example = "write it as HOST:PORT, e.g. 203.0.113.7:16127";
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return Err(format!("endpoint '{endpoint}' has no port; {example}"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => {
            return Err(format!(
                "endpoint '{endpoint}' has invalid port '{port}'; {example}"
            ));
        }
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':');
    if !ok {
        return Err(format!(
            "endpoint '{endpoint}' has invalid host '{host}'; {example}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in ["EU_CZ", "NA_US", "NA_US_CA", "AS_JP"] {
            assert!(validate_region(ok).is_ok(), "{ok}");
        }
        for bad in ["EU", "XX_CZ", "EU_cz", "EU_CZE", "EU_CZ_", "EU_CZ_A_B"] {
            assert!(validate_region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        for ok in ["127.0.0.1:16127", "node.example.com:80", "[::1]:16127"] {
            assert!(validate_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in ["127.0.0.1", "host:0", "host:99999", ":80", "ho st:80"] {
            assert!(validate_endpoint(bad).is_err(), "{bad}");
        }
    }
}
