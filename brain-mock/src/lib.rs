//! # brain-mock
//!
//! The in-memory backend of brain: a [`brain_core::ObjectStore`] that keeps
//! objects in this process's memory, with fault injection. It is what
//! `memory://NAME` opens ([`memory_store`]): a store for users' own tests,
//! which run their code against it with no tmpfs and no server (as
//! brain-plasma's mock client did), and for testing the layers above
//! brain-core against failures that are hard to cause on purpose with the
//! real store.
//!
//! [`MockStore`] keeps the real store's semantics, checked by a conformance
//! test run against both: namespaces are created by their first put (and
//! stay, empty, until removed), names and namespaces are listed sorted, a
//! put replaces atomically, views ([`brain_core::ObjectView`]) keep their
//! bytes after a replace or delete, payloads are 64-byte aligned, names are
//! validated with the same limits and errors, and a byte capacity is
//! accounted exactly as the real store does ([`stored_size`]), refusing
//! writes with [`brain_core::Error::StoreFull`]. Every typed call of
//! [`brain_core::ObjectStoreExt`] works on it.
//!
//! Faults are set through a [`FaultPlan`] at construction or the live
//! [`Faults`] handle at run time ([`MockStore::faults`]), from any thread:
//!
//! - a full store (a capacity, [`brain_core::ObjectStore::set_capacity`]) or a full
//!   filesystem ([`FaultPlan::filesystem_full`], or a small
//!   [`MockStoreBuilder::filesystem_size`]);
//! - an I/O error on the nth put, or on every put [`When`] selects
//!   ([`PutFault::Io`]); the previous value stays;
//! - a writer that dies between writing and sealing
//!   ([`PutFault::CrashBeforeSeal`]): nothing new is visible;
//! - slow reads ([`FaultPlan::slow_reads`]) and failing reads or listings
//!   ([`FaultPlan::fail_reads`], [`FaultPlan::fail_lists`]).
//!
//! [`MockStore::counts`] says how many puts, gets, deletes and so on the
//! store answered, so a test can assert what the code under test did.
//!
//! Every call of the trait works: streamed writers, watch streams (every
//! set and delete, in order), per-name locks (released when dropped, within
//! this process), `wait_for`, and a capacity; `gc` and `fsck` say there is
//! nothing for them to do. It is **not** a substitute for the real store in
//! end-to-end tests: it shares nothing between processes, maps nothing, and
//! cannot show how tmpfs, mappings or permissions behave. Injected
//! failures fire at defined points of a put: a put first reserves its
//! bytes (so a store already full answers `StoreFull` even when an I/O or
//! crash fault is due), except [`PutFault::Full`], which fires first. A
//! writer that "crashes" gives its reservation back, as the real writer's
//! error path does; a really killed writer would leave the usage too high
//! until `brain fsck`.
//!
//! ```
//! use brain_core::{Error, ObjectStore, ObjectStoreExt};
//! use brain_mock::{FaultPlan, MockStore, PutFault, When};
//!
//! let store = MockStore::with_faults(
//!     FaultPlan::new().fail_puts(When::nth(2), PutFault::CrashBeforeSeal),
//! );
//! store.put_text("default", "greeting", "hello")?;
//! // The second put dies before its object is sealed: the old value stays.
//! let err = store.put_text("default", "greeting", "goodbye").unwrap_err();
//! assert!(matches!(err, Error::Io { op: "seal", .. }), "{err}");
//! assert_eq!(store.get_text("default", "greeting")?.as_deref(), Some("hello"));
//!
//! // Faults can change at run time, e.g. a filesystem that fills up.
//! store.faults().set_filesystem_full(true);
//! let err = store.put_text("default", "other", "x").unwrap_err();
//! assert!(matches!(err, Error::StoreFull { filesystem_full: true, .. }), "{err}");
//!
//! let counts = store.counts();
//! assert_eq!((counts.puts, counts.puts_committed, counts.gets), (3, 1, 1));
//! # Ok::<(), brain_core::Error>(())
//! ```
//!
//! ## Crate features
//! None: the crate always builds the mock store and its fault injection.
//! Unlike brain-core it needs no Linux facilities.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod events;
mod fault;
mod memory;
mod store;

pub use fault::{FaultPlan, Faults, IoFault, PutFault, When};
pub use memory::{drop_memory_store, memory_store};
pub use store::{stored_size, Counts, MockStore, MockStoreBuilder, DEFAULT_FILESYSTEM_SIZE};
