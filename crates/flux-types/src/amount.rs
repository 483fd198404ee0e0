//! FLUX amounts as integer base units.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Base units in one FLUX.
pub const UNITS_PER_FLUX: u64 = 100_000_000;

/// Number of decimal places of a FLUX amount.
pub const DECIMALS: usize = 8;

/// An amount of FLUX in base units (1 FLUX = 10^8 units). Never a float.
///
/// Arithmetic is checked: every operation that could overflow or go negative
/// returns `Option`, so a broken invariant cannot silently wrap.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
)]
pub struct Amount(pub u64);

impl Amount {
    /// Zero FLUX.
    pub const ZERO: Amount = Amount(0);

    /// An amount of whole FLUX.
    pub const fn flux(whole: u64) -> Amount {
        Amount(whole * UNITS_PER_FLUX)
    }

    /// An amount in base units.
    pub const fn units(units: u64) -> Amount {
        Amount(units)
    }

    /// The amount in base units.
    pub const fn as_units(self) -> u64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` when `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `self * factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: u64) -> Option<Amount> {
        self.0.checked_mul(factor).map(Amount)
    }

    /// `self - other`, or zero when `other` is larger.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }

    /// `self * numerator / denominator` computed in 128 bits, rounded down.
    ///
    /// Returns `None` when the denominator is zero or the result overflows.
    pub fn mul_div(self, numerator: u64, denominator: u64) -> Option<Amount> {
        if denominator == 0 {
            return None;
        }
        let value = u128::from(self.0) * u128::from(numerator) / u128::from(denominator);
        u64::try_from(value).ok().map(Amount)
    }

    /// Whether the amount is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// Prints `4.12`, `3.00`, `0.00012345`: at least two decimals, trailing zeros beyond them trimmed.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / UNITS_PER_FLUX;
        let frac = self.0 % UNITS_PER_FLUX;
        let mut digits = format!("{frac:08}");
        while digits.len() > 2 && digits.ends_with('0') {
            digits.pop();
        }
        write!(f, "{whole}.{digits}")
    }
}

/// Why a text could not be read as an amount of FLUX.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    /// The text is empty.
    #[error("amount is empty; write it in FLUX, e.g. 12.5")]
    Empty,
    /// The text contains something other than digits and one dot.
    #[error("amount '{0}' is not a number; write it in FLUX with at most 8 decimals, e.g. 12.5")]
    NotANumber(String),
    /// More decimals than a base unit can express.
    #[error("amount '{0}' has more than 8 decimals; 0.00000001 FLUX is the smallest unit")]
    TooPrecise(String),
    /// Larger than the largest representable amount.
    #[error("amount '{0}' is too large")]
    TooLarge(String),
}

impl FromStr for Amount {
    type Err = AmountParseError;

    /// Reads a decimal amount of FLUX such as `12`, `0.5` or `1000.00000001`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AmountParseError::Empty);
        }
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
            return Err(AmountParseError::NotANumber(text.to_string()));
        }
        if frac.len() > DECIMALS {
            return Err(AmountParseError::TooPrecise(text.to_string()));
        }
        let whole_units: u64 = if whole.is_empty() {
            0
        } else {
            whole
                .parse()
                .map_err(|_| AmountParseError::TooLarge(text.to_string()))?
        };
        let mut frac_digits = frac.to_string();
        while frac_digits.len() < DECIMALS {
            frac_digits.push('0');
        }
        let frac_units: u64 = frac_digits.parse().unwrap_or(0);
        whole_units
            .checked_mul(UNITS_PER_FLUX)
            .and_then(|w| w.checked_add(frac_units))
            .map(Amount)
            .ok_or_else(|| AmountParseError::TooLarge(text.to_string()))
    }
}

/// JSON form: a decimal string of FLUX with all 8 decimals (`"12.50000000"`),
/// exact and safe from the 53-bit limit of JSON numbers in browsers.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let whole = self.0 / UNITS_PER_FLUX;
        let frac = self.0 % UNITS_PER_FLUX;
        serializer.serialize_str(&format!("{whole}.{frac:08}"))
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let cases = [
            ("12", 12 * UNITS_PER_FLUX, "12.00"),
            ("0.5", UNITS_PER_FLUX / 2, "0.50"),
            ("4.12", 412_000_000, "4.12"),
            (".00000001", 1, "0.00000001"),
            (
                "1000.00012345",
                1000 * UNITS_PER_FLUX + 12_345,
                "1000.00012345",
            ),
        ];
        for (text, units, shown) in cases {
            let amount: Amount = text.parse().unwrap();
            assert_eq!(amount.as_units(), units, "{text}");
            assert_eq!(amount.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!("".parse::<Amount>(), Err(AmountParseError::Empty));
        assert!(matches!(
            "1.2.3".parse::<Amount>(),
            Err(AmountParseError::NotANumber(_))
        ));
        assert!(matches!(
            "-1".parse::<Amount>(),
            Err(AmountParseError::NotANumber(_))
        ));
        assert!(matches!(
            "1e5".parse::<Amount>(),
            Err(AmountParseError::NotANumber(_))
        ));
        assert!(matches!(
            "0.123456789".parse::<Amount>(),
            Err(AmountParseError::TooPrecise(_))
        ));
        assert!(matches!(
            "184467440738".parse::<Amount>(),
            Err(AmountParseError::TooLarge(_))
        ));
    }

    #[test]
    fn json_round_trip_is_exact() {
        let amount = Amount(123_456_789_012_345_678);
        let json = serde_json::to_string(&amount).unwrap();
        assert_eq!(json, "\"1234567890.12345678\"");
        assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), amount);
    }
}
