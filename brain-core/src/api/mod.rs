//! The API every backend shares: the [`ObjectStore`](store::ObjectStore)
//! trait and its types, errors, name rules, views, and typed calls.

pub(crate) mod error;
pub(crate) mod frames;
pub(crate) mod names;
pub(crate) mod store;
pub(crate) mod tables;
pub(crate) mod typed;
pub(crate) mod view;
