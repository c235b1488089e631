//! # brain-cli
//!
//! The `brain` command: list, read, write, watch and maintain a brain store
//! (a shared-memory namespace of named objects, see `brain-core`, or any
//! other backend) from the shell. This library is the whole command; the
//! binary calls [`run`] with the process's arguments and [`Console`], and
//! tests call it in-process (a `memory://` store lives only in the process
//! that opened it).
//!
//! ```text
//! brain put NAME FILE|-      store a file or standard input
//! brain cat NAME             write an object's payload to standard output
//! brain ls [NS|--all]        list objects
//! brain info NAME            show an object's metadata
//! brain rm NAME...           delete objects
//! brain ns ls | ns rm NS     list or remove namespaces
//! brain stats                capacity, usage and namespaces
//! brain watch [NS|--all]     print a line for every set and delete
//! brain gc                   remove what dead writers left behind
//! brain fsck                 check every object, rebuild the usage count
//! brain capacity [SIZE|none] show or set the store's capacity
//! brain dump DIR             write the store (or -n NS) to a dump on disk
//! brain restore DIR          check a dump, then write it back into the store
//! brain sync --to DIR        keep a dump directory in step with the store
//! brain dumps ls DIR         what a dump holds
//! ```
//!
//! With `--persist DIR` (or `$BRAIN_PERSIST`), a store whose shared memory
//! is empty (after a reboot) is first restored from the dump or mirror in DIR.
//!
//! The store is `--store URL` (a path, `shm://PATH`, `memory://NAME`, or
//! a Redis store: `redis://`, `rediss://`, `redis+cluster://`), else
//! `$BRAIN_URL`, else `$BRAIN_PATH`, else `/dev/shm/brain-<uid>/default`.
//! A Redis store caches what this host reads in `--cache DIR` (default:
//! the host's default store; `--cache off` for none).
//! Commands about one object work in the namespace given by
//! `--namespace/-n` (default `default`).
//!
//! ## Exit codes
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success (also when the reader of standard output went away: a broken pipe) |
//! | 1 | error (I/O, corrupt object, refused store path, `fsck` left corrupt objects, ...) |
//! | 2 | usage error: unknown command or flag, bad value |
//! | 3 | the object or namespace does not exist |
//! | 4 | the store is full |
//! | 5 | the store cannot do this (`gc` of a `memory://` store, say) |
//!
//! Errors are printed to standard error as `brain: <what happened>: <why>`,
//! with what to do next.

#![forbid(unsafe_code)]

mod cmd;
mod console;
mod format;
pub mod text;

use std::ffi::OsString;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use brain::{CacheSetting, ObjectStore, OpenOptions, StoreUrl};
use clap::{Args, Parser, Subcommand};

pub use console::{Captured, Console};

/// Exit code for errors other than the ones below.
const EXIT_ERROR: u8 = 1;
/// Exit code when a name or namespace does not exist.
const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when the store is full.
const EXIT_STORE_FULL: u8 = 4;
/// Exit code when the store cannot do what was asked.
const EXIT_UNSUPPORTED: u8 = 5;

const LONG_ABOUT: &str = "\
List, read, write, watch and maintain a brain store: a shared-memory namespace of named objects.

