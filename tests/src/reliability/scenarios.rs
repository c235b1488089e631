//! What the crash campaign does to each operation: the store it starts
//! from, the victim it kills, and what must hold after each kill beyond
//! the checks every operation gets (see `crash.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use brain_core::{ObjectStore, Payload, Store};
use brain_persist::{DumpOptions, RestoreOptions};
use brain_tests::{check_value, make_value, seed_of, writer_of};

use crate::child::{self, Child};
use crate::rng::Rng;

const MIB: usize = 1 << 20;

pub const NS_SMALL: &str = "small";
pub const NS_LARGE: &str = "large";
pub const NS_DEL: &str = "del";
pub const NS_GC: &str = "gc";
const NS_DUMP: &str = "d";
const NS_RESTORE: &str = "x";
const NS_SYNC: &str = "y";
pub const BIG: &str = "big";
const ANCHOR: &str = "anchor";

pub const SMALL_NAMES: [&str; 16] = [
    "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11", "k12", "k13", "k14",
    "k15",
];
pub const DEL_NAMES: [&str; 8] = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"];

/// Sizes of small puts: a few dozen to a few hundred bytes.
pub fn small_size(i: u64) -> usize {
    40 + (i as usize * 37) % 400
}

/// The three large values a victim cycles through (made once: making them
/// takes longer than storing them).
pub fn large_values(base: u32) -> Vec<Vec<u8>> {
    [6 * MIB, 8 * MIB, 10 * MIB]
        .iter()
        .enumerate()
        .map(|(k, &size)| make_value(seed_of(base, 1000 + k as u32), size))
        .collect()
}

/// The values the `gc` victim replaces: 2 MiB, so each replaced file goes
/// to the pool.
pub fn gc_values(base: u32) -> Vec<Vec<u8>> {
    (0..3)
        .map(|k| make_value(seed_of(base, 2000 + k), 2 * MIB + k as usize * 4096))
        .collect()
}

/// Sizes of the deleted names: small (read) and large (mapped).
pub fn delete_size(k: u32) -> usize {
    if k.is_multiple_of(2) {
        100
    } else {
        2 * MIB
    }
}

/// What a namespace that the victim removes holds.
pub fn remove_namespace_sizes() -> [usize; 4] {
    [100, 300_000, 3 * MIB / 2, 5_000]
}

/// A store in a temporary directory on /dev/shm (removed on drop, even
/// when the campaign fails), and a scratch directory beside it.
pub struct Lab {
    dir: tempfile::TempDir,
    pub store_path: PathBuf,
    pub store: Store,
}

impl Lab {
    pub fn new(tag: &str) -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("brain-crash-{tag}-"))
            .tempdir_in("/dev/shm")
            .context("cannot create a directory in /dev/shm")?;
        let store_path = dir.path().join("store");
        let store = Store::builder()
            .path(&store_path)
            .capacity(4 << 30)
            .open()?;
        Ok(Lab {
            dir,
            store_path,
            store,
        })
    }

    pub fn store_arg(&self) -> String {
        self.store_path.display().to_string()
    }

    /// A path in the lab's directory, outside the store.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Another empty store in the lab's directory, for restores to check.
    pub fn fresh_store(&self, name: &str) -> Result<Store> {
        let path = self.scratch(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        Ok(Store::open(&path)?)
    }
}

/// Every object of `ns`: its seed and length, each checked whole.
pub fn read_all(store: &Store, ns: &str) -> Result<BTreeMap<String, (u64, usize)>> {
    let mut out = BTreeMap::new();
    for name in store.names(ns)? {
        let Some(view) = store.get(ns, &name)? else {
            continue; // deleted since the listing
        };
        let seed =
            check_value(&view).map_err(|e| anyhow::anyhow!("{ns}/{name} is not whole: {e}"))?;
        out.insert(name, (seed, view.len()));
    }
    Ok(out)
}

fn put(store: &Store, ns: &str, name: &str, seed: u64, size: usize) -> Result<()> {
    store.put(ns, name, &Payload::bytes(&make_value(seed, size)))?;
    Ok(())
}

