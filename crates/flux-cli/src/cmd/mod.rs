//! One module per command group; each parses nothing and prints nothing
//! itself, it asks the node, signs, and hands results to the output layer.

pub(crate) mod app;
pub(crate) mod chain;
pub(crate) mod gov;
pub(crate) mod keys;
pub(crate) mod node;
pub(crate) mod wallet;