The store is --store URL (a directory, shm://PATH, memory://NAME, or a Redis store: \
redis://HOST:PORT, rediss://HOST:PORT, redis+cluster://HOST:PORT,HOST:PORT), else $BRAIN_URL, else \
$BRAIN_PATH, else /dev/shm/brain-<uid>/default; a shared-memory store is created when it does \
not exist. A Redis store caches what this host reads in --cache DIR (default: the host's \
default store; off: no cache). Commands about one object use the namespace given by -n/--namespace \
(default: \"default\").

Exit codes:
  0  success (also when the reader of standard output went away, e.g. `brain cat x | head -c1`)
  1  error
  2  usage error (unknown command or flag, bad value)
  3  the object or namespace does not exist
  4  the store is full
  5  the store cannot do this (e.g. gc of a memory:// store)

With --persist DIR (or $BRAIN_PERSIST), a store that holds no object is first restored from the \
dump or sync mirror in DIR (see `brain dump`, `brain sync`).";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "brain",
    version,
    about = "List, read, write, watch and maintain a brain store (shared-memory named objects)",
    long_about = LONG_ABOUT,
    propagate_version = true
)]
pub struct Cli {
    /// The store: a directory, shm://PATH, memory://NAME, redis://HOST:PORT, rediss://... or redis+cluster://HOST:PORT,... [default: $BRAIN_URL, else $BRAIN_PATH, else /dev/shm/brain-$UID/default]
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,

    /// Where a Redis store caches what this host reads: a store directory, or "off" [default: the host's default store; off for dump, sync, ls, ns and watch]
    #[arg(long, global = true, value_name = "DIR|off")]
    cache: Option<PathBuf>,

    /// The namespace of the object commands (put, cat, info, rm, and ls/watch without a NAMESPACE) [default: default]; dump and restore take only this namespace [default: every namespace]
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    namespace: Option<String>,

    /// Set the store's capacity before running the command, for every process
    /// (e.g. 64M, 1G, 512KiB; "none" for no limit but the filesystem's)
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_capacity, allow_negative_numbers = true)]
    capacity: Option<Capacity>,

    /// Restore an empty store from this dump or sync directory before running the command
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "BRAIN_PERSIST",
        hide_env = true
    )]
    persist: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// A capacity given on the command line: bytes, or no limit.
#[derive(Debug, Clone, Copy)]
pub enum Capacity {
    /// A limit in bytes.
    Bytes(u64),
    /// No limit but the filesystem's.
    Unlimited,
}

impl Capacity {
    /// The limit in bytes, `None` for no limit.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Capacity::Bytes(bytes) => Some(bytes),
            Capacity::Unlimited => None,
        }
    }
}

/// Parses a capacity: a size (`4096`, `512K`, `64M`, `1.5G`, `2GiB`,
/// `10MB`; see `brain --help`), or `none` for no limit. Zero is refused: a
/// store of no bytes would refuse every write.
///
/// # Errors
/// A message that says what is accepted.
pub fn parse_capacity(text: &str) -> Result<Capacity, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "unlimited" => Ok(Capacity::Unlimited),
        _ => match format::parse_size(text)? {
            0 => Err(format!(
                "a capacity of {text:?} would refuse every write; give a size above zero \
                 (e.g. 512K, 64M, 1.5G), or none for no limit"
            )),
            bytes => Ok(Capacity::Bytes(bytes)),
        },
    }
}

fn parse_codec(text: &str) -> Result<brain_core::Codec, String> {
    brain_core::Codec::from_name(text).ok_or_else(|| {
        format!(
            "unknown codec {text:?}; use one of raw, text, arrow, ndarray, pickle5, pandas, polars"
        )
    })
}

/// What `restore` does with names that exist already.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ConflictArg {
    /// Replace the object in the store
    Overwrite,
    /// Keep the object in the store
    Skip,
    /// Restore nothing
    Fail,
}

impl From<ConflictArg> for brain_persist::OnConflict {
    fn from(arg: ConflictArg) -> Self {
        match arg {
            ConflictArg::Overwrite => brain_persist::OnConflict::Overwrite,
            ConflictArg::Skip => brain_persist::OnConflict::Skip,
            ConflictArg::Fail => brain_persist::OnConflict::Fail,
        }
    }
}

