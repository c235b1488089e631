//! Fault plans: which calls of a [`crate::MockStore`] fail, and how.
//!
//! A [`FaultPlan`] is a value: build one with its chained methods and hand it
//! to [`crate::MockStore::with_faults`]. [`Faults`] is the live handle a store
//! holds ([`crate::MockStore::faults`]); it is cheap to clone and thread-safe,
//! so a test can change the faults while other threads use the store.
//!
//! Rules are checked in the order they were added. Every rule sees every
//! call it could apply to (so each counts calls independently), and the
//! first one that fires decides the failure.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A predicate on a call's namespace and name.
type Filter = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Which calls a fault applies to: a filter on the namespace and name, and
/// optionally "only the nth call that passes the filter".
///
/// Calls are counted from the moment the rule is installed, starting at 1.
/// List calls are matched with the listed namespace and an empty name, and
/// [`brain_core::ObjectStore::namespaces`] with both empty.
///
/// ```
/// use brain_mock::When;
/// let third_put_anywhere = When::nth(3);
/// let every_put_to_prices = When::namespace("prices");
/// let second_put_of_one_object = When::object("prices", "today").only_nth(2);
/// let big_names = When::matching(|_namespace, name| name.len() > 100);
/// # let _ = (third_put_anywhere, every_put_to_prices, second_put_of_one_object, big_names);
/// ```
#[derive(Clone)]
pub struct When {
    filter: Option<Filter>,
    label: String,
    nth: Option<u64>,
}

impl When {
    /// Every call.
    pub fn always() -> When {
        When {
            filter: None,
            label: "always".into(),
            nth: None,
        }
    }

    /// Only the nth call (1-based) from when the rule is installed; `0` never fires.
    pub fn nth(n: u64) -> When {
        When::always().only_nth(n)
    }

    /// Every call on `namespace`.
    pub fn namespace(namespace: impl Into<String>) -> When {
        let namespace = namespace.into();
        let label = format!("namespace {namespace:?}");
        When {
            filter: Some(Arc::new(move |ns, _| ns == namespace)),
            label,
            nth: None,
        }
    }

    /// Every call on one object.
    pub fn object(namespace: impl Into<String>, name: impl Into<String>) -> When {
        let (namespace, name) = (namespace.into(), name.into());
        let label = format!("object {namespace:?}/{name:?}");
        When {
            filter: Some(Arc::new(move |ns, n| ns == namespace && n == name)),
            label,
            nth: None,
        }
    }

    /// Every call whose `(namespace, name)` satisfies `predicate`.
    pub fn matching(predicate: impl Fn(&str, &str) -> bool + Send + Sync + 'static) -> When {
        When {
            filter: Some(Arc::new(predicate)),
            label: "matching a predicate".into(),
            nth: None,
        }
    }

    /// The same filter, but only its nth matching call (1-based) fires; `0` never fires.
    #[must_use]
    pub fn only_nth(mut self, n: u64) -> When {
        self.nth = Some(n);
        self
    }
}

impl fmt::Debug for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("When");
        d.field("filter", &self.label);
        if let Some(n) = self.nth {
            d.field("nth", &n);
        }
        d.finish()
    }
}

/// The operating-system error an injected I/O failure carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFault {
    /// An [`io::Error`] of this kind, with a message saying it was injected.
    Kind(io::ErrorKind),
    /// An [`io::Error`] with this raw OS error number (errno), e.g. `5` for EIO.
    Errno(i32),
}

impl Default for IoFault {
    fn default() -> Self {
        IoFault::Kind(io::ErrorKind::Other)
    }
}

impl IoFault {
    /// The [`io::Error`] this fault produces.
    pub fn to_io_error(self) -> io::Error {
        match self {
            IoFault::Kind(kind) => io::Error::new(kind, "injected by brain-mock"),
            IoFault::Errno(errno) => io::Error::from_raw_os_error(errno),
        }
    }
}

