//! End-to-end tests of brain: real helper processes (`brain-test-helper`)
//! on a real tmpfs store under /dev/shm.

#![forbid(unsafe_code)]

mod arrow;
mod capacity;
mod conformance;
mod crash;
mod hostile;
mod names;
mod redis;
mod redis_hosts;
mod reliability;
mod sharing;
mod util;
mod watch;