/// One operation of the campaign.
pub trait Scenario {
    fn name(&self) -> &'static str;
    /// The store before the first kill.
    fn setup(&mut self, lab: &Lab) -> Result<()>;
    /// The names another process holds views of all along, in one namespace.
    fn held(&self) -> (&'static str, Vec<String>);
    /// The victim's arguments (after `victim`) for kill number `round`.
    fn victim(&self, lab: &Lab, round: u64) -> Vec<String>;
    /// What the campaign changes before each kill.
    fn before_kill(&mut self, _lab: &Lab, _rng: &mut Rng) -> Result<()> {
        Ok(())
    }
    /// Whether one step of the victim ends (and can be timed).
    fn timed(&self) -> bool {
        true
    }
    /// When to kill, given how long one step of the victim takes.
    fn window(&self, per_step: Duration) -> Duration {
        per_step * 3
    }
    /// Checks after a kill, before any repair; true when the kill evidently
    /// interrupted the operation midway (beyond what `gc` finds).
    fn check(&mut self, lab: &Lab) -> Result<bool>;
    /// Tidying between kills (not a check).
    fn after_kill(&mut self, _lab: &Lab) -> Result<()> {
        Ok(())
    }
    /// Checks once the kills are done.
    fn finish(&mut self, _lab: &Lab) -> Result<()> {
        Ok(())
    }
}

pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(PutSmall),
        Box::new(PutLarge),
        Box::new(ReplaceLarge),
        Box::new(Delete),
        Box::new(RemoveNamespace),
        Box::new(Gc),
        Box::new(Fsck::default()),
        Box::new(Dump::default()),
        Box::new(Restore::default()),
        Box::new(Sync::default()),
    ]
}

/// Small puts replacing 16 names.
struct PutSmall;

impl Scenario for PutSmall {
    fn name(&self) -> &'static str {
        "put-small"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        for (i, name) in SMALL_NAMES.iter().enumerate() {
            put(
                &lab.store,
                NS_SMALL,
                name,
                seed_of(0, i as u32),
                small_size(i as u64),
            )?;
        }
        Ok(())
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_SMALL, vec!["k0".into(), "k1".into()])
    }
    fn victim(&self, lab: &Lab, round: u64) -> Vec<String> {
        vec!["put-small".into(), lab.store_arg(), (round + 1).to_string()]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let found = read_all(&lab.store, NS_SMALL)?;
        for name in SMALL_NAMES {
            ensure!(found.contains_key(name), "{NS_SMALL}/{name} is gone");
        }
        Ok(false)
    }
}

/// Large puts of new names (each deleting the name before last, whose
/// file goes to the pool for the next).
struct PutLarge;

impl Scenario for PutLarge {
    fn name(&self) -> &'static str {
        "put-large"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        put(&lab.store, NS_LARGE, ANCHOR, seed_of(0, 0), 8 * MIB)
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_LARGE, vec![ANCHOR.into()])
    }
    fn victim(&self, lab: &Lab, round: u64) -> Vec<String> {
        vec!["put-large".into(), lab.store_arg(), (round + 1).to_string()]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let found = read_all(&lab.store, NS_LARGE)?;
        ensure!(found.contains_key(ANCHOR), "{NS_LARGE}/{ANCHOR} is gone");
        Ok(false)
    }
    fn after_kill(&mut self, lab: &Lab) -> Result<()> {
        for name in lab.store.names(NS_LARGE)? {
            if name != ANCHOR {
                lab.store.delete(NS_LARGE, &name)?;
            }
        }
        Ok(())
    }
}

/// Large puts replacing one name (pool files reused).
struct ReplaceLarge;

impl Scenario for ReplaceLarge {
    fn name(&self) -> &'static str {
        "replace-large"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        put(&lab.store, NS_LARGE, BIG, seed_of(0, 0), 8 * MIB)
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_LARGE, vec![BIG.into()])
    }
    fn victim(&self, lab: &Lab, round: u64) -> Vec<String> {
        vec![
            "replace-large".into(),
            lab.store_arg(),
            (round + 1).to_string(),
        ]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let found = read_all(&lab.store, NS_LARGE)?;
        ensure!(found.contains_key(BIG), "{NS_LARGE}/{BIG} is gone");
        Ok(false)
    }
}

/// Deletes and puts of small and large names.
struct Delete;

impl Scenario for Delete {
    fn name(&self) -> &'static str {
        "delete"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        for (i, name) in DEL_NAMES.iter().enumerate() {
            put(
                &lab.store,
                NS_DEL,
                name,
                seed_of(0, i as u32),
                delete_size(i as u32),
            )?;
        }
        Ok(())
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_DEL, vec!["d1".into(), "d3".into()])
    }
    fn victim(&self, lab: &Lab, round: u64) -> Vec<String> {
        vec!["delete".into(), lab.store_arg(), (round + 1).to_string()]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        for name in read_all(&lab.store, NS_DEL)?.keys() {
            ensure!(DEL_NAMES.contains(&name.as_str()), "unknown name {name:?}");
        }
        Ok(false)
    }
}