/// What an injected put failure does. In every case the call returns an
/// error, nothing new becomes visible, and any previous object of that name
/// is left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutFault {
    /// Writing the payload fails with this OS error: [`brain_core::Error::Io`]
    /// with op `"write an object in"` (or, as in the real store,
    /// [`brain_core::Error::PermissionDenied`] for a permission error and
    /// [`brain_core::Error::StoreFull`] with `filesystem_full` for ENOSPC).
    Io(IoFault),
    /// The writer dies after writing the payload and before sealing it:
    /// [`brain_core::Error::Io`] with op `"seal"` and an error of kind
    /// [`io::ErrorKind::Interrupted`].
    CrashBeforeSeal,
    /// The store refuses the write as full: [`brain_core::Error::StoreFull`],
    /// with `filesystem_full` as given.
    Full {
        /// True to report the filesystem (not the store's capacity) as full.
        filesystem_full: bool,
    },
}

#[derive(Debug, Clone)]
struct Rule<F> {
    when: When,
    fault: F,
    seen: u64,
}

impl<F: Copy> Rule<F> {
    fn new(when: When, fault: F) -> Self {
        Rule {
            when,
            fault,
            seen: 0,
        }
    }

    /// Counts the call if it passes the filter; returns the fault if it fires.
    fn check(&mut self, namespace: &str, name: &str) -> Option<F> {
        if let Some(filter) = &self.when.filter {
            if !filter(namespace, name) {
                return None;
            }
        }
        self.seen += 1;
        match self.when.nth {
            None => Some(self.fault),
            Some(n) => (self.seen == n).then_some(self.fault),
        }
    }
}

/// The first rule that fires, after letting every rule count the call.
fn first_firing<F: Copy>(rules: &mut [Rule<F>], namespace: &str, name: &str) -> Option<F> {
    let mut fired = None;
    for rule in rules {
        let fault = rule.check(namespace, name);
        if fired.is_none() {
            fired = fault;
        }
    }
    fired
}

/// A set of faults to inject: build it with the chained methods.
///
/// ```
/// use std::time::Duration;
/// use brain_mock::{FaultPlan, IoFault, PutFault, When};
/// let plan = FaultPlan::new()
///     .fail_puts(When::nth(2), PutFault::Io(IoFault::Errno(5)))
///     .fail_puts(When::namespace("fragile"), PutFault::CrashBeforeSeal)
///     .slow_reads(Duration::from_millis(5));
/// # let _ = plan;
/// ```
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    puts: Vec<Rule<PutFault>>,
    reads: Vec<Rule<IoFault>>,
    lists: Vec<Rule<IoFault>>,
    read_delay: Option<Duration>,
    filesystem_full: bool,
}

impl FaultPlan {
    /// A plan with no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts selected by `when` fail with `fault`.
    #[must_use]
    pub fn fail_puts(mut self, when: When, fault: PutFault) -> Self {
        self.puts.push(Rule::new(when, fault));
        self
    }

    /// Reads (`get` and `metadata`) selected by `when` fail with an I/O
    /// error (op `"read"`), after any read delay.
    #[must_use]
    pub fn fail_reads(mut self, when: When, fault: IoFault) -> Self {
        self.reads.push(Rule::new(when, fault));
        self
    }

    /// Listings (`list`, `names`, `namespaces`) selected by `when` fail with
    /// an I/O error (op `"list"`).
    #[must_use]
    pub fn fail_lists(mut self, when: When, fault: IoFault) -> Self {
        self.lists.push(Rule::new(when, fault));
        self
    }

    /// Every `get` and `metadata` call sleeps this long before answering.
    #[must_use]
    pub fn slow_reads(mut self, delay: Duration) -> Self {
        self.read_delay = Some(delay);
        self
    }

    /// While on, every put fails with [`brain_core::Error::StoreFull`] with
    /// `filesystem_full: true`, and [`brain_core::Usage::free`] is 0.
    #[must_use]
    pub fn filesystem_full(mut self, full: bool) -> Self {
        self.filesystem_full = full;
        self
    }

    /// True when the plan injects nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.reads.is_empty()
            && self.lists.is_empty()
            && self.read_delay.is_none()
            && !self.filesystem_full
    }
}

/// The live fault plan of a store: shared by every clone of the handle and
/// of the store, safe to change from any thread.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    plan: Mutex<FaultPlan>,
    injected: AtomicU64,
}

