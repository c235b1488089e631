//! A watcher in its own process, for the benches: opens the store given as
//! the only argument, watches all of it, prints `ready`, then prints
//! `event <monotonic ns> <name>` for each event it sees. A line `count` on
//! stdin is answered with `count <events seen>`; it exits when stdin closes.
//!
//! The watcher blocks in `next_event` with no timeout, so nothing but an
//! event wakes it (stdin is read by a second thread, which ends the process).

#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn main() {
    let path = std::env::args_os().nth(1).expect("usage: watcher <store>");
    let store = brain_core::Store::open(path).expect("open the store");
    let mut watcher = brain_core::ObjectStore::watch(&store, None).expect("watch the store");
    let seen = Arc::new(AtomicU64::new(0));
    println!("ready");
    std::io::stdout().flush().expect("write to stdout");
    {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line.as_deref() {
                    Ok("count") => {
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "count {}", seen.load(Ordering::SeqCst)).expect("stdout");
                        out.flush().expect("stdout");
                    }
                    Ok(other) => panic!("unknown command {other:?}"),
                    Err(_) => break,
                }
            }
            std::process::exit(0);
        });
    }
    loop {
        match watcher.next_event(None) {
            Ok(Some(event)) => {
                let at = brain_bench::monotonic_ns();
                seen.fetch_add(1, Ordering::SeqCst);
                let mut out = std::io::stdout().lock();
                writeln!(out, "event {at} {}", event.name()).expect("stdout");
                out.flush().expect("stdout");
            }
            Ok(None) => {}
            Err(err) => panic!("watching failed: {err}"),
        }
    }
}
