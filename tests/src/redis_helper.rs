//! `brain-redis-helper`: one "host process" for the Redis tests. Each
//! invocation opens a Redis store with its own host cache directory (a
//! different directory per "host"), does one thing, and exits with one of
//! the codes of `brain_tests::exit`.
//!
//! ```text
//! brain-redis-helper put  URL CACHE NS NAME SEED LEN
//! brain-redis-helper get  URL CACHE NS NAME            prints the seed read
//! brain-redis-helper hold-write URL NS NAME LEN        writes all but the last byte, prints "ready", waits
//! brain-redis-helper race-write URL CACHE WRITER SECS  replaces race names until SECS pass
//! brain-redis-helper race-read  URL CACHE SECS         reads and checks them until SECS pass
//! ```
//!
//! CACHE is a directory, or `off`.

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use brain::{CacheSetting, Error, ObjectStore, OpenOptions, Payload};
use brain_tests::{check_value, exit, make_value, seed_of, writer_of};

/// Names the race writes and reads.
const RACE_NAMES: [&str; 3] = ["r0", "r1", "r2"];
/// Sizes the race cycles through: inline ones and several chunks.
const RACE_SIZES: [usize; 5] = [100, 200_000, 1 << 20, 3 << 20, 700_000];

fn open(url: &str, cache: &str) -> Result<std::sync::Arc<dyn ObjectStore>, Error> {
    let cache = if cache == "off" {
        CacheSetting::Off
    } else {
        CacheSetting::Path(cache.into())
    };
    OpenOptions::new().cache(cache).open(url)
}

fn code_of(err: &Error) -> u8 {
    (match err {
        Error::StoreFull { .. } => exit::STORE_FULL,
        Error::InvalidName { .. } => exit::INVALID_NAME,
        Error::Corrupt { .. } => exit::CORRUPT,
        Error::Timeout { .. } => exit::TIMEOUT,
        Error::LockLost { .. } => exit::LOCK_LOST,
        _ => exit::OTHER,
    }) as u8
}

fn fail(err: &Error) -> ExitCode {
    eprintln!("brain-redis-helper: {err}");
    ExitCode::from(code_of(err))
}

fn run(args: &[String]) -> Result<ExitCode, Error> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let number = |i: usize| arg(i).parse::<u64>().unwrap_or(0);
    match arg(0) {
        "put" => {
            let store = open(arg(1), arg(2))?;
            let value = make_value(number(5), number(6) as usize);
            store.put(arg(3), arg(4), &Payload::bytes(&value))?;
            Ok(ExitCode::SUCCESS)
        }
        "get" => {
            let store = open(arg(1), arg(2))?;
            match store.get(arg(3), arg(4))? {
                None => Ok(ExitCode::from(exit::MISSING as u8)),
                Some(view) => match check_value(&view) {
                    Ok(seed) => {
                        println!("{seed}");
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(why) => {
                        eprintln!("brain-redis-helper: {why}");
                        Ok(ExitCode::from(exit::MISMATCH as u8))
                    }
                },
            }
        }
        "hold-write" => {
            let store = open(arg(1), "off")?;
            let value = make_value(99, number(4) as usize);
            let mut writer = store.writer(
                arg(2),
                arg(3),
                brain::Codec::Raw,
                "",
                Some(value.len() as u64),
            )?;
            writer.write_payload(&value[..value.len() - 1])?;
            println!("ready");
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_secs(600));
            Ok(ExitCode::from(exit::TIMEOUT as u8))
        }
        "lock-then-write" => {
            // Takes the lock, says so, and on a line of standard input
            // writes under it (a process paused meanwhile finds it lost).
            let store = open(arg(1), "off")?;
            let _lock = store.lock(arg(2), arg(3), None)?;
            println!("locked");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            store.put(arg(2), arg(3), &Payload::bytes(b"from the paused holder"))?;
            Ok(ExitCode::SUCCESS)
        }
        "race-write" => {
            let store = open(arg(1), arg(2))?;
            let writer = number(3) as u32;
            let until = Instant::now() + Duration::from_secs(number(4));
            let mut seq = 0u32;
            while Instant::now() < until {
                let name = RACE_NAMES[seq as usize % RACE_NAMES.len()];
                let len =
                    RACE_SIZES[(seq as usize / RACE_NAMES.len()) % RACE_SIZES.len()] + seq as usize;
                let value = make_value(seed_of(writer, seq), len);
                store.put("race", name, &Payload::bytes(&value))?;
                seq += 1;
            }
            println!("{seq}");
            Ok(ExitCode::SUCCESS)
        }
        "race-read" => {
            let store = open(arg(1), arg(2))?;
            let until = Instant::now() + Duration::from_secs(number(3));
            let (mut reads, mut writers) = (0u64, std::collections::BTreeSet::new());
            while Instant::now() < until {
                for name in RACE_NAMES {
                    if let Some(view) = store.get("race", name)? {
                        match check_value(&view) {
                            Ok(seed) => {
                                writers.insert(writer_of(seed));
                                reads += 1;
                            }
                            Err(why) => {
                                eprintln!("brain-redis-helper: {name}: {why}");
                                return Ok(ExitCode::from(exit::MISMATCH as u8));
                            }
                        }
                    }
                }
            }
            println!("{reads} {}", writers.len());
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("brain-redis-helper: unknown command {other:?}");
            Ok(ExitCode::from(exit::USAGE as u8))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(err) => fail(&err),
    }
}