impl Faults {
    /// A handle holding `plan`.
    pub fn new(plan: FaultPlan) -> Faults {
        Faults {
            shared: Arc::new(Shared {
                plan: Mutex::new(plan),
                injected: AtomicU64::new(0),
            }),
        }
    }

    fn plan(&self) -> MutexGuard<'_, FaultPlan> {
        // A panic elsewhere (a failing test thread) must not hide the plan.
        self.shared
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the whole plan (rule counters start again from zero).
    pub fn set(&self, plan: FaultPlan) {
        *self.plan() = plan;
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set(FaultPlan::new());
    }

    /// A copy of the current plan, with its rules' counters.
    pub fn snapshot(&self) -> FaultPlan {
        self.plan().clone()
    }

    /// Adds a put rule: puts selected by `when` fail with `fault`.
    pub fn fail_puts(&self, when: When, fault: PutFault) {
        self.plan().puts.push(Rule::new(when, fault));
    }

    /// Adds a read rule, as [`FaultPlan::fail_reads`].
    pub fn fail_reads(&self, when: When, fault: IoFault) {
        self.plan().reads.push(Rule::new(when, fault));
    }

    /// Adds a listing rule, as [`FaultPlan::fail_lists`].
    pub fn fail_lists(&self, when: When, fault: IoFault) {
        self.plan().lists.push(Rule::new(when, fault));
    }

    /// Sets (or with `None` removes) the delay of every `get` and `metadata`.
    pub fn set_read_delay(&self, delay: Option<Duration>) {
        self.plan().read_delay = delay;
    }

    /// Turns the filesystem-full mode on or off, as [`FaultPlan::filesystem_full`].
    pub fn set_filesystem_full(&self, full: bool) {
        self.plan().filesystem_full = full;
    }