/// Namespaces filled then removed.
struct RemoveNamespace;

impl Scenario for RemoveNamespace {
    fn name(&self) -> &'static str {
        "remove-namespace"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        for (k, size) in remove_namespace_sizes().into_iter().enumerate() {
            put(
                &lab.store,
                "rm0",
                &format!("o{k}"),
                seed_of(0, k as u32),
                size,
            )?;
        }
        Ok(())
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        ("rm0", vec!["o1".into(), "o2".into()])
    }
    fn victim(&self, lab: &Lab, round: u64) -> Vec<String> {
        vec![
            "remove-namespace".into(),
            lab.store_arg(),
            (round + 1).to_string(),
        ]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        for ns in lab.store.namespaces()? {
            ensure!(
                ["rm0", "rm1", "rm2"].contains(&ns.as_str()),
                "unknown namespace {ns:?}"
            );
            read_all(&lab.store, &ns)?;
        }
        Ok(false)
    }
}

/// Replaces of 2 MiB names with `gc` between them (pool files drained).
struct Gc;

impl Scenario for Gc {
    fn name(&self) -> &'static str {
        "gc"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        for k in 0..4u32 {
            put(&lab.store, NS_GC, &format!("g{k}"), seed_of(0, k), 2 * MIB)?;
        }
        Ok(())
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_GC, vec!["g0".into()])
    }
    fn victim(&self, lab: &Lab, round: u64) -> Vec<String> {
        vec!["gc".into(), lab.store_arg(), (round + 1).to_string()]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let found = read_all(&lab.store, NS_GC)?;
        ensure!(
            found.len() == 4,
            "names of {NS_GC} lost: {:?}",
            found.keys()
        );
        Ok(false)
    }
}

/// `fsck` killed while another process keeps writing: a recounter that
/// died must hold no one back, and the counts stay exact.
#[derive(Default)]
struct Fsck {
    writer: Option<Child>,
}

/// The control file's recounter field: set while a recount runs.
fn recounter_field(lab: &Lab) -> Result<u64> {
    let bytes = std::fs::read(lab.store.control_path())?;
    Ok(u64::from_le_bytes(
        bytes[40..48].try_into().expect("8 bytes"),
    ))
}

impl Scenario for Fsck {
    fn name(&self) -> &'static str {
        "fsck"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        PutSmall.setup(lab)?;
        put(&lab.store, NS_LARGE, BIG, seed_of(0, 0), 8 * MIB)?;
        let mut writer = child::spawn(&[
            "victim".into(),
            "put-small".into(),
            lab.store_arg(),
            "900".into(),
        ])?;
        writer.expect_line("ready", Duration::from_secs(30))?;
        self.writer = Some(writer);
        Ok(())
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_LARGE, vec![BIG.into()])
    }
    fn victim(&self, lab: &Lab, _round: u64) -> Vec<String> {
        vec!["fsck".into(), lab.store_arg()]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let mid_recount = recounter_field(lab)? != 0;
        // A recounter that died holds no writer back.
        let started = Instant::now();
        put(&lab.store, NS_SMALL, "probe", seed_of(0, 1), 64)?;
        ensure!(
            started.elapsed() < Duration::from_secs(5),
            "a put waited {:?} after a recounter was killed",
            started.elapsed()
        );
        read_all(&lab.store, NS_SMALL)?;
        Ok(mid_recount)
    }
    fn finish(&mut self, _lab: &Lab) -> Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.kill()?;
        }
        Ok(())
    }
}

/// Dumps killed midway: the last complete dump must restore byte for byte.
#[derive(Default)]
struct Dump {
    /// The store as the last complete dump holds it.
    dumped: BTreeMap<String, (u64, usize)>,
    /// The store now.
    current: BTreeMap<String, (u64, usize)>,
    changes: u32,
}

const DUMP_SIZES: [usize; 4] = [100, 60_000, 2 * MIB, 5 * MIB];

impl Dump {
    fn dir(lab: &Lab) -> PathBuf {
        lab.scratch("dump")
    }
}

/// Restores `dir` into a fresh store and reads `ns` back.
fn restored(lab: &Lab, dir: &Path, ns: &str) -> Result<BTreeMap<String, (u64, usize)>> {
    let check = lab.fresh_store("restored")?;
    brain_persist::restore(&check, dir, &RestoreOptions::new())
        .with_context(|| format!("the dump at {} does not restore", dir.display()))?;
    let found = read_all(&check, ns)?;
    drop(check);
    std::fs::remove_dir_all(lab.scratch("restored"))?;
    Ok(found)
}