/// `--json`, on every command that prints a listing or a report.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// List the objects of a namespace (or of every namespace with --all)
    #[command(visible_alias = "list")]
    Ls {
        /// The namespace to list [default: -n, else "default"]
        #[arg(value_name = "NAMESPACE", conflicts_with = "all")]
        target: Option<String>,
        /// List every namespace's objects
        #[arg(short, long)]
        all: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show an object's metadata (and an array's shape or a table's columns)
    Info {
        /// The object's name
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Write an object to standard output: an array as a .npy file, a pickled object as a plain pickle, a frame as an Arrow IPC file, anything else as its bytes
    #[command(visible_alias = "get")]
    Cat {
        /// The object's name
        name: String,
        /// Write the payload as stored, byte for byte (what `put --codec` takes back)
        #[arg(long)]
        raw: bool,
        /// Check every byte against the checksum its writer stored first (a damaged object is an error, exit 1, and nothing is written)
        #[arg(long)]
        verify: bool,
    },
    /// Store a file, or standard input with "-", under a name (replacing any object of that name)
    #[command(visible_alias = "set")]
    Put {
        /// The object's name
        name: String,
        /// The file to store, or "-" for standard input
        #[arg(value_name = "FILE|-")]
        source: PathBuf,
        /// The codec to store: raw, text (checked to be UTF-8), arrow, pandas, polars (an Arrow IPC file, decoded and checked), ndarray (a .npy file), pickle5 (a pickle)
        #[arg(short, long, default_value = "raw", value_parser = parse_codec)]
        codec: brain_core::Codec,
        /// A free-form description, shown by ls and info
        #[arg(short, long, default_value = "")]
        description: String,
    },
    /// Delete objects
    #[command(visible_alias = "del")]
    Rm {
        /// The names to delete
        #[arg(required = true)]
        names: Vec<String>,
        /// Do not fail when a name does not exist
        #[arg(short, long)]
        force: bool,
    },
    /// List or remove namespaces
    Ns {
        #[command(subcommand)]
        command: NsCommand,
    },
    /// Show the store's capacity, usage, filesystem and namespaces
    Stats {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Print a line for every object set or deleted, until killed
    Watch {
        /// The namespace to watch [default: -n, else "default"]
        #[arg(value_name = "NAMESPACE", conflicts_with = "all")]
        target: Option<String>,
        /// Watch every namespace, including ones created later
        #[arg(short, long)]
        all: bool,
        /// Stop after this many events
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this long (e.g. 30, 500ms, 10s, 2m); with --count, fewer events than N is an error
        #[arg(long, value_name = "DURATION", value_parser = format::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Do not print "watching ..." to standard error when the watch is in place
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove what writers that died left behind (temporary files, half-made namespaces)
    Gc {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check every object's header (and checksum) and rebuild the usage count; exits 1 when corrupt objects remain
    Fsck {
        /// Delete the objects that fail the checks
        #[arg(long)]
        delete_corrupt: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Show the store's capacity, or set it (e.g. 64M, 1G, 512KiB, or "none")
    Capacity {
        /// The new capacity; omit it to show the current one
        #[arg(value_name = "SIZE|none", value_parser = parse_capacity, allow_negative_numbers = true)]
        size: Option<Capacity>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Write the store (or the namespace given with -n) to a dump directory on disk, atomically
    Dump {
        /// The dump directory (replaced whole when it holds an earlier dump)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// zstd compression level, -7 (fastest) to 22 (smallest)
        #[arg(long, value_name = "N", default_value_t = brain_persist::DEFAULT_LEVEL,
              value_parser = clap::value_parser!(i32).range(-7..=22), allow_negative_numbers = true)]
        level: i32,
        /// No progress bar and no summary
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check a dump whole, then write it (or the namespace given with -n) back into the store
    Restore {
        /// The dump (or sync) directory
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// What to do with names that already exist in the store
        #[arg(long, value_enum, value_name = "MODE", default_value = "fail")]
        on_conflict: ConflictArg,
        /// No progress bar and no summary
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Keep a dump directory in step with the store, writing only what changes, until killed
    Sync {
        /// The mirror directory (created when missing; restore and --persist read it)
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// The longest a change waits while the store keeps changing (a change followed by quiet is written after 100ms)
        #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = format::parse_duration)]
        interval: std::time::Duration,
        /// How often the whole store is compared with the mirror
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = format::parse_duration)]
        rescan: std::time::Duration,
        /// Mirror an empty or missing store as the deletion of every object (by default the mirror keeps them)
        #[arg(long)]
        mirror_deletes_on_wipe: bool,
        /// Bring the mirror up to date once, then exit
        #[arg(long)]
        once: bool,
        /// zstd compression level, -7 (fastest) to 22 (smallest)
        #[arg(long, value_name = "N", default_value_t = brain_persist::DEFAULT_LEVEL,
              value_parser = clap::value_parser!(i32).range(-7..=22), allow_negative_numbers = true)]
        level: i32,
        /// Log only what needs attention, not every commit
        #[arg(short, long)]
        quiet: bool,
    },
    /// Inspect dumps
    Dumps {
        #[command(subcommand)]
        command: DumpsCommand,
    },
}

/// The `dumps` subcommands.
#[derive(Debug, Subcommand)]
enum DumpsCommand {
    /// List what a dump (or sync directory) holds
    #[command(visible_alias = "list")]
    Ls {
        /// The dump directory
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// The `ns` subcommands.
#[derive(Debug, Subcommand)]
enum NsCommand {
    /// List the namespaces with their object counts and sizes
    #[command(visible_alias = "list")]
    Ls {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a namespace and every object in it
    Rm {
        /// The namespace to remove
        namespace: String,
    },
}

impl Cli {
    /// The names and namespaces on the command line (messages cut long ones).
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.namespace.iter().cloned().collect();
        match &self.command {
            Command::Ls { target, .. } | Command::Watch { target, .. } => {
                names.extend(target.iter().cloned());
            }
            Command::Info { name, .. } | Command::Cat { name, .. } | Command::Put { name, .. } => {
                names.push(name.clone());
            }
            Command::Rm { names: given, .. } => names.extend(given.iter().cloned()),
            Command::Ns {
                command: NsCommand::Rm { namespace },
            } => names.push(namespace.clone()),
            _ => {}
        }
        names
    }
}

/// The namespace used when none is named.
const DEFAULT_NAMESPACE: &str = "default";

/// The namespace of a command: the one given, else `-n`, else `default`.
/// The flag says whether it was named explicitly.
fn pick_namespace(given: Option<String>, global: Option<String>) -> (String, bool) {
    match given.or(global) {
        Some(namespace) => (namespace, true),
        None => (DEFAULT_NAMESPACE.to_owned(), false),
    }
}

/// The store's URL: `--store`, else `$BRAIN_URL`, else `$BRAIN_PATH`, else the default.
fn store_url(cli: &Cli) -> anyhow::Result<StoreUrl> {
    let url = match &cli.store {
        // `--store "$UNSET"`: acting on the default store instead would be
        // acting on the wrong one.
        Some(url) if url.is_empty() => anyhow::bail!(
            "--store is empty; give a directory or a URL, or leave --store out for the default store ($BRAIN_URL, $BRAIN_PATH, else /dev/shm/brain-<uid>/default)"
        ),
        Some(url) => StoreUrl::parse(url)?,
        None => brain::default_url()?,
    };
    Ok(url)
}

fn open_store(cli: &Cli, console: &mut Console) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let url = store_url(cli)?;
    // Dumps and syncs read every object once: cached mappings would only
    // keep deleted objects' memory alive.
    let reads_everything_once = matches!(cli.command, Command::Dump { .. } | Command::Sync { .. });
    // Listings and events read no payload: a Redis store's host cache (a
    // store directory, made if missing) is of no use to them.
    let reads_no_payload = matches!(
        cli.command,
        Command::Ls { .. } | Command::Ns { .. } | Command::Watch { .. }
    );
    let mut options = OpenOptions::new().read_cache(!reads_everything_once);
    options = options.cache(match &cli.cache {
        Some(dir) if dir.as_os_str() == "off" => CacheSetting::Off,
        Some(dir) => CacheSetting::Path(dir.clone()),
        // A dump or a sync would copy every object into this host's memory.
        None if reads_everything_once || reads_no_payload => CacheSetting::Off,
        None => CacheSetting::Default,
    });
    if let Some(capacity) = cli.capacity {
        options = options.capacity(capacity.bytes());
    }
    let store = options.open_parsed(&url).map_err(|err| {
        // Most errors of an open name the store already; the others get it.
        match err.to_string().contains(&url.to_string()) {
            true => anyhow::Error::from(err),
            false => anyhow::Error::from(err).context(format!("cannot open the store at {url}")),
        }
    })?;
    // An explicit restore decides for itself what to restore.
    if let Some(dir) = cli
        .persist
        .as_ref()
        .filter(|d| !d.as_os_str().is_empty() && !matches!(cli.command, Command::Restore { .. }))
    {
        let progress = if console.terminal() {
            brain_persist::Progress::Terminal
        } else {
            brain_persist::Progress::Hidden
        };
        let restored = brain_persist::auto_restore(&*store, dir, &progress).with_context(|| {
            format!(
                "cannot restore the store at {url} from {} (--persist / BRAIN_PERSIST)",
                dir.display()
            )
        })?;
        if let Some(report) = restored {
            console.note(&format!(
                "brain: the store was empty; restored {} object{} ({}) from {}",
                report.restored,
                if report.restored == 1 { "" } else { "s" },
                format::size(report.bytes),
                dir.display()
            ));
        }
    }
    Ok(store)
}

fn dispatch(cli: Cli, console: &mut Console) -> anyhow::Result<()> {
    // Reading a dump needs no store.
    if let Command::Dumps { command } = &cli.command {
        return match command {
            DumpsCommand::Ls { dir, json } => cmd::persist::list(console, dir, json.json),
        };
    }
    let shared = open_store(&cli, console)?;
    let store = &*shared;
    let global_ns = cli.namespace.clone();
    let object_ns = || {
        global_ns
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into())
    };
    match cli.command {
        Command::Ls { target, all, json } => {
            let which = if all {
                None
            } else {
                Some(pick_namespace(target, global_ns.clone()))
            };
            cmd::ls::run(console, store, which, json.json)
        }
        Command::Info { name, json } => {
            cmd::info::run(console, store, &object_ns(), &name, json.json)
        }
        Command::Cat { name, raw, verify } => {
            cmd::cat::run(console, store, &object_ns(), &name, raw, verify)
        }
        Command::Put {
            name,
            source,
            codec,
            description,
        } => cmd::put::run(
            console,
            store,
            &object_ns(),
            &name,
            &source,
            codec,
            &description,
        ),
        Command::Rm { names, force } => cmd::rm::run(console, store, &object_ns(), &names, force),
        Command::Ns { command } => match command {
            NsCommand::Ls { json } => cmd::ns::list(console, store, json.json),
            NsCommand::Rm { namespace } => cmd::ns::remove(console, store, &namespace),
        },
        Command::Stats { json } => cmd::stats::run(console, store, json.json),
        Command::Watch {
            target,
            all,
            count,
            timeout,
            quiet,
            json,
        } => {
            let which = if all {
                None
            } else {
                Some(pick_namespace(target, global_ns.clone()).0)
            };
            cmd::watch::run(
                console,
                store,
                cmd::watch::Options {
                    namespace: which,
                    count,
                    timeout,
                    quiet,
                    json: json.json,
                },
            )
        }
        Command::Gc { json } => cmd::gc::run(console, store, json.json),
        Command::Fsck {
            delete_corrupt,
            json,
        } => cmd::fsck::run(console, store, delete_corrupt, json.json),
        Command::Capacity { size, json } => cmd::capacity::run(console, store, size, json.json),
        Command::Dump {
            dir,
            level,
            quiet,
            json,
        } => cmd::persist::dump(console, store, &dir, global_ns, level, quiet, json.json),
        Command::Restore {
            dir,
            on_conflict,
            quiet,
            json,
        } => cmd::persist::restore(
            console,
            store,
            &dir,
            global_ns,
            on_conflict.into(),
            quiet,
            json.json,
        ),
        Command::Sync {
            to,
            interval,
            rescan,
            mirror_deletes_on_wipe,
            once,
            level,
            quiet,
        } => cmd::persist::sync(
            console,
            &shared,
            cmd::persist::SyncArgs {
                to: &to,
                interval,
                rescan,
                mirror_deletes_on_wipe,
                once,
                quiet,
                level,
            },
        ),
        Command::Dumps { .. } => unreachable!("handled before the store is opened"),
    }
}

/// True when the error comes from writing to a pipe whose reader went away.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes, joined by ": ", leaving out a cause that the
/// message before it already holds (errors that print their source).
/// Long names are cut (see [`text`]): `names` are the ones the command line
/// gave, and the error's own are added.
fn message(err: &anyhow::Error, names: &[String]) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let shown = in_cli_terms(cause).unwrap_or_else(|| text.clone());
        if out.ends_with(&text) {
            out.truncate(out.len() - text.len());
            out.push_str(&shown);
            continue;
        }
        // Printed inside the message, with advice after it.
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&shown);
    }
    let names = names.iter().map(String::as_str).chain(error_names(err));
    text::shorten(&out, names)
}