    /// How many failures have been injected so far (delays not included).
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::Relaxed)
    }

    fn count<T>(&self, fault: Option<T>) -> Option<T> {
        if fault.is_some() {
            self.shared.injected.fetch_add(1, Ordering::Relaxed);
        }
        fault
    }

    /// The fault, if any, for a put of `namespace`/`name` (whose names are valid).
    pub(crate) fn on_put(&self, namespace: &str, name: &str) -> Option<PutFault> {
        let mut plan = self.plan();
        let fired = first_firing(&mut plan.puts, namespace, name);
        let fired = fired.or(plan.filesystem_full.then_some(PutFault::Full {
            filesystem_full: true,
        }));
        drop(plan);
        self.count(fired)
    }

    /// The delay and the fault, if any, for a read of `namespace`/`name`.
    pub(crate) fn on_read(
        &self,
        namespace: &str,
        name: &str,
    ) -> (Option<Duration>, Option<IoFault>) {
        let mut plan = self.plan();
        let fired = first_firing(&mut plan.reads, namespace, name);
        let delay = plan.read_delay;
        drop(plan);
        (delay, self.count(fired))
    }

    /// The fault, if any, for a listing of `namespace` ("" for `namespaces`).
    pub(crate) fn on_list(&self, namespace: &str) -> Option<IoFault> {
        let fired = first_firing(&mut self.plan().lists, namespace, "");
        self.count(fired)
    }

    /// Whether the filesystem-full mode is on.
    pub(crate) fn filesystem_full(&self) -> bool {
        self.plan().filesystem_full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_fires_once_on_the_nth_call() {
        let faults =
            Faults::new(FaultPlan::new().fail_puts(When::nth(3), PutFault::CrashBeforeSeal));
        let fired: Vec<bool> = (0..6).map(|_| faults.on_put("ns", "x").is_some()).collect();
        assert_eq!(fired, [false, false, true, false, false, false]);
        assert_eq!(faults.injected(), 1);
    }

    #[test]
    fn nth_zero_never_fires() {
        let faults =
            Faults::new(FaultPlan::new().fail_puts(When::nth(0), PutFault::CrashBeforeSeal));
        assert!((0..5).all(|_| faults.on_put("ns", "x").is_none()));
    }

    #[test]
    fn filters_select_by_namespace_object_and_predicate() {
        let faults = Faults::default();
        faults.fail_puts(When::namespace("a"), PutFault::CrashBeforeSeal);
        faults.fail_puts(
            When::object("b", "x"),
            PutFault::Full {
                filesystem_full: false,
            },
        );
        faults.fail_puts(
            When::matching(|_, name| name.starts_with("tmp")),
            PutFault::Io(IoFault::Errno(5)),
        );
        assert_eq!(
            faults.on_put("a", "anything"),
            Some(PutFault::CrashBeforeSeal)
        );
        assert_eq!(
            faults.on_put("b", "x"),
            Some(PutFault::Full {
                filesystem_full: false
            })
        );
        assert_eq!(faults.on_put("b", "y"), None);
        assert_eq!(
            faults.on_put("c", "tmp1"),
            Some(PutFault::Io(IoFault::Errno(5)))
        );
        assert_eq!(faults.injected(), 3);
    }

    #[test]
    fn only_nth_counts_only_matching_calls() {
        let faults = Faults::default();
        faults.fail_puts(When::namespace("a").only_nth(2), PutFault::CrashBeforeSeal);
        assert_eq!(faults.on_put("b", "x"), None);
        assert_eq!(faults.on_put("a", "x"), None);
        assert_eq!(faults.on_put("b", "x"), None);
        assert_eq!(faults.on_put("a", "x"), Some(PutFault::CrashBeforeSeal));
        assert_eq!(faults.on_put("a", "x"), None);
    }

    #[test]
    fn every_rule_counts_even_when_an_earlier_one_fires() {
        let faults = Faults::new(
            FaultPlan::new()
                .fail_puts(When::nth(1), PutFault::CrashBeforeSeal)
                .fail_puts(When::nth(2), PutFault::Io(IoFault::default())),
        );
        assert_eq!(faults.on_put("a", "x"), Some(PutFault::CrashBeforeSeal));
        assert_eq!(
            faults.on_put("a", "x"),
            Some(PutFault::Io(IoFault::default()))
        );
        assert_eq!(faults.on_put("a", "x"), None);
    }

    #[test]
    fn filesystem_full_applies_to_every_put_until_turned_off() {
        let faults = Faults::new(FaultPlan::new().filesystem_full(true));
        let full = Some(PutFault::Full {
            filesystem_full: true,
        });
        assert_eq!(faults.on_put("a", "x"), full);
        assert_eq!(faults.on_put("b", "y"), full);
        faults.set_filesystem_full(false);
        assert_eq!(faults.on_put("a", "x"), None);
    }

    #[test]
    fn reads_and_lists_have_their_own_rules_and_delay() {
        let faults = Faults::default();
        faults.set_read_delay(Some(Duration::from_millis(3)));
        faults.fail_reads(
            When::object("a", "x"),
            IoFault::Kind(io::ErrorKind::TimedOut),
        );
        faults.fail_lists(When::namespace("a"), IoFault::Errno(5));
        assert_eq!(
            faults.on_read("a", "x"),
            (
                Some(Duration::from_millis(3)),
                Some(IoFault::Kind(io::ErrorKind::TimedOut))
            )
        );
        assert_eq!(
            faults.on_read("a", "y"),
            (Some(Duration::from_millis(3)), None)
        );
        assert_eq!(faults.on_list("a"), Some(IoFault::Errno(5)));
        assert_eq!(faults.on_list(""), None);
        assert_eq!(faults.on_put("a", "x"), None);
        faults.clear();
        assert_eq!(faults.on_read("a", "x"), (None, None));
        assert!(faults.snapshot().is_empty());
    }

    #[test]
    fn io_faults_make_the_errors_they_describe() {
        let err = IoFault::Errno(28).to_io_error();
        assert_eq!(err.raw_os_error(), Some(28));
        let err = IoFault::Kind(io::ErrorKind::BrokenPipe).to_io_error();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(err.to_string().contains("brain-mock"), "{err}");
        assert_eq!(
            IoFault::default().to_io_error().kind(),
            io::ErrorKind::Other
        );
    }

    #[test]
    fn handles_share_one_plan_across_threads() {
        let faults = Faults::default();
        let other = faults.clone();
        std::thread::spawn(move || other.fail_puts(When::always(), PutFault::CrashBeforeSeal))
            .join()
            .expect("thread");
        assert!(faults.on_put("a", "x").is_some());
        let debug = format!("{:?}", faults.snapshot());
        assert!(debug.contains("always"), "{debug}");
    }
}