/// Temporary directories a dump left beside `dir`.
fn dump_leftovers(dir: &Path) -> Result<Vec<PathBuf>> {
    let base = dir
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.parent().expect("a parent"))? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("{base}.tmp-"))
        {
            found.push(entry.path());
        }
    }
    Ok(found)
}

impl Scenario for Dump {
    fn name(&self) -> &'static str {
        "dump"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        for i in 0..24u32 {
            put(
                &lab.store,
                NS_DUMP,
                &format!("o{i}"),
                seed_of(0, i),
                DUMP_SIZES[i as usize % 4] + i as usize,
            )?;
        }
        self.current = read_all(&lab.store, NS_DUMP)?;
        brain_persist::dump(&lab.store, Self::dir(lab), &DumpOptions::new())?;
        self.dumped = self.current.clone();
        Ok(())
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_DUMP, vec!["o3".into()])
    }
    fn before_kill(&mut self, lab: &Lab, rng: &mut Rng) -> Result<()> {
        // A new state for the next dump: two objects change.
        for _ in 0..2 {
            self.changes += 1;
            let i = rng.below(24) as u32;
            let name = format!("o{i}");
            if name == "o3" {
                continue;
            }
            put(
                &lab.store,
                NS_DUMP,
                &name,
                seed_of(1, self.changes),
                DUMP_SIZES[rng.below(4) as usize],
            )?;
        }
        self.current = read_all(&lab.store, NS_DUMP)?;
        Ok(())
    }
    fn victim(&self, lab: &Lab, _round: u64) -> Vec<String> {
        vec![
            "dump".into(),
            lab.store_arg(),
            Self::dir(lab).display().to_string(),
        ]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let dir = Self::dir(lab);
        let midway = !dump_leftovers(&dir)?.is_empty();
        let found = restored(lab, &dir, NS_DUMP)?;
        if found == self.current {
            self.dumped = self.current.clone();
        } else if found != self.dumped {
            bail!(
                "the dump restores neither the last complete dump nor the store: {}",
                differences(&found, &self.dumped)
            );
        }
        Ok(midway)
    }
    fn finish(&mut self, lab: &Lab) -> Result<()> {
        // One more dump, not killed: it clears what the killed ones left.
        brain_persist::dump(&lab.store, Self::dir(lab), &DumpOptions::new())?;
        let left = dump_leftovers(&Self::dir(lab))?;
        ensure!(left.is_empty(), "a dump left {left:?}");
        let found = restored(lab, &Self::dir(lab), NS_DUMP)?;
        ensure!(
            found == self.current,
            "{}",
            differences(&found, &self.current)
        );
        Ok(())
    }
}

fn differences(
    found: &BTreeMap<String, (u64, usize)>,
    want: &BTreeMap<String, (u64, usize)>,
) -> String {
    let names: BTreeSet<&String> = found.keys().chain(want.keys()).collect();
    let diffs: Vec<String> = names
        .into_iter()
        .filter(|n| found.get(*n) != want.get(*n))
        .take(5)
        .map(|n| format!("{n}: found {:?}, expected {:?}", found.get(n), want.get(n)))
        .collect();
    diffs.join("; ")
}

/// Restores of two dumps over each other, killed midway: every name holds
/// one dump's value or the other's, whole.
#[derive(Default)]
struct Restore {
    a: BTreeMap<String, (u64, usize)>,
    b: BTreeMap<String, (u64, usize)>,
}

impl Restore {
    fn dirs(lab: &Lab) -> (PathBuf, PathBuf) {
        (lab.scratch("dump-a"), lab.scratch("dump-b"))
    }
}

impl Scenario for Restore {
    fn name(&self) -> &'static str {
        "restore"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        let (dir_a, dir_b) = Self::dirs(lab);
        for (which, count, dir) in [(1u32, 12u32, &dir_a), (2, 16, &dir_b)] {
            let source = lab.fresh_store("source")?;
            for i in 0..count {
                let size = [3 * MIB, 200, 70_000, MIB + 5][(i + which) as usize % 4];
                put(
                    &source,
                    NS_RESTORE,
                    &format!("x{i}"),
                    seed_of(which, i),
                    size,
                )?;
            }
            brain_persist::dump(&source, dir, &DumpOptions::new())?;
            let contents = read_all(&source, NS_RESTORE)?;
            if which == 1 {
                self.a = contents;
            } else {
                self.b = contents;
            }
            drop(source);
            std::fs::remove_dir_all(lab.scratch("source"))?;
        }
        brain_persist::restore(&lab.store, &dir_a, &RestoreOptions::new())?;
        Ok(())
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        // Large in dump A (what the store starts with).
        (NS_RESTORE, vec!["x3".into(), "x2".into()])
    }
    fn victim(&self, lab: &Lab, _round: u64) -> Vec<String> {
        let (a, b) = Self::dirs(lab);
        vec![
            "restore".into(),
            lab.store_arg(),
            a.display().to_string(),
            b.display().to_string(),
        ]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let found = read_all(&lab.store, NS_RESTORE)?;
        let mut from = BTreeSet::new();
        for (name, value) in &found {
            if self.a.get(name) == Some(value) {
                from.insert('a');
            } else if self.b.get(name) == Some(value) {
                from.insert('b');
            } else {
                bail!("{name} holds {value:?}, in neither dump");
            }
        }
        for name in self.a.keys() {
            ensure!(found.contains_key(name), "{name} is gone");
        }
        Ok(from.len() == 2)
    }
}

