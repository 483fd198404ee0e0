//! Why recent transactions left the mempool without being included.
//!
//! Bounded at [`REJECTIONS_MAX`] entries: the oldest is forgotten first, after
//! which its status reads as unknown.

use std::collections::{HashMap, VecDeque};

use flux_types::Hash;

/// Most rejections remembered.
pub(crate) const REJECTIONS_MAX: usize = 10_000;

/// A transaction's rejection: a stable code and a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// The bounded map.
#[derive(Debug)]
pub(crate) struct Rejections {
    max: usize,
    by_hash: HashMap<Hash, Rejection>,
    order: VecDeque<Hash>,
}

impl Rejections {
    pub(crate) fn new(max: usize) -> Rejections {
        Rejections {
            max,
            by_hash: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn record(
        &mut self,
        hash: Hash,
        code: impl Into<String>,
        message: impl Into<String>,
    ) {
        if self.max == 0 {
            return;
        }
        let rejection = Rejection {
            code: code.into(),
            message: message.into(),
        };
        if self.by_hash.insert(hash, rejection).is_some() {
            // Already queued: the newer reason replaces the older, its place stays.
            return;
        }
        self.order.push_back(hash);
        while self.order.len() > self.max {
            if let Some(oldest) = self.order.pop_front() {
                self.by_hash.remove(&oldest);
            }
        }
    }

    pub(crate) fn get(&self, hash: &Hash) -> Option<&Rejection> {
        self.by_hash.get(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn the_oldest_is_forgotten_at_the_limit() {
        let mut rejections = Rejections::new(2);
        rejections.record(hash(1), "a", "first");
        rejections.record(hash(2), "b", "second");
        rejections.record(hash(1), "c", "first again");
        assert_eq!(rejections.get(&hash(1)).unwrap().code, "c");
        rejections.record(hash(3), "d", "third");
        assert!(rejections.get(&hash(1)).is_none());
        assert_eq!(rejections.get(&hash(2)).unwrap().message, "second");
        assert_eq!(rejections.get(&hash(3)).unwrap().code, "d");
        assert_eq!(rejections.order.len(), 2);
    }
}
