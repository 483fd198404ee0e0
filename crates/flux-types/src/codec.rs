//! The binary codec (borsh) with explicit limits for untrusted bytes.
//!
//! Everything that arrives from outside (a transaction from a client, a block
//! from a peer) goes through [`decode_bounded`]: the total size is checked
//! before decoding, the decoder never pre-allocates more than the input can
//! hold, trailing bytes are refused, and [`Bounded::check_limits`] then checks
//! every length and count against its limit.

use borsh::{BorshDeserialize, BorshSerialize};

/// Largest encoded transaction accepted, in bytes.
pub const TX_SIZE_BYTES_MAX: usize = 64 * 1024;
/// Largest encoded block accepted, in bytes.
pub const BLOCK_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 50_000;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Larger than the limit for this kind of object.
    #[error("{what} is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// Not a valid encoding.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// Decoded, but a field is over its limit.
    #[error("{what}: {reason}")]
    OverLimit {
        /// What was being decoded.
        what: &'static str,
        /// Which limit and by how much.
        reason: String,
    },
}

/// A value whose lengths and counts can be checked against limits after decoding.
pub trait Bounded {
    /// A short name for error messages ("transaction", "block").
    const WHAT: &'static str;
    /// The largest encoding accepted.
    const SIZE_BYTES_MAX: usize;
    /// Checks every variable-length field; returns a description of the first violation.
    fn check_limits(&self) -> Result<(), String>;
}

/// Encodes a value.
pub fn encode<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("encoding into a Vec cannot fail")
}

/// Decodes untrusted bytes with the limits of `T`.
pub fn decode_bounded<T: BorshDeserialize + Bounded>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > T::SIZE_BYTES_MAX {
        return Err(CodecError::TooLarge {
            what: T::WHAT,
            size: bytes.len(),
            max: T::SIZE_BYTES_MAX,
        });
    }
    let value: T = borsh::from_slice(bytes).map_err(|e| CodecError::Malformed {
        what: T::WHAT,
        reason: e.to_string(),
    })?;
    value
        .check_limits()
        .map_err(|reason| CodecError::OverLimit {
            what: T::WHAT,
            reason,
        })?;
    Ok(value)
}

/// Decodes bytes that this node wrote itself (its own store), still refusing
/// trailing bytes; corruption is reported rather than trusted.
pub fn decode_trusted<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, CodecError> {
    borsh::from_slice(bytes).map_err(|e| CodecError::Malformed {
        what: "stored value",
        reason: e.to_string(),
    })
}

/// Checks that a string is at most `max` bytes.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field} is {} bytes, limit {max}", value.len()));
    }
    Ok(())
}

/// Checks that a list has at most `max` items.
pub fn check_count<T>(field: &str, items: &[T], max: usize) -> Result<(), String> {
    if items.len() > max {
        return Err(format!("{field} has {} items, limit {max}", items.len()));
    }
    Ok(())
}