/// `brain sync` killed midway while the store changes: the mirror always
/// restores, to values the store held, and catches up once it runs again.
#[derive(Default)]
struct Sync {
    /// Every seed each name has held.
    history: BTreeMap<String, BTreeSet<u64>>,
    changes: u32,
}

impl Sync {
    fn dir(lab: &Lab) -> PathBuf {
        lab.scratch("mirror")
    }

    /// Runs a sync that is not killed until it has caught up.
    fn catch_up(lab: &Lab) -> Result<()> {
        let mut sync = child::spawn(&[
            "victim".into(),
            "sync".into(),
            lab.store_arg(),
            Self::dir(lab).display().to_string(),
        ])?;
        sync.expect_line("ready", Duration::from_secs(30))?;
        std::thread::sleep(Duration::from_millis(1500));
        sync.send_line("stop")?;
        sync.expect_line("stopped", Duration::from_secs(60))?;
        let finished = sync.wait(Duration::from_secs(10))?;
        ensure!(finished.code == Some(0), "the sync failed: {finished:?}");
        Ok(())
    }
}

impl Scenario for Sync {
    fn name(&self) -> &'static str {
        "sync"
    }
    fn setup(&mut self, lab: &Lab) -> Result<()> {
        for i in 0..12u32 {
            let name = format!("y{i}");
            put(
                &lab.store,
                NS_SYNC,
                &name,
                seed_of(0, i),
                DUMP_SIZES[i as usize % 4],
            )?;
            self.history.entry(name).or_default().insert(seed_of(0, i));
        }
        Self::catch_up(lab)
    }
    fn held(&self) -> (&'static str, Vec<String>) {
        (NS_SYNC, vec!["y2".into()])
    }
    fn before_kill(&mut self, lab: &Lab, rng: &mut Rng) -> Result<()> {
        for _ in 0..3 {
            self.changes += 1;
            let name = format!("y{}", rng.below(12));
            if name == "y2" {
                continue;
            }
            if rng.below(4) == 0 && lab.store.delete(NS_SYNC, &name)? {
                continue;
            }
            let seed = seed_of(1, self.changes);
            put(
                &lab.store,
                NS_SYNC,
                &name,
                seed,
                DUMP_SIZES[rng.below(4) as usize],
            )?;
            self.history.entry(name).or_default().insert(seed);
        }
        Ok(())
    }
    fn timed(&self) -> bool {
        false
    }
    fn window(&self, _per_step: Duration) -> Duration {
        // One step is the whole sync; it commits within ~150 ms of a change.
        Duration::from_millis(600)
    }
    fn victim(&self, lab: &Lab, _round: u64) -> Vec<String> {
        vec![
            "sync".into(),
            lab.store_arg(),
            Self::dir(lab).display().to_string(),
        ]
    }
    fn check(&mut self, lab: &Lab) -> Result<bool> {
        let found = restored(lab, &Self::dir(lab), NS_SYNC)?;
        let current = read_all(&lab.store, NS_SYNC)?;
        for (name, (seed, _)) in &found {
            let known = self.history.get(name).is_some_and(|s| s.contains(seed));
            ensure!(
                known,
                "the mirror restores {name} with a seed it never had ({seed:#x}, writer {})",
                writer_of(*seed)
            );
        }
        Ok(found != current)
    }
    fn finish(&mut self, lab: &Lab) -> Result<()> {
        Self::catch_up(lab)?;
        let found = restored(lab, &Self::dir(lab), NS_SYNC)?;
        let current = read_all(&lab.store, NS_SYNC)?;
        ensure!(
            found == current,
            "the mirror did not catch up: {}",
            differences(&found, &current)
        );
        Ok(())
    }
}