/// `message` with `--store STORE` put into every `brain` command it
/// advises, when the store was given with `--store` (advice run as written
/// would otherwise act on another store). A Redis URL's password is shown
/// as `***`.
fn with_store_flag(message: &str, store: Option<&str>) -> String {
    let Some(store) = store else {
        return message.to_owned();
    };
    let shown = match brain::StoreUrl::parse(store) {
        Ok(url @ brain::StoreUrl::Redis(_)) => url.to_string(),
        _ => store.to_owned(),
    };
    let quoted = brain_core::shell_word(&shown);
    message.replace("`brain ", &format!("`brain --store {quoted} "))
}

/// A store error whose advice names the Rust API, with the commands and
/// flags that do the same instead.
fn in_cli_terms(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    const RUST: &str = "(`brain capacity SIZE`, StoreBuilder::capacity)";
    const CLI: &str = "(`brain capacity SIZE`, or --capacity SIZE before any command)";
    match cause.downcast_ref::<brain_core::Error>()? {
        full @ brain_core::Error::StoreFull { .. } => {
            let text = full.to_string();
            text.contains(RUST).then(|| text.replace(RUST, CLI))
        }
        _ => None,
    }
}

/// The names and namespaces an error and its causes carry.
fn error_names(err: &anyhow::Error) -> Vec<&str> {
    let mut names = Vec::new();
    for cause in err.chain() {
        if let Some(err) = cause.downcast_ref::<brain_core::Error>() {
            use brain_core::Error as E;
            match err {
                E::NotFound { namespace, name }
                | E::StoreFull {
                    namespace, name, ..
                }
                | E::Timeout {
                    namespace, name, ..
                }
                | E::LockTimeout {
                    namespace, name, ..
                }
                | E::LockLost {
                    namespace, name, ..
                }
                | E::CodecMismatch {
                    namespace, name, ..
                }
                | E::Codec {
                    namespace, name, ..
                }
                | E::Arrow {
                    namespace, name, ..
                }
                | E::ColumnNotFound {
                    namespace, name, ..
                } => names.extend([namespace.as_str(), name]),
                E::KeyCollision {
                    namespace,
                    name,
                    found_namespace,
                    found_name,
                    ..
                } => names.extend([namespace.as_str(), name, found_namespace, found_name]),
                E::NamespaceNotFound { namespace } => names.push(namespace),
                _ => {}
            }
        }
        if let Some(err) = cause.downcast_ref::<brain_persist::Error>() {
            use brain_persist::Error as E;
            match err {
                E::MissingPayload {
                    namespace, name, ..
                }
                | E::TruncatedPayload {
                    namespace, name, ..
                }
                | E::CorruptPayload {
                    namespace, name, ..
                }
                | E::ChecksumMismatch {
                    namespace, name, ..
                }
                | E::Conflict {
                    namespace, name, ..
                } => names.extend([namespace.as_str(), name]),
                E::NamespaceNotInDump { namespace, .. } => names.push(namespace),
                _ => {}
            }
        }
        if let Some(failure) = cause.downcast_ref::<brain_persist::StoreFailure>() {
            names.extend(failure.namespace.as_deref());
            names.extend(failure.name.as_deref());
        }
    }
    names
}

/// The exit code for an error, from the first brain-core or brain-persist
/// error in its chain that has one of its own.
fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(err) = cause.downcast_ref::<brain_persist::Error>() {
            match err {
                brain_persist::Error::StoreFull { .. } => return EXIT_STORE_FULL,
                brain_persist::Error::NamespaceNotInDump { .. } => return EXIT_NOT_FOUND,
                _ => {}
            }
        }
        if let Some(err) = cause.downcast_ref::<brain_core::Error>() {
            return match err {
                brain_core::Error::NotFound { .. }
                | brain_core::Error::NamespaceNotFound { .. } => EXIT_NOT_FOUND,
                brain_core::Error::StoreFull { .. } => EXIT_STORE_FULL,
                brain_core::Error::Unsupported { .. } => EXIT_UNSUPPORTED,
                _ => EXIT_ERROR,
            };
        }
    }
    EXIT_ERROR
}

/// Runs the command line `args` (the program's name first) on `console`;
/// returns the exit code.
pub fn run<I, T>(args: I, console: &mut Console) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() { 2 } else { 0 };
            // Colours only for a person at a terminal, not into a pipe or a log.
            let colour = console.terminal()
                && if err.use_stderr() {
                    io::stderr().is_terminal()
                } else {
                    io::stdout().is_terminal()
                };
            let styled = err.render();
            let text = if colour {
                styled.ansi().to_string()
            } else {
                styled.to_string()
            };
            if err.use_stderr() {
                // A usage error may quote the argument it refuses: cut it if long.
                let given: Vec<String> = args
                    .iter()
                    .map(|arg| arg.to_string_lossy().into_owned())
                    .collect();
                console.note(
                    text::shorten(text.trim_end(), given.iter().map(String::as_str)).as_str(),
                );
            } else {
                let _ = console.out(|out| write!(out, "{text}"));
            }
            return code;
        }
    };
    let names = cli.names();
    let store = cli.store.clone();
    match dispatch(cli, console) {
        Ok(()) => 0,
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            let text = with_store_flag(&message(&err, &names), store.as_deref());
            console.note(&format!("brain: {text}"));
            exit_code(&err)
        }
    }
}

/// Runs the command line `args` on this process's standard streams: the
/// `brain` binary, and the `brain` command a Python install provides.
pub fn run_process<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_process_with(args, false)
}

/// [`run_process`], told whether standard input was closed when the process
/// started (then reading it is an error, not an empty input).
pub fn run_process_with<I, T>(args: I, stdin_closed: bool) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Console::process() {
        Ok(mut console) => {
            if stdin_closed {
                console.stdin_closed();
            }
            run(args, &mut console)
        }
        Err(err) => {
            eprintln!("brain: {err:#}");
            EXIT_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn advice_names_the_store_given_with_its_flag() {
        let advice = "no object; list what exists with `brain ls default`, or `brain ns ls`";
        assert_eq!(with_store_flag(advice, None), advice);
        assert_eq!(
            with_store_flag(advice, Some("/dev/shm/s")),
            "no object; list what exists with `brain --store /dev/shm/s ls default`, or `brain --store /dev/shm/s ns ls`"
        );
        assert!(with_store_flag(advice, Some("/dev/shm/it's mine"))
            .contains(r"`brain --store '/dev/shm/it'\''s mine' ls default`"));
        let redis = with_store_flag(advice, Some("redis://alice:s3cret@host:6380/?prefix=p"));
        assert!(
            redis.contains("`brain --store 'redis://alice:***@host:6380/?prefix=p' ls"),
            "{redis}"
        );
        assert!(!redis.contains("s3cret"), "{redis}");
    }

    #[test]
    fn exit_codes_follow_the_error() {
        let not_found = anyhow::Error::from(brain_core::Error::NotFound {
            namespace: "a".into(),
            name: "b".into(),
        })
        .context("cannot read");
        assert_eq!(exit_code(&not_found), EXIT_NOT_FOUND);
        let other = anyhow::anyhow!("something else");
        assert_eq!(exit_code(&other), EXIT_ERROR);
        let pipe = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe)).context("x");
        assert!(is_broken_pipe(&pipe));
    }

    #[test]
    fn repeated_causes_are_printed_once() {
        let core = brain_core::Error::NamespaceNotFound {
            namespace: "x".into(),
        };
        let persist = brain_persist::Error::NamespaceNotInDump {
            path: "/d".into(),
            namespace: "x".into(),
        };
        let err = anyhow::Error::from(persist).context("cannot restore");
        assert_eq!(exit_code(&err), EXIT_NOT_FOUND);
        let text = message(&anyhow::Error::from(core).context("cannot list"), &[]);
        assert_eq!(text.matches("no namespace").count(), 1, "{text}");
        // A cause printed inside the message, with advice after it.
        let full = brain_persist::Error::Io {
            op: "write",
            path: "/d/x".into(),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        let text = message(&anyhow::Error::from(full).context("cannot mirror"), &[]);
        assert_eq!(text.matches("no storage space").count(), 1, "{text}");
        assert!(
            text.ends_with("(what this run had written there is removed)"),
            "{text}"
        );
    }

    #[test]
    fn capacities_parse() {
        assert!(matches!(parse_capacity("none"), Ok(Capacity::Unlimited)));
        assert!(matches!(
            parse_capacity("1M"),
            Ok(Capacity::Bytes(1_048_576))
        ));
        assert!(parse_capacity("lots").is_err());
        let zero = parse_capacity("0").unwrap_err();
        assert!(
            zero.contains("above zero") && zero.contains("none"),
            "{zero}"
        );
        assert!(parse_capacity("0K").is_err());
    }

    /// A real full-store error, from a memory store with a small capacity.
    fn store_full() -> brain_core::Error {
        let url = "memory://brain-cli-unit-full";
        let store = OpenOptions::new()
            .capacity(Some(64 * 1024))
            .open(url)
            .expect("a memory store opens");
        let big = vec![0u8; 1 << 20];
        let err = store
            .put(
                "default",
                "big",
                &brain_core::Payload::segments(brain_core::Codec::Raw, &[&big]),
            )
            .expect_err("1 MiB does not fit in 64 KiB");
        brain::drop_memory_store("brain-cli-unit-full");
        err
    }

    #[test]
    fn a_full_store_is_explained_with_commands_and_flags() {
        let err = anyhow::Error::from(store_full()).context("cannot store \"big\"");
        let text = message(&err, &[]);
        assert!(
            text.starts_with("cannot store \"big\": store is full: writing \"big\""),
            "{text}"
        );
        assert!(
            text.contains("`brain capacity SIZE`") && text.contains("--capacity SIZE"),
            "{text}"
        );
        assert!(!text.contains("StoreBuilder"), "{text}");
        // Said once, in the command's terms, when a cause repeats it.
        let err = anyhow::Error::from(store_full());
        let text = message(&err.context("cannot restore /d"), &[]);
        assert_eq!(text.matches("store is full").count(), 1, "{text}");
    }

    #[test]
    fn long_names_are_cut_in_messages() {
        let long = "n".repeat(65_536);
        let err = anyhow::Error::from(brain_core::Error::NotFound {
            namespace: long.clone(),
            name: long.clone(),
        })
        .context(format!("cannot read {long:?} in namespace {long:?}"));
        let text = message(&err, &[]);
        assert!(text.len() < 1_000, "{} bytes: {}", text.len(), &text[..200]);
        assert!(text.contains("(65536 bytes)"), "{text}");
    }
}
